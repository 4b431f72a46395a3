"""The ``synthkit`` command line: one thin module per group of commands; heavy imports happen inside commands."""

from synthkit.cli import audit, cohorts, data, demo, models  # noqa: F401  (registers the commands)
from synthkit.cli.app import app, main

__all__ = ["app", "main"]
