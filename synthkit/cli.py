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
COHORTS = "Cohorts"
START = "Getting started"

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


# ------------------------------------------------------------------------------------------------ data


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


# --------------------------------------------------------------------------------------------------- cohorts


@app.command(rich_help_panel=COHORTS)
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="The cohort store to write (a .zarr folder).")],
    n: Annotated[int | None, typer.Option("--n", help="Number of samples (or one per row of --conditions).")] = None,
    model: Annotated[str | None, typer.Option(help="'phantom' (the default) or a checkpoint (.safetensors).")] = None,
    conditions: Annotated[
        Path | None, typer.Option(help="CSV with one row per sample; columns are condition names.")
    ] = None,
    condition: Annotated[
        list[str] | None,
        typer.Option(
            "--condition",
            "-c",
            help="NAME=VALUE | NAME=uniform(a,b) | NAME=normal(m,s) | NAME=linspace(a,b); repeatable.",
        ),
    ] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="Samples per shard (one task writes one shard).")] = 32,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per generator call.")] = 8,
    seed: Annotated[int, typer.Option(min=0, help="Root seed: sample i depends only on (seed, i).")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes of the local cluster.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    cluster: Annotated[str, typer.Option(help="local, tcp://HOST:PORT (a running scheduler) or slurm.")] = "local",
    cluster_config: Annotated[
        Path | None, typer.Option(help="YAML for --cluster slurm (see recipes/cluster-slurm.yaml).")
    ] = None,
    spacing: Annotated[float | None, typer.Option(help="Phantom voxel size in mm (default 4: 40×56×40).")] = None,
    dtype: Annotated[str, typer.Option(help="Stored image type: float16 or uint8.")] = "float16",
    codec: Annotated[str, typer.Option(help="Blosc compressor: zstd (smaller) or lz4 (faster random reads).")] = "zstd",
    qc_retries: Annotated[int, typer.Option(min=0, max=20, help="Regenerations of an implausible sample.")] = 3,
    resume: Annotated[bool, typer.Option("--resume", help="Finish an interrupted store.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing store.")] = False,
) -> None:
    """Mass-produce a synthetic cohort into a sharded Zarr store (resumable, on dask)."""
    from synthkit.generate.engine import GenerateOptions, QCConfig, run

    if n is not None and n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    opts = GenerateOptions(
        out=out,
        model=model,
        n=n,
        shard_size=shard_size,
        batch_size=batch_size,
        seed=seed,
        workers=workers,
        device=device,
        cluster=cluster,
        cluster_config=cluster_config,
        resume=resume,
        overwrite=overwrite,
        dtype=dtype,
        codec=codec,
        spacing=spacing,
        conditions_csv=conditions,
        condition_specs=list(condition or []),
        qc=QCConfig(max_retries=qc_retries),
    )
    res = run(opts, echo=lambda m: console.print(m, markup=False, highlight=False))
    rate = res.n / res.seconds if res.shards_run == res.shards_total else None
    console.print(
        f"[green]done[/green]: {res.store} — {res.n} samples ({res.shards_run} of {res.shards_total} shards run "
        f"in {res.seconds:.1f} s{f', {rate:.1f} samples/s' if rate else ''}); "
        f"{res.failed_qc} failed QC; check it with: synthkit verify {res.store}"
    )


