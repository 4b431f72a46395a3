"""The ``synthkit`` command line: one thin function per command; heavy imports happen inside commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from synthkit.errors import SynthkitError, UsageError
from synthkit.version import __version__

try:  # typer ≥ 0.25 vendors click; earlier versions use the click package
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx  # type: ignore[no-redef]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DATA = "Data"
START = "Getting started"

app = typer.Typer(
    name="synthkit",
    help="Train generative models of brain MRI, mass-produce synthetic cohorts, audit them, and serve them "
    "to PyTorch.",
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


# ------------------------------------------------------------------------------------------------ data


@app.command(rich_help_panel=DATA)
def phantom(
    out: Annotated[
        Path, typer.Argument(help="Output folder (images/, labels/, manifest.csv, params.jsonl).")
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of subjects.")] = 20,
    spacing: Annotated[float, typer.Option(min=0.25, max=16, help="Voxel size in mm.")] = 2.0,
    shape: Annotated[
        tuple[int, int, int] | None,
        typer.Option(help="Grid size D H W (default: 160×224×160 mm at the spacing)."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Root seed; subject i uses a seed derived from it.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes to render with.")] = 1,
) -> None:
    """Write a phantom cohort with exact ground truth: T1 + label NIfTIs and a manifest."""
    from synthkit.data import phantom as ph

    if shape is not None and min(shape) < 1:
        raise UsageError("--shape needs three positive sizes")
    space = ph.default_space(spacing, shape)
    console.print(f"phantom cohort: {n} subjects, {space.describe()}, seed {seed} → {out}")
    manifest = ph.write_cohort(out, n, space=space, seed=seed, workers=workers)
    console.print(f"[green]wrote[/green] {manifest}")


@manifest_app.command("build")
def manifest_build(
    root: Annotated[Path, typer.Argument(help="Folder holding the images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest CSV to write.")],
    pattern: Annotated[
        str | None, typer.Option(help="Glob under ROOT, e.g. '**/*.nii.gz' (not with --dataset).")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="A public dataset description: ixi, oasis3, ukbiobank, adni, neuromark, or a YAML."
        ),
    ] = None,
    covariates: Annotated[
        Path | None, typer.Option(help="CSV/TSV table of covariates, one row per subject.")
    ] = None,
    id_column: Annotated[str | None, typer.Option(help="The covariate table's subject-ID column.")] = None,
    id_regex: Annotated[
        str | None, typer.Option(help="Regex on the relative path; group 'subject' is the ID.")
    ] = None,
) -> None:
    """Find images under ROOT and join their covariates into a manifest."""
    from synthkit.data import datasets, manifest

    if dataset is not None:
        if pattern or covariates or id_column or id_regex:
            raise UsageError("--dataset fixes the pattern and covariates; drop --pattern/--covariates/--id-*")
        spec = datasets.load_dataset_spec(dataset)
        console.print(f"dataset: {spec.name} ({spec.url})")
        table, warnings = datasets.build_dataset_manifest(spec, root)
    else:
        if pattern is None:
            raise UsageError("give --pattern GLOB (or --dataset NAME)")
        if (covariates is None) != (id_column is None):
            raise UsageError("--covariates and --id-column go together")
        table, warnings = manifest.build_manifest(
            root, pattern, covariates=covariates, id_column=id_column, id_regex=id_regex
        )
    for w in warnings:
        err_console.print(f"[yellow]warning:[/yellow] {w}")
    manifest.write_manifest(table, out)
    cols = ", ".join(c for c in table.columns if c not in ("subject_id", "image"))
    console.print(
        f"[green]wrote[/green] {out}: {len(table)} rows" + (f" (covariates: {cols})" if cols else "")
    )


@manifest_app.command("validate")
def manifest_validate(
    path: Annotated[Path, typer.Argument(help="Manifest CSV.")],
    no_images: Annotated[
        bool, typer.Option("--no-images", help="Check the table only, not the files.")
    ] = False,
) -> None:
    """Check every row (files, NIfTI, 3D, finite, covariates, IDs) and list all bad rows at once."""
    from synthkit.data.manifest import validate_manifest

    m, problems = validate_manifest(path, check_images=not no_images, progress=True)
    if problems:
        bad_rows = len({p.row for p in problems})
        err_console.print(f"[red]{path}: {bad_rows} of {len(m)} rows are bad[/red]")
        for p in problems:
            err_console.print(f"  {p}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    covs = ", ".join(m.covariate_columns) or "none"
    console.print(f"[green]{path}: all {len(m)} rows are good[/green] (covariates: {covs})")


# ------------------------------------------------------------------------------------------ getting started


@app.command(rich_help_panel=START)
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("demo-output"),
    n: Annotated[int, typer.Option(min=4, help="Phantom subjects to make.")] = 24,
) -> None:
    """Run the pipeline end to end on phantoms and print where everything is."""
    from synthkit.data import phantom as ph
    from synthkit.data.manifest import validate_manifest

    space = ph.default_space(4.0)
    console.rule("synthkit demo")
    console.print(
        "This version of the demo runs the stages that exist: the phantom cohort and its manifest check."
    )
    console.print(f"1/2 phantom cohort: {n} subjects at {space.describe()}")
    manifest = ph.write_cohort(out / "phantoms", n, space=space, seed=0)
    console.print("2/2 validating the manifest")
    m, problems = validate_manifest(manifest)
    if problems:
        raise SynthkitError(f"{manifest}: {len(problems)} problems, first: {problems[0]}")
    console.rule("done")
    console.print(f"phantom images and labels: {out / 'phantoms'}")
    console.print(f"manifest ({len(m)} rows): {manifest}")


# ------------------------------------------------------------------------------------------------ entry point


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


if __name__ == "__main__":
    sys.exit(main())
