"""Commands: ``phantom`` and ``manifest build|validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthkit.cli.app import DATA, app, console, err_console, manifest_app
from synthkit.errors import UsageError


@app.command(rich_help_panel=DATA)
def phantom(
    out: Annotated[Path, typer.Argument(help="Output folder (images/, labels/, manifest.csv, params.jsonl).")],
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
        typer.Option(help="A public dataset description: ixi, oasis3, ukbiobank, adni, neuromark, or a YAML."),
    ] = None,
    covariates: Annotated[Path | None, typer.Option(help="CSV/TSV table of covariates, one row per subject.")] = None,
    id_column: Annotated[str | None, typer.Option(help="The covariate table's subject-ID column.")] = None,
    id_regex: Annotated[str | None, typer.Option(help="Regex on the relative path; group 'subject' is the ID.")] = None,
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
    console.print(f"[green]wrote[/green] {out}: {len(table)} rows" + (f" (covariates: {cols})" if cols else ""))


@manifest_app.command("validate")
def manifest_validate(
    path: Annotated[Path, typer.Argument(help="Manifest CSV.")],
    no_images: Annotated[bool, typer.Option("--no-images", help="Check the table only, not the files.")] = False,
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
