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
MODELS = "Models"
COHORTS = "Cohorts"
AUDIT = "Audit"
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


# ---------------------------------------------------------------------------------------------------- models


@app.command(rich_help_panel=MODELS)
def train(
    recipe: Annotated[Path, typer.Argument(help="Training recipe (YAML), or 'brain-age' for a brain-age model.")],
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default runs/<recipe name>); the model file for brain-age.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run at its saved step.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    max_steps: Annotated[int | None, typer.Option(min=1, help="Cap every stage at this many steps.")] = None,
    stage: Annotated[str | None, typer.Option(help="Train one stage only: autoencoder or diffusion (LDM).")] = None,
    manifest: Annotated[Path | None, typer.Option(help="brain-age: manifest of real images with ages.")] = None,
    kind: Annotated[str, typer.Option(help="brain-age: sklearn (PCA + ridge) or cnn (small 3D CNN).")] = "sklearn",
    store: Annotated[Path | None, typer.Option(help="brain-age: a store whose ImageSpace the model uses.")] = None,
    spacing: Annotated[
        float | None, typer.Option(help="brain-age: else the 160×224×160 mm grid at this spacing.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="brain-age: seed for the split and the fit.")] = 0,
) -> None:
    """Train a generator (ddpm or ldm) from a recipe, or a brain-age model (`synthkit train brain-age …`)."""
    from synthkit.generate.engine import resolve_device

    if str(recipe) == "brain-age":
        _train_brain_age(manifest, out, kind, store, spacing, seed, resolve_device(device))
        return
    if manifest is not None or store is not None or spacing is not None:
        raise UsageError("--manifest/--store/--spacing belong to 'synthkit train brain-age'")
    from synthkit.training.run import train as run_training

    res = run_training(
        recipe,
        out=out,
        resume=resume,
        device=device,
        max_steps=max_steps,
        stage=stage,
        echo=lambda m: console.print(m, markup=False, highlight=False),
    )
    console.print(f"[green]done[/green]: checkpoint {res.checkpoint}")
    console.print(
        f"  metrics: {res.out / 'metrics.csv'}, loss curve: {res.out / 'loss.png'}, previews: {res.out / 'previews'}"
    )
    if res.checkpoint.name == "model.safetensors":
        console.print(f"  next: synthkit sample {res.checkpoint} --n 8 --out preview.png")


def _train_brain_age(manifest, out, kind, store, spacing, seed, device) -> None:
    from synthkit.space import ImageSpace
    from synthkit.training.brain_age import train_brain_age

    if manifest is None or out is None:
        raise UsageError("synthkit train brain-age needs --manifest M.csv and --out MODEL.safetensors")
    if (store is None) == (spacing is None):
        raise UsageError("give the ImageSpace with --store STORE (its space) or --spacing MM")
    if store is not None:
        from synthkit.store.reader import open_store

        space = open_store(store)[1].space
    else:
        space = ImageSpace.centered([round(e / spacing) for e in (160, 224, 160)], spacing)
    res = train_brain_age(
        manifest,
        out,
        space,
        kind=kind,
        seed=seed,
        device=device,
        echo=lambda m: console.print(m, markup=False, highlight=False),
    )
    h = res.held_out
    console.print(
        f"[green]wrote[/green] {res.path}: held-out r = {h['pearson_r']:.3f}, MAE = {h['mae']:.2f} years "
        f"(n = {h['n']}); scatter: {res.figure}"
    )


@app.command(rich_help_panel=MODELS)
def sample(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint (.safetensors) or 'phantom'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write (3 mid-slices per sample).")] = Path(
        "preview.png"
    ),
    n: Annotated[int, typer.Option("--n", min=1, max=64, help="Number of samples.")] = 8,
    condition: Annotated[
        list[str] | None, typer.Option("--condition", "-c", help="NAME=VALUE or a distribution, as for generate.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Root seed.")] = 0,
    sampler: Annotated[str | None, typer.Option(help="ddim, ddpm or rflow (default: the recipe's).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Sampling steps (default: the recipe's).")] = None,
    guidance_scale: Annotated[float | None, typer.Option(min=0.0, help="Classifier-free guidance scale.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    nifti: Annotated[Path | None, typer.Option(help="Also write each sample as NIfTI into this folder.")] = None,
) -> None:
    """Draw a few samples for a quick look (PNG of orthogonal mid-slices)."""
    from synthkit.data.io import save_nifti
    from synthkit.generate.engine import resolve_device
    from synthkit.generate.plan import ConditionSpec, make_plan
    from synthkit.models.registry import load_generator
    from synthkit.viz import slice_grid

    dev = resolve_device(device)
    gen = load_generator(checkpoint, device=dev)
    if sampler is not None or steps is not None or guidance_scale is not None:
        if not hasattr(gen, "sampling"):
            raise UsageError("--sampler/--steps/--guidance-scale apply to diffusion checkpoints only")
        upd = {
            k: v
            for k, v in {"sampler": sampler, "steps": steps, "guidance_scale": guidance_scale}.items()
            if v is not None
        }
        from synthkit.config import SamplingConfig, validate

        gen.sampling = validate(
            SamplingConfig, {**gen.sampling.model_dump(), **upd}, "--sampler/--steps/--guidance-scale"
        )
    specs = [ConditionSpec.parse(c) for c in condition or []]
    plan = make_plan(
        n, seed, condition_names=gen.condition_names, distribution=getattr(gen, "covariates", None), specs=specs
    )
    s = gen.sample(n, seeds=[int(x) for x in plan.seeds], conditions=plan.conditions, device=dev)
    titles = [", ".join(f"{k}={v[i]:.4g}" for k, v in plan.conditions.items()) for i in range(n)]
    slice_grid(list(s.images), out, titles=titles, suptitle=f"{gen.kind}: {Path(str(checkpoint)).name}")
    if nifti is not None:
        for i, img in enumerate(s.images):
            save_nifti(img, gen.space.affine_array, nifti / f"sample_{i:03d}.nii.gz")
    console.print(f"[green]wrote[/green] {out}" + (f" and {n} NIfTI files in {nifti}" if nifti else ""))


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


# ----------------------------------------------------------------------------------------------------- audit


@app.command(rich_help_panel=AUDIT)
def audit(
    store: Annotated[Path, typer.Argument(help="The synthetic cohort store.")],
    reference: Annotated[Path, typer.Option(help="Manifest of real reference images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (report.json, report.html, PNGs, NIfTIs).")],
    recipe: Annotated[Path | None, typer.Option(help="Audit recipe YAML (metrics, sizes, seeds).")] = None,
    n_synthetic: Annotated[int | None, typer.Option(min=2, help="Synthetic samples to use (default 1000).")] = None,
    n_pairs: Annotated[
        int | None, typer.Option(min=1, help="Random pairs for MS-SSIM diversity (default 1000).")
    ] = None,
    med3d_weights: Annotated[
        Path | None, typer.Option(help="MedicalNet weights (resnet_*_23dataset.pth); without them a named fallback.")
    ] = None,
    synthseg_model: Annotated[
        Path | None,
        typer.Option(help="SynthSeg weights (synthseg_2.0.h5) for the conditioning check; else weight-free."),
    ] = None,
    brain_age: Annotated[Path | None, typer.Option(help="A brain-age model (synthkit train brain-age).")] = None,
    training: Annotated[
        Path | None, typer.Option(help="The generator's training manifest: memorisation check.")
    ] = None,
    show_training_ids: Annotated[
        bool, typer.Option("--show-training-ids", help="Name training subjects in the report (off: privacy).")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int | None, typer.Option(min=0, help="Seed for sample and pair selection.")] = None,
) -> None:
    """Audit a synthetic cohort against real data: FID, MMD, MS-SSIM, 4-G-R-SSIM, PSNR, variance maps."""
    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe, load_audit_recipe
    from synthkit.generate.engine import resolve_device

    r = load_audit_recipe(recipe) if recipe is not None else AuditRecipe()
    upd = {k: v for k, v in {"n_synthetic": n_synthetic, "n_pairs": n_pairs, "seed": seed}.items() if v is not None}
    r = r.model_copy(update=upd)
    res = run_audit(
        store,
        reference,
        out,
        r,
        med3d_weights=med3d_weights,
        synthseg_model=synthseg_model,
        brain_age=brain_age,
        training=training,
        show_training_ids=show_training_ids,
        device=resolve_device(device),
        echo=lambda m: console.print(m, markup=False, highlight=False),
    )
    for w in res.report["warnings"]:
        err_console.print(f"warning: {w}", markup=False, highlight=False)
    _print_audit(res.report)
    console.print(f"[green]report[/green]: {res.out / 'report.html'} (and report.json)")


@app.command(rich_help_panel=AUDIT)
def segment(
    inputs: Annotated[list[Path], typer.Argument(help="NIfTI files, or one cohort store (.zarr).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for label maps and volumes.csv.")],
    synthseg_model: Annotated[
        Path | None, typer.Option(help="SynthSeg weights (synthseg_1.0.h5 / synthseg_2.0.h5); else weight-free.")
    ] = None,
    freesurfer: Annotated[bool, typer.Option("--freesurfer", help="Use mri_synthseg if it is on PATH.")] = False,
    indices: Annotated[str | None, typer.Option(help="For a store: which samples (0:10, 5, ::100).")] = None,
) -> None:
    """Segment images (files or a store): label maps and a volumes CSV (ventricles, brain, GM, WM, CSF, mm³)."""
    import pandas as pd
    from rich.progress import track

    from synthkit.data.io import load_nifti, save_nifti
    from synthkit.metrics.segmentation import make_segmenter
    from synthkit.store.writer import is_store

    seg = make_segmenter(synthseg_model, prefer_freesurfer=freesurfer)
    console.print(f"segmenter: {seg.name}", markup=False)
    jobs: list[tuple[str, object]] = []
    if len(inputs) == 1 and is_store(inputs[0]):
        from synthkit.store.export import parse_indices
        from synthkit.store.reader import open_cohort

        cohort = open_cohort(inputs[0], allow_incomplete=True)
        for pos in parse_indices(indices, len(cohort)):
            jobs.append((f"sample_{int(cohort.indices[pos]):06d}", (cohort, pos)))
    else:
        if indices is not None:
            raise UsageError("--indices applies to a store only")
        for p in inputs:
            if not p.exists():
                raise UsageError(f"{p}: file not found")
            jobs.append((p.name.removesuffix(".gz").removesuffix(".nii"), p))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, src in track(jobs, description="segmenting", transient=True):
        if isinstance(src, Path):
            img, aff = load_nifti(src)
        else:
            cohort, pos = src  # type: ignore[misc]
            img, aff = cohort.image(pos), cohort.space.affine_array
        r = seg.segment(img, aff)
        save_nifti(r.labels.astype("int16"), aff, out / f"{name}_labels.nii.gz", dtype="int16")
        rows.append({"name": name, **r.volumes})
    pd.DataFrame(rows).to_csv(out / "volumes.csv", index=False)
    console.print(f"[green]wrote[/green] {len(rows)} label maps and {out / 'volumes.csv'}")


def _print_audit(report: dict) -> None:
    from rich.table import Table

    m = report["metrics"]
    t = Table(title="audit", title_justify="left")
    for c in ("metric", "synthetic", "real (reference)"):
        t.add_column(c, justify="left" if c == "metric" else "right")
    for k in ("fid", "mmd", "mmd_images"):
        if k in m:
            t.add_row(k, f"{m[k]['synthetic_vs_real']:.4g}", f"{m[k]['real_vs_real']:.4g}")
    for k in ("ms_ssim", "4gr_ssim"):
        if k in m:
            t.add_row(k + " (diversity)", f"{m[k]['synthetic']['mean']:.4g}", f"{m[k]['real']['mean']:.4g}")
    for name, rows in (m.get("conditioning") or {}).get("conditions", {}).items():
        s = rows["synthetic_requested_vs_measured"]
        ceiling = rows.get("reference_recorded_vs_measured", {}).get("pearson_r")
        t.add_row(
            f"{name}: r(requested, measured)", f"{s['pearson_r']:.3f}", "–" if ceiling is None else f"{ceiling:.3f}"
        )
    if m.get("brain_age", {}).get("synthetic_requested_vs_predicted"):
        b = m["brain_age"]
        ceiling = (b.get("reference_recorded_vs_predicted") or b.get("held_out_at_training") or {}).get("pearson_r")
        t.add_row(
            "age: r(requested, predicted)",
            f"{b['synthetic_requested_vs_predicted']['pearson_r']:.3f}",
            "–" if ceiling is None else f"{ceiling:.3f}",
        )
    if m.get("memorisation"):
        t.add_row("memorisation: flagged", f"{100 * m['memorisation']['fraction_flagged']:.1f} %", "0 % by definition")
    if "psnr" in m:
        t.add_row(
            "psnr vs nearest real",
            f"{m['psnr']['synthetic_vs_nearest_real']['psnr']:.4g}",
            f"{m['psnr']['real_vs_nearest_real']['psnr']:.4g}",
        )
    console.print(t)


# ------------------------------------------------------------------------------------------ getting started


@app.command(rich_help_panel=START)
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("demo-output"),
    n: Annotated[int, typer.Option(min=8, help="Phantom subjects to train on.")] = 64,
    n_samples: Annotated[int, typer.Option(min=1, help="Synthetic samples to generate.")] = 128,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Run the pipeline end to end on phantoms: cohort → train an LDM → generate a store → verify → audit."""
    import yaml

    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe
    from synthkit.data import phantom as ph
    from synthkit.data.manifest import validate_manifest
    from synthkit.generate.engine import GenerateOptions, resolve_device, run
    from synthkit.store.verify import verify_store
    from synthkit.training.run import train as run_training

    say = lambda msg: console.print(msg, markup=False, highlight=False)  # noqa: E731
    space = ph.default_space(4.0)
    console.rule("synthkit demo")
    say("phantom cohort → train a small latent diffusion model → generate a synthetic cohort → verify → audit")
    say(f"1/5 phantom cohort: {n} subjects at {space.describe()}")
    manifest = ph.write_cohort(out / "phantoms", n, space=space, seed=0)
    _, problems = validate_manifest(manifest)
    if problems:
        raise SynthkitError(f"{manifest}: {len(problems)} problems, first: {problems[0]}")
    recipe = yaml.safe_load(DEMO_RECIPE.read_text())
    recipe["data"]["manifest"] = str(manifest.resolve())
    recipe_path = out / "demo-ldm.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    say(f"2/5 training the LDM of {recipe_path} (autoencoder, then latent diffusion)")
    trained = run_training(
        recipe_path,
        out=out / "run",
        device=device,
        echo=lambda m: say("    " + m),
        resume=(out / "run" / "state").exists(),
    )
    store = out / "cohort.zarr"
    say(f"3/5 generating {n_samples} samples from {trained.checkpoint} into {store}")
    res = run(
        GenerateOptions(
            out=store,
            model=str(trained.checkpoint),
            n=n_samples,
            shard_size=16,
            batch_size=8,
            workers=2,
            device=device,
            overwrite=store.exists(),
        ),
        echo=lambda msg: say("    " + msg),
    )
    say("4/5 verifying the store")
    report = verify_store(store)
    if not report.ok:
        raise SynthkitError(f"{store}: {report.errors[0]}")
    say("5/5 auditing the synthetic cohort against the phantom cohort")
    audit_dir = out / "audit"
    audited = run_audit(
        store,
        manifest,
        audit_dir,
        AuditRecipe(n_synthetic=n_samples, n_pairs=200, bootstrap=20, n_segment=64, extrapolation_per_level=2),
        device=resolve_device(device),
        echo=lambda m: say("    " + m),
    )
    _print_audit(audited.report)
    console.rule("done")
    say(f"phantom cohort (images, labels, manifest): {out / 'phantoms'}")
    say(f"checkpoint: {trained.checkpoint}")
    say(f"training metrics and loss curve: {trained.out / 'metrics.csv'}, {trained.out / 'loss.png'}")
    say(f"preview images: {trained.out / 'previews'}")
    say(f"synthetic cohort ({res.n} samples, verified): {store}")
    say(f"  look inside: synthkit inspect {store}; in Python: synthkit.open_cohort('{store}')")
    say(f"audit report: {audit_dir / 'report.html'} (numbers in {audit_dir / 'report.json'})")


DEMO_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo-ldm.yaml"


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
