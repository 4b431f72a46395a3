"""``synthkit train``: recipe → checked data → stages → checkpoints, metrics, previews."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from synthkit.config import ICNRecipe, LDMRecipe, load_recipe
from synthkit.data.dataset import load_training_data
from synthkit.data.preprocess import PreprocessParams
from synthkit.errors import UsageError
from synthkit.training.common import RunContext, seed_everything
from synthkit.training.trainer import MetricsLog

#: the stages of each recipe kind, in order (a family with a stage 1 of its own adds it here)
STAGES: dict[str, tuple[str, ...]] = {
    "ldm": ("autoencoder", "diffusion"),
    "ddpm": ("diffusion",),
    "deformation": ("registration", "diffusion"),
    "icn": ("diffusion",),
}


def icn_data_options(recipe) -> dict:
    """The network is categorical; a 2D icn model learns from the axial slices that hold enough brain."""
    if not isinstance(recipe, ICNRecipe):
        return {}
    opts: dict = {"categorical": [recipe.icn.network_column]}
    if recipe.icn.depth is not None:
        from synthkit.data.preprocess import brain_slices

        opts["slices"] = brain_slices(recipe.data_space(), recipe.icn.min_slice_brain_fraction)
    return opts


def stage_runner(name: str) -> Callable:
    """``(ctx, steps, resume) -> checkpoint path`` of a stage (imported only when it runs)."""
    if name == "autoencoder":
        from synthkit.training.autoencoder import train_autoencoder

        return train_autoencoder
    if name == "registration":
        from synthkit.training.registration import train_registration

        return train_registration
    from synthkit.training.diffusion import train_diffusion

    return train_diffusion


def stage_steps(recipe, name: str) -> int:
    if name == "registration":
        return recipe.registration.iterations
    section = recipe.autoencoder_training if name == "autoencoder" else recipe.training
    return section.steps


def free_cores() -> int:
    """CPU cores not busy with other work: the cores this process may use minus the 1-minute load average
    (another job on one of two cores made training 3× slower with torch's default of all cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


@dataclass
class TrainResult:
    out: Path
    checkpoint: Path
    stages: list[str]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UsageError(f"--device {device!r}: expected auto, cpu or cuda")
    return device


def train(
    recipe_path: str | Path,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    device: str = "auto",
    max_steps: int | None = None,
    stage: str | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    threads: int | None = None,
) -> TrainResult:
    """Train every stage of a recipe (or one with ``stage``); ``max_steps`` caps each stage's steps.

    ``threads`` sets torch's CPU threads (default: the cores not busy with other work). A run folder that a
    failed run created is removed unless a stage saved resumable state, in which case ``--resume`` continues.
    """
    recipe = load_recipe(recipe_path)
    dev = resolve_device(device)
    if max_steps is not None and max_steps < 1:
        raise UsageError("--max-steps must be at least 1")
    if threads is not None and threads < 1:
        raise UsageError("--threads must be at least 1")
    stages = list(STAGES[recipe.kind])
    if stage is not None:
        if stage not in stages:
            raise UsageError(f"--stage {stage!r}: a {recipe.kind} recipe has stage(s) {', '.join(stages)}")
        stages = [stage]
    out_p = Path(out) if out is not None else Path("runs") / recipe.name
    if out_p.exists() and _has_state(out_p) and not resume and stage is None:
        raise UsageError(f"{out_p} already holds a training run; use --resume to continue it or another --out")
    needs_ae = "diffusion" in stages and isinstance(recipe, LDMRecipe) and "autoencoder" not in stages
    if needs_ae and not (out_p / "autoencoder.safetensors").exists():
        raise UsageError(f"--stage diffusion needs the trained autoencoder {out_p / 'autoencoder.safetensors'}")
    # everything about the data is checked before any training starts
    p = recipe.data.preprocess
    data = load_training_data(
        recipe.data.manifest,
        recipe.data_space() if isinstance(recipe, ICNRecipe) else recipe.space.to_space(),
        recipe.data.conditions,
        val_fraction=recipe.data.val_fraction,
        seed=recipe.training.seed,
        params=PreprocessParams.from_config(p),
        cache_dir=recipe.data.cache_dir,
        **icn_data_options(recipe),
    )
    created = not out_p.exists()
    out_p.mkdir(parents=True, exist_ok=True)
    try:
        return _run_stages(recipe, recipe_path, out_p, data, dev, stages, resume, max_steps, progress, echo, threads)
    except BaseException:
        if _has_state(out_p):
            echo(f"training stopped; {out_p} keeps its saved state: add --resume to continue")
        elif created:
            shutil.rmtree(out_p, ignore_errors=True)
            echo(f"training stopped before any state was saved; removed {out_p}")
        else:
            echo(f"training stopped before any state was saved; {out_p} existed before and is kept")
        raise


def _run_stages(recipe, recipe_path, out_p, data, dev, stages, resume, max_steps, progress, echo, threads):
    import torch

    n_threads = threads or free_cores()
    if dev == "cpu":
        torch.set_num_threads(n_threads)
    if Path(recipe_path).resolve() != (out_p / "recipe.yaml").resolve():
        shutil.copyfile(recipe_path, out_p / "recipe.yaml")
    (out_p / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    echo(
        f"{recipe.kind} '{recipe.name}': {len(data.train)} training / {len(data.val)} validation images, "
        f"{recipe.space.to_space().describe()}, conditions: {', '.join(recipe.data.conditions) or 'none'}; "
        f"device {dev}" + (f", {n_threads} CPU thread(s)" if dev == "cpu" else "")
    )
    data.train.load(max_memory_gb=8, progress="preprocessing training images" if progress else None)
    data.val.load(max_memory_gb=2, progress="preprocessing validation images" if progress else None)
    seed_everything(recipe.training.seed)
    log = MetricsLog(out_p / "metrics.csv")
    ctx = RunContext(recipe, out_p, data, dev, log, progress, echo)
    checkpoint = out_p / "model.safetensors"
    for s in stages:
        steps = min(stage_steps(recipe, s), max_steps) if max_steps else stage_steps(recipe, s)
        log.load(s, upto=_resumed_step(out_p, s) if resume else 0)
        echo(f"stage {s}: {steps} steps" + (" (resuming)" if resume and (out_p / "state" / f"{s}.pt").exists() else ""))
        checkpoint = stage_runner(s)(ctx, steps, resume)
        log.write()
        log.plot(out_p / "loss.png")
    return TrainResult(out_p, checkpoint, stages)


def _has_state(out: Path) -> bool:
    """Whether a run folder holds work that ``--resume`` continues (a stage's state, or registered fields)."""
    return any((out / "state").glob("*.pt")) or (out / "fields.safetensors").exists()


def _resumed_step(out: Path, stage: str) -> int:
    f = out / "state" / f"{stage}.pt"
    if not f.exists():
        return 0
    from synthkit.training.trainer import load_state

    return int(load_state(f)["step"])
