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
    spacing: Annotated[
        float | None, typer.Option(min=0.25, max=16, help="Voxel size in mm (default 2; --kind icn: 3).")
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="t1: T1 volumes with label maps; icn: fMRI network maps (one 4D component file per subject, "
            "13 Seitzman et al. 2018 networks, NeuroMark's field of view) with components.csv."
        ),
    ] = "t1",
    shape: Annotated[
        tuple[int, int, int] | None,
        typer.Option(help="Grid size D H W (default: 160×224×160 mm at the spacing)."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Root seed; subject i uses a seed derived from it.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes to render with.")] = 1,
    head: Annotated[
        bool,
        typer.Option(
            "--head",
            help="Full-head scans as a scanner writes them (skull, scalp, neck; random pose; RAS/LPS/PSR; two "
            "sites) with truth brain masks: N subjects × 3 orientations × 2 sites.",
        ),
    ] = False,
) -> None:
    """Write a phantom cohort with exact ground truth: T1 + label NIfTIs (or ICN maps) and a manifest."""
    from synthkit.data import phantom as ph

    if kind not in ("t1", "icn"):
        raise UsageError(f"--kind {kind!r}: expected t1 or icn")
    if kind == "icn":
        from synthkit.data.icn_phantom import write_icn_cohort

        if shape is not None or head:
            raise UsageError("--kind icn has NeuroMark's field of view (156×186×153 mm); drop --shape and --head")
        sp = 3.0 if spacing is None else spacing
        console.print(f"ICN phantom: {n} subjects × 13 networks at {sp:g} mm, seed {seed} → {out}")
        console.print(f"[green]wrote[/green] {write_icn_cohort(out, n, spacing=sp, seed=seed)}")
        return
    spacing = 2.0 if spacing is None else spacing
    if shape is not None and min(shape) < 1:
        raise UsageError("--shape needs three positive sizes")
    if head:
        from synthkit.data.head_phantom import write_head_cohort

        if shape is not None:
            raise UsageError("--head scans have a fixed 192×240×256 mm field of view; drop --shape")
        console.print(f"head phantom: {n} subjects × 3 orientations × 2 sites at {spacing:g} mm, seed {seed} → {out}")
        console.print(f"[green]wrote[/green] {write_head_cohort(out, n, spacing=spacing, seed=seed)}")
        return
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
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="Recode a covariate column: COLUMN=VALUE:CODE,… (e.g. site=A:0,B:1; 'VALUE:' marks it missing). "
            "Repeatable. sex as M/F, male/female or 1/2 is coded 1 = male, 0 = female without it.",
        ),
    ] = None,
) -> None:
    """Find images under ROOT and join their covariates into a manifest."""
    from synthkit.data import datasets, manifest
    from synthkit.data.coding import parse_map

    maps = dict(parse_map(m) for m in map_ or [])
    if len(maps) != len(map_ or []):
        raise UsageError("--map names a column twice")
    if dataset is not None:
        if pattern or covariates or id_column or id_regex or maps:
            raise UsageError("--dataset fixes the pattern and covariates; drop --pattern/--covariates/--id-*/--map")
        spec = datasets.load_dataset_spec(dataset)
        console.print(f"dataset: {spec.name}" + (f" ({spec.url})" if spec.url else ""))
        table, warnings, notes = datasets.build_dataset_manifest(spec, root)
    else:
        if pattern is None:
            raise UsageError("give --pattern GLOB (or --dataset NAME)")
        if (covariates is None) != (id_column is None):
            raise UsageError("--covariates and --id-column go together")
        if covariates is not None and not covariates.is_file():
            why = "is a folder" if covariates.is_dir() else "file not found"
            raise UsageError(f"--covariates {covariates}: {why}")
        table, warnings, notes = manifest.build_manifest(
            root, pattern, covariates=covariates, id_column=id_column, id_regex=id_regex, maps=maps
        )
    for note in notes:
        console.print(f"coded {note}", markup=False, highlight=False)
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


@app.command(rich_help_panel=DATA)
def preprocess(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV of the scans.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for images/, masks/, manifest.csv, qc.png.")],
    recipe: Annotated[
        Path | None, typer.Option(help="Take the space and the preprocess block from this training recipe.")
    ] = None,
    spacing: Annotated[float, typer.Option(min=0.25, max=16, help="Voxel size (mm) without --recipe.")] = 2.0,
    mode: Annotated[str, typer.Option(help="auto, register or resample (without --recipe).")] = "auto",
    registration: Annotated[str, typer.Option(help="affine or rigid (without --recipe).")] = "affine",
) -> None:
    """Preprocess a manifest's scans as training will, and write a QC montage to look at first."""
    from synthkit.config import PreprocessConfig, load_recipe, validate
    from synthkit.data.preprocess import PreprocessParams
    from synthkit.data.preprocess_cohort import preprocess_manifest
    from synthkit.space import ImageSpace

    if recipe is not None:
        if (spacing, mode, registration) != (2.0, "auto", "affine"):
            raise UsageError("--recipe sets the space and the preprocessing; drop --spacing/--mode/--registration")
        r = load_recipe(recipe)
        space, cfg = r.space.to_space(), r.data.preprocess
    else:
        shape = tuple(round(extent / spacing) for extent in (160, 224, 160))
        space = ImageSpace.centered(shape, spacing)
        cfg = validate(PreprocessConfig, {"mode": mode, "registration": registration}, "--mode/--registration")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    params = PreprocessParams.from_config(cfg)
    console.print(f"preprocessing {manifest} into {space.describe()} (mode {params.mode}) → {out}")
    res = preprocess_manifest(
        manifest, out, space, params, echo=lambda m: err_console.print(m, markup=False, highlight=False)
    )
    how = ", ".join(f"{k} {v}" for k, v in sorted(res.modes.items()))
    console.print(f"[green]wrote[/green] {res.done} images ({how or 'none'}), {res.manifest}")
    for p in res.montages:
        console.print(f"  QC montage: {p}")
    if res.failures:
        err_console.print(f"[red]{len(res.failures)} row(s) failed[/red] (listed above)")
        raise typer.Exit(1)