@app.command(rich_help_panel=COHORTS)
def inspect(store: Annotated[Path, typer.Argument(help="A cohort store.")]) -> None:
    """Summarise a store: size, space, generator, conditions, completeness, size on disk."""
    from rich.table import Table

    from synthkit.store.summary import summarise

    s = summarise(store)
    t = Table(title=str(store), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in s.rows():
        t.add_row(k, v)
    console.print(t)
    if s.conditions:
        c = Table(title="conditions and measures", title_justify="left")
        for col in ("name", "min", "mean", "max"):
            c.add_column(col, justify="right" if col != "name" else "left")
        for name, (lo, mean, hi) in s.conditions.items():
            c.add_row(name, f"{lo:.4g}", f"{mean:.4g}", f"{hi:.4g}")
        console.print(c)


@app.command(rich_help_panel=COHORTS)
def verify(
    store: Annotated[Path, typer.Argument(help="A cohort store.")],
    quick: Annotated[bool, typer.Option("--quick", help="Structure and completeness only; skip voxel checks.")] = False,
) -> None:
    """Check a store: missing shards, NaNs, shape/metadata mismatches (exit 1 on any error)."""
    from synthkit.store.verify import verify_store

    rep = verify_store(store, check_values=not quick)
    for w in rep.warnings:
        err_console.print(f"warning: {w}", markup=False, highlight=False)
    if not rep.ok:
        for e in rep.errors:
            err_console.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(1)
    console.print(
        f"[green]{store}: OK[/green] ({rep.n_checked} samples checked)" if not quick else f"[green]{store}: OK[/green]"
    )


@app.command(rich_help_panel=COHORTS)
def export(
    store: Annotated[Path, typer.Argument(help="A cohort store.")],
    out: Annotated[Path, typer.Argument(help="Folder for the NIfTI files and conditions.csv.")],
    indices: Annotated[str | None, typer.Option(help="Which samples: 0:10, 5, 1,4,9 or ::100 (default: all).")] = None,
) -> None:
    """Export samples as NIfTI (float32, the store's affine) with a conditions CSV."""
    from synthkit.store.export import export_nifti, parse_indices
    from synthkit.store.reader import open_cohort

    cohort = open_cohort(store, allow_incomplete=True)
    chosen = parse_indices(indices, len(cohort))
    files = export_nifti(store, out, chosen)
    console.print(f"[green]wrote[/green] {len(files)} NIfTI file(s) and conditions.csv to {out}")


# ------------------------------------------------------------------------------------------ getting started


@app.command(rich_help_panel=START)
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("demo-output"),
    n: Annotated[int, typer.Option(min=4, help="Phantom subjects to make.")] = 24,
    n_samples: Annotated[int, typer.Option(min=1, help="Synthetic samples to generate.")] = 256,
) -> None:
    """Run the pipeline end to end on phantoms and print where everything is."""
    from synthkit.data import phantom as ph
    from synthkit.data.manifest import validate_manifest
    from synthkit.generate.engine import GenerateOptions, run
    from synthkit.store.verify import verify_store

    space = ph.default_space(4.0)
    console.rule("synthkit demo")
    console.print(
        "This version of the demo runs the stages that exist: phantom cohort → manifest check → mass production "
        "of a synthetic cohort (the phantom generator) into a store → verification."
    )
    console.print(f"1/4 phantom cohort: {n} subjects at {space.describe()}")
    manifest = ph.write_cohort(out / "phantoms", n, space=space, seed=0)
    console.print("2/4 validating the manifest")
    m, problems = validate_manifest(manifest)
    if problems:
        raise SynthkitError(f"{manifest}: {len(problems)} problems, first: {problems[0]}")
    store = out / "cohort.zarr"
    console.print(f"3/4 generating {n_samples} samples into {store}")
    res = run(
        GenerateOptions(out=store, n=n_samples, shard_size=32, workers=2, device="cpu", overwrite=store.exists()),
        echo=lambda msg: console.print("    " + msg, markup=False, highlight=False),
    )
    console.print("4/4 verifying the store")
    report = verify_store(store)
    if not report.ok:
        raise SynthkitError(f"{store}: {report.errors[0]}")
    console.rule("done")
    console.print(f"phantom images and labels: {out / 'phantoms'}")
    console.print(f"manifest ({len(m)} rows): {manifest}")
    console.print(f"synthetic cohort ({res.n} samples, verified): {store}")
    console.print(f"  look inside: synthkit inspect {store}; in Python: synthkit.open_cohort('{store}')")


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
