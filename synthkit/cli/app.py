"""The ``synthkit`` Typer app, its consoles and the entry point that turns errors into one line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from synthkit.errors import SynthkitError
from synthkit.version import __version__

try:  # typer ≥ 0.25 vendors click; earlier versions use the click package
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx  # type: ignore[no-redef]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DATA = "Data"
MODELS = "Models"
COHORTS = "Cohorts"
AUDIT = "Audit"
START = "Getting started"

# a diffusion checkpoint's sampling settings, for `sample` and `generate` (default: the recipe's)
Sampler = Annotated[str | None, typer.Option(help="ddim, dpmpp_2m, ddpm or rflow (default: the recipe's).")]
Steps = Annotated[int | None, typer.Option(min=1, help="Sampling steps (default: the recipe's).")]
GuidanceScale = Annotated[
    float | None, typer.Option(min=0.0, help="Classifier-free guidance scale (default: the recipe's; 1 = none).")
]

app = typer.Typer(
    name="synthkit",
    help="Train generative models of brain MRI, mass-produce synthetic cohorts, audit them, and serve them to PyTorch.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
manifest_app = typer.Typer(
    help="Build and validate data manifests (CSV: subject_id, image, covariates).", no_args_is_help=True
)
app.add_typer(manifest_app, name="manifest", rich_help_panel=DATA)


def _version(value: bool) -> None:
    if value:
        console.print(f"synthkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", help="Print the version and exit.", callback=_version, is_eager=True),
    ] = False,
) -> None:
    """synthkit — synthetic brain MRI cohorts: train, generate, audit, import."""


@contextmanager
def no_empty_folder_on_failure(folder: Path) -> Iterator[None]:
    """If the command fails, remove ``folder`` (and empty folders inside it) when it did not exist before and
    holds no file: a failed command leaves nothing behind, and never removes a file."""
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed and folder.is_dir():
            for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with suppress(OSError):
                    d.rmdir()  # only if empty
            with suppress(OSError):
                folder.rmdir()
        raise


def _error(message: str) -> None:
    """One line on stderr, never wrapped."""
    err_console.print(f"synthkit: error: {message}", markup=False, highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: usage errors exit 2 with one line; synthkit errors exit with their code."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    try:
        result = command.main(args=args, prog_name="synthkit", standalone_mode=False)
    except _cx.NoArgsIsHelpError:
        return 0  # typer has printed the help
    except _cx.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        _error(f"{e.format_message()}{hint}")
        return 2
    except _cx.ClickException as e:
        _error(e.format_message())
        return e.exit_code
    except typer.Abort:
        err_console.print("synthkit: interrupted", markup=False)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except SynthkitError as e:
        _error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("synthkit: interrupted", markup=False)
        return 130
    return result if isinstance(result, int) else 0
