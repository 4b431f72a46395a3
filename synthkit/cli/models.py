"""Commands: ``train`` (diffusion recipes and brain-age models) and ``sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthkit.cli.app import MODELS, GuidanceScale, Sampler, Steps, app, console
from synthkit.errors import UsageError


@app.command(rich_help_panel=MODELS)
def train(
    recipe: Annotated[Path, typer.Argument(help="Training recipe (YAML), or 'brain-age' for a brain-age model.")],
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default runs/<recipe name>); the model file for brain-age.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run at its saved step.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    max_steps: Annotated[int | None, typer.Option(min=1, help="Cap every stage at this many steps.")] = None,
    stage: Annotated[
        str | None,
        typer.Option(help="Train one stage only: autoencoder (ldm), registration (deformation) or diffusion."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for torch (default: the cores not busy with other work).")
    ] = None,
    manifest: Annotated[Path | None, typer.Option(help="brain-age: manifest of real images with ages.")] = None,
    kind: Annotated[str, typer.Option(help="brain-age: sklearn (PCA + ridge) or cnn (small 3D CNN).")] = "sklearn",
    store: Annotated[Path | None, typer.Option(help="brain-age: a store whose ImageSpace the model uses.")] = None,
    spacing: Annotated[
        float | None, typer.Option(help="brain-age: else the 160×224×160 mm grid at this spacing.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="brain-age: seed for the split and the fit.")] = 0,
) -> None:
    """Train a generator (ddpm, ldm or deformation) from a recipe, or a brain-age model (`train brain-age …`)."""
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
        threads=threads,
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
    sampler: Sampler = None,
    steps: Steps = None,
    guidance_scale: GuidanceScale = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    nifti: Annotated[Path | None, typer.Option(help="Also write each sample as NIfTI into this folder.")] = None,
) -> None:
    """Draw a few samples for a quick look (PNG of orthogonal mid-slices)."""
    from synthkit.config import given_sampling
    from synthkit.data.io import save_nifti
    from synthkit.generate.checkpoint import checkpoint_errors, load_checked
    from synthkit.generate.engine import resolve_device
    from synthkit.generate.plan import ConditionSpec, make_plan
    from synthkit.models.registry import with_sampling
    from synthkit.viz import slice_grid

    dev = resolve_device(device)
    gen = load_checked(checkpoint, device=dev)
    with_sampling(gen, given_sampling(sampler, steps, guidance_scale), checkpoint)
    specs = [ConditionSpec.parse(c) for c in condition or []]
    plan = make_plan(
        n, seed, condition_names=gen.condition_names, distribution=getattr(gen, "covariates", None), specs=specs
    )
    with checkpoint_errors(checkpoint):
        s = gen.sample(n, seeds=[int(x) for x in plan.seeds], conditions=plan.conditions, device=dev)
    titles = [", ".join(f"{k}={v[i]:.4g}" for k, v in plan.conditions.items()) for i in range(n)]
    slice_grid(list(s.images), out, titles=titles, suptitle=f"{gen.kind}: {Path(str(checkpoint)).name}")
    if nifti is not None:
        for i, img in enumerate(s.images):
            save_nifti(img, gen.space.affine_array, nifti / f"sample_{i:03d}.nii.gz")
    console.print(f"[green]wrote[/green] {out}" + (f" and {n} NIfTI files in {nifti}" if nifti else ""))


@app.command(rich_help_panel=MODELS)
def morph(
    checkpoint: Annotated[Path, typer.Argument(help="A deformation checkpoint (.safetensors).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNG strip and the NIfTI series.")] = Path(
        "morph"
    ),
    frames: Annotated[int, typer.Option(min=2, max=64, help="Steps of η from 0 (template) to 1 (sample).")] = 6,
    condition: Annotated[list[str] | None, typer.Option("--condition", "-c", help="NAME=VALUE, as for sample.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="The sample's seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """The continuous deformation template → sample (η·velocity for η in [0, 1]): PNG strip and NIfTI series."""
    from synthkit.data.io import save_nifti
    from synthkit.generate.engine import resolve_device
    from synthkit.generate.plan import ConditionSpec, make_plan
    from synthkit.models.registry import load_generator
    from synthkit.viz import slice_grid

    dev = resolve_device(device)
    gen = load_generator(checkpoint, device=dev)
    if gen.kind != "deformation":
        raise UsageError(f"{checkpoint}: morph needs a deformation model, this is a {gen.kind} model")
    specs = [ConditionSpec.parse(c) for c in condition or []]
    plan = make_plan(1, seed, condition_names=gen.condition_names, distribution=gen.covariates, specs=specs)
    seeds = [int(x) for x in plan.seeds]
    velocity = gen.velocity(1, seeds, plan.conditions, dev)  # type: ignore[attr-defined]
    etas = [i / (frames - 1) for i in range(frames)]
    strip = [gen.render(velocity, seeds, eta=e).images[0] for e in etas]  # type: ignore[attr-defined]
    out.mkdir(parents=True, exist_ok=True)
    for e, img in zip(etas, strip, strict=True):
        save_nifti(img, gen.space.affine_array, out / f"eta_{e:.3f}.nii.gz")
    cond = ", ".join(f"{k}={v[0]:.4g}" for k, v in plan.conditions.items())
    slice_grid(strip, out / "morph.png", titles=[f"η = {e:.2f}" for e in etas], suptitle=f"template → sample ({cond})")
    console.print(f"[green]wrote[/green] {out / 'morph.png'} and {frames} NIfTI files in {out}")
