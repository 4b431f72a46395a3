"""synthkit: train, mass-produce, audit and serve synthetic brain MRI cohorts.

Public API: :func:`open_cohort`, :func:`load_generator`, ``__version__``. Imports are lazy so that
``import synthkit`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthkit.version import __version__

__all__ = ["__version__", "load_generator", "open_cohort"]

if TYPE_CHECKING:
    from synthkit.models.registry import load_generator
    from synthkit.store.reader import open_cohort


def __getattr__(name: str) -> Any:
    if name == "load_generator":
        from synthkit.models.registry import load_generator

        return load_generator
    if name == "open_cohort":
        from synthkit.store.reader import open_cohort

        return open_cohort
    raise AttributeError(f"module 'synthkit' has no attribute {name!r}")
