"""``load_generator``: a model name (``phantom``) or a checkpoint path → a Generator; ``with_sampling``: its
sampling settings replaced (``sample``, ``generate``, the audit's probe)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synthkit.errors import UsageError
from synthkit.models.base import Generator


def load_generator(model: str | Path = "phantom", *, spacing: float | None = None, device: str = "cpu") -> Generator:
    """Load the built-in phantom or a trained checkpoint.

    Args:
        model: ``"phantom"`` or the path of a ``.safetensors`` checkpoint.
        spacing: the phantom's voxel size in mm (default 4); a checkpoint fixes its own ImageSpace.
        device: where a checkpoint's network runs.
    """
    if str(model) == "phantom":
        from synthkit.models.phantom import PhantomGenerator

        return PhantomGenerator(spacing=4.0 if spacing is None else float(spacing))
    if spacing is not None:
        raise UsageError("--spacing applies to the phantom only; a checkpoint fixes its own ImageSpace")
    from synthkit.models.base import load_checkpoint

    path = Path(model)
    tensors, meta = load_checkpoint(path)
    kind = meta["kind"]
    if kind == "ddpm":
        from synthkit.models.ddpm import DDPMGenerator

        return DDPMGenerator.from_checkpoint(tensors, meta, path.resolve(), device)
    if kind == "ldm":
        from synthkit.models.ldm import LDMGenerator

        return LDMGenerator.from_checkpoint(tensors, meta, path.resolve(), device)
    if kind == "deformation":
        from synthkit.models.deformation import DeformationGenerator

        return DeformationGenerator.from_checkpoint(tensors, meta, path.resolve(), device)
    if kind == "icn":
        from synthkit.models.icn import ICNGenerator

        return ICNGenerator.from_checkpoint(tensors, meta, path.resolve(), device)
    if kind in ("autoencoder", "registration"):
        raise UsageError(f"{model}: a stage-1 checkpoint ({kind}) cannot generate; use the stage-2 model")
    raise UsageError(f"{model}: unknown model kind {kind!r} (this synthkit knows ddpm, ldm, deformation, icn)")


def with_sampling(gen: Generator, settings: Mapping[str, Any], model: str | Path) -> Generator:
    """Replace a diffusion generator's sampler, steps or guidance scale (``sample`` and ``generate``); a setting
    the model cannot honour is one line, before anything is drawn."""
    if not settings:
        return gen
    from synthkit.config import SamplingConfig, sampling_flag, validate

    flags = "/".join(sampling_flag(k) for k in settings)
    if not hasattr(gen, "sampling"):
        verb = "applies" if len(settings) == 1 else "apply"
        raise UsageError(f"{flags} {verb} to diffusion checkpoints only ({gen.kind} has no sampler to set)")

    cfg = validate(SamplingConfig, {**gen.sampling.model_dump(), **settings}, flags)
    scheduler = gen.core.scheduler_cfg

    def name(key: str) -> str:  # a setting the user did not give is the recipe's
        return sampling_flag(key) if key in settings else f"the recipe's {key}"

    if cfg.steps > scheduler.num_train_timesteps:
        total = scheduler.num_train_timesteps
        raise UsageError(f"{name('steps')} {cfg.steps}: {model} was trained with {total} timesteps")
    if "sampler" in settings and (cfg.sampler == "rflow") != (scheduler.kind == "rflow"):
        fits = "rflow" if scheduler.kind == "rflow" else "ddpm, ddim or dpmpp_2m"
        raise UsageError(
            f"--sampler {cfg.sampler}: {model} was trained with the {scheduler.kind} scheduler; use {fits}"
        )
    if cfg.guidance_scale != 1.0 and (not gen.condition_names or gen.core.codec.null(1, "cpu") is None):
        why = "is unconditional" if not gen.condition_names else "was trained without condition dropout"
        raise UsageError(
            f"{name('guidance_scale')} {cfg.guidance_scale:g}: {model} {why}, so there is nothing to guide with"
        )
    gen.sampling = cfg
    return gen
