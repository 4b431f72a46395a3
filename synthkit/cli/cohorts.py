"""Commands: ``generate``, ``inspect``, ``verify``, ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthkit.cli.app import (
    COHORTS,
    GuidanceScale,
    Sampler,
    Steps,
    app,
    console,
    err_console,
    no_empty_folder_on_failure,
)
from synthkit.errors import UsageError


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
    sampler: Sampler = None,
    steps: Steps = None,
    guidance_scale: GuidanceScale = None,
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
        sampler=sampler,
        steps=steps,
        guidance_scale=guidance_scale,
    )
    res = run(opts, echo=lambda m: console.print(m, markup=False, highlight=False))
    rate = res.n / res.seconds if res.shards_run == res.shards_total else None
    console.print(
        f"[green]done[/green]: {res.store} — {res.n} samples ({res.shards_written} of {res.shards_total} shards "
        "written by this run "
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
    quick: Annotated[
        bool, typer.Option("--quick", help="Done flags and chunk checksums only; decode nothing, skip voxel checks.")
    ] = False,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Mark damaged shards not done (then: synthkit generate --out STORE --resume)."),
    ] = False,
) -> None:
    """Check a store: every chunk present, intact (checksums) and decodable, no missing shards, NaNs or
    shape/metadata mismatches. Each damaged sample is named by index; exit 1 on any error."""
    from synthkit.store.verify import verify_store

    rep = verify_store(store, check_values=not quick, repair=repair)
    for w in rep.warnings:
        err_console.print(f"warning: {w}", markup=False, highlight=False)
    for e in rep.errors:
        err_console.print(f"error: {e}", markup=False, highlight=False)
    if rep.repaired or rep.restored:
        console.print(
            f"repaired: {len(rep.damaged)} damaged sample(s); {rep.restored} plan chunk(s) restored from their "
            f"copy; {len(rep.repaired or [])} shard(s) marked not done — finish with: "
            f"synthkit generate --out {store} --resume",
            markup=False,
            highlight=False,
        )
        return
    if not rep.ok:
        raise typer.Exit(1)
    checked = f" ({rep.n_checked} samples checked)" if not quick else " (flags and checksums)"
    console.print(f"[green]{store}: OK[/green]{checked}")


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
    with no_empty_folder_on_failure(out):
        files = export_nifti(store, out, chosen)
    console.print(f"[green]wrote[/green] {len(files)} NIfTI file(s) and conditions.csv to {out}")
