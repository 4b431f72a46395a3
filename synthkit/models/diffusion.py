"""The denoising core shared by the ``ddpm`` and ``ldm`` generators: network + conditioning + sampling.

Conditioning follows Pinaya et al.: the context vector is concatenated to the input as constant channels
**and** fed to cross-attention as a ``(B, 1, C)`` token — either can be switched off in the recipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthkit.config import SamplingConfig, SchedulerConfig
from synthkit.data.covariates import CovariateDistribution
from synthkit.errors import CheckpointError
from synthkit.models.base import Samples, check_seeds, file_sha256
from synthkit.models.conditioning import ConditionCodec
from synthkit.models.networks import build_sampling_scheduler, build_unet
from synthkit.sampling.guidance import guided
from synthkit.sampling.loops import sample_ddim, sample_ddpm, sample_dpmpp_2m, sample_rflow
from synthkit.sampling.noise import generators, randn
from synthkit.space import ImageSpace


@dataclass
class DiffusionCore:
    unet: torch.nn.Module
    codec: ConditionCodec
    scheduler_cfg: SchedulerConfig
    concat: bool
    crossattn: bool
    spatial_dims: int = 3
    clip_sample: bool = False
    embed: bool = False

    def model(self, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
        """The network with its conditioning inputs: ``x`` is (B, C, *spatial)."""
        if not torch.is_grad_enabled():
            return fixed_batch_on_cpu(self._model, x, t, ctx, chunk=cpu_chunk(x.shape[2:]))
        return self._model(x, t, ctx)

    def _model(self, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
        parts = [x]
        if ctx is not None and self.concat:
            spatial = (1,) * (x.ndim - 2)
            parts.append(ctx.reshape(*ctx.shape, *spatial).expand(-1, -1, *x.shape[2:]))
        if ctx is not None and hasattr(self.unet, "condition_fields"):
            parts.append(self.unet.condition_fields(ctx).to(x.dtype))
        inp = torch.cat(parts, dim=1) if len(parts) > 1 else x
        context = ctx[:, None, :] if (ctx is not None and self.crossattn) else None
        labels = ctx if (ctx is not None and self.embed) else None
        return self.unet(inp, t, context=context, class_labels=labels)

    def sample(
        self,
        shape: Sequence[int],
        seeds: Sequence[int],
        conditions: Mapping[str, np.ndarray] | None,
        *,
        device: str,
        sampling: SamplingConfig,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Denoise from per-sample noise to samples of ``(len(seeds), *shape)`` (network space, not [0, 1])."""
        n = len(seeds)
        gens = generators(seeds, device)
        x = randn(shape, gens, device)
        ctx = self.codec.encode(conditions, n, device)
        null = self.codec.null(n, device) if sampling.guidance_scale != 1.0 else None
        denoise = guided(self.model, ctx, null, sampling.guidance_scale)
        if dtype is not None and str(device).startswith("cuda"):
            inner = denoise

            def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                with torch.autocast("cuda", dtype=dtype):
                    return inner(x, t).float()

        sampler = "rflow" if self.scheduler_cfg.kind == "rflow" else sampling.sampler
        scheduler = build_sampling_scheduler(self.scheduler_cfg, sampler, self.clip_sample, self.spatial_dims)
        with torch.inference_mode():
            if sampler == "ddim":
                return sample_ddim(denoise, scheduler, x, gens, steps=sampling.steps, eta=sampling.eta)
            if sampler == "ddpm":
                return sample_ddpm(denoise, scheduler, x, gens, steps=sampling.steps)
            if sampler == "dpmpp_2m":
                return sample_dpmpp_2m(denoise, scheduler, x, steps=sampling.steps)
            return sample_rflow(denoise, scheduler, x, steps=sampling.steps)


#: on the CPU, networks run on batches of exactly this many samples (see :func:`fixed_batch_on_cpu`) ...
CPU_CHUNK = 4
#: ... unless its output has more voxels per sample than this (a 1 mm brain has 5.7 M): then one at a time
CPU_CHUNK_MAX_VOXELS = 1 << 20


def cpu_chunk(spatial: Sequence[int]) -> int:
    """The fixed CPU batch for a network whose output has this spatial shape (a property of the model, never
    of the requested batch, so samples stay batch-invariant). Padding one large sample to four cost 4× the
    memory: Pinaya's 160×224×160 decoder went past 20 GB for a single sample."""
    return CPU_CHUNK if int(np.prod([int(s) for s in spatial])) <= CPU_CHUNK_MAX_VOXELS else 1


def fixed_batch_on_cpu(fn, x: torch.Tensor, *rest: torch.Tensor | None, chunk: int = CPU_CHUNK) -> torch.Tensor:
    """Run ``fn`` on the CPU in chunks of exactly ``chunk`` samples (the last one padded); batched as it is
    elsewhere.

    PyTorch picks a 3D convolution implementation by input size (its native kernel for a small batch of 1,
    oneDNN otherwise) and oneDNN picks algorithms by batch size, so the same sample in batches of 1, 2 and 4
    differs in the last bits (measured: up to 3e-6 in the UNet, 7e-6 in the decoder) — but never with its
    position inside a batch of fixed size. Fixed-size chunks therefore keep every CPU sample byte-identical
    whatever batch it was generated in, and keep oneDNN's speed (~4× the batch-of-1 kernel per sample here).
    """
    n = x.shape[0]
    if x.device.type != "cpu":
        return fn(x, *rest)
    outs = []
    for a in range(0, n, chunk):
        idx = torch.arange(a, a + chunk).clamp(max=n - 1)  # pad by repeating the last sample
        out = fn(x[idx], *(None if r is None else r[idx] for r in rest))
        outs.append(out[: min(chunk, n - a)])
    return torch.cat(outs)


class DiffusionGenerator:
    """Common part of the ``ddpm`` and ``ldm`` generators (protocol in :mod:`synthkit.models.base`)."""

    kind = "diffusion"

    def __init__(
        self, core: DiffusionCore, space: ImageSpace, meta: dict[str, Any], path: Path | None, device: str
    ) -> None:
        self.core = core
        self.space = space
        self.meta = meta
        self.path = path
        self.device = device
        self.condition_names = tuple(core.codec.names)
        self.sampling = SamplingConfig(**meta["recipe"].get("sampling", {}))
        if core.scheduler_cfg.kind == "rflow":  # such a model only samples by rflow, whatever its recipe says
            self.sampling = self.sampling.model_copy(update={"sampler": "rflow"})
        cov = meta.get("covariates")
        self.covariates = CovariateDistribution.from_dict(cov) if cov else None
        self._sha: str | None = None

    # the network-space shape of one sample, and how to turn network output into [0, 1] images
    def _shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _to_images(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(
        self,
        n: int,
        *,
        seeds: Sequence[int],
        conditions: Mapping[str, np.ndarray] | None = None,
        device: str | None = None,
    ) -> Samples:
        x = self._denoise(n, seeds, conditions, device)
        with torch.inference_mode():
            images = self._to_images(x).float().clamp(0, 1)
        images = images.reshape(n, *self.space.shape).cpu().numpy()
        return Samples(images=np.ascontiguousarray(images, dtype=np.float32))

    def _denoise(self, n: int, seeds: Sequence[int], conditions, device: str | None) -> torch.Tensor:
        """Network-space samples (n, *shape), on ``device`` (default: the generator's; bf16 on CUDA)."""
        seeds = check_seeds(n, seeds)
        dev = device or self.device
        if dev != self.device:
            self.to(dev)
        amp = torch.bfloat16 if str(dev).startswith("cuda") else None
        return self.core.sample(self._shape(), seeds, conditions, device=dev, sampling=self.sampling, dtype=amp)

    def to(self, device: str) -> DiffusionGenerator:
        self.core.unet.to(device)
        self.device = device
        return self

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.path is not None:
            self._sha = file_sha256(self.path)
        return {
            "kind": self.kind,
            "checkpoint": None if self.path is None else str(self.path),
            "checkpoint_sha256": self._sha,
            "recipe": self.meta.get("recipe"),
            "step": self.meta.get("step"),
            "sampling": self.sampling.model_dump(),
        }


def core_from_meta(
    meta: Mapping[str, Any], recipe: Any, in_channels: int, clip_sample: bool, path: Path | None = None
) -> DiffusionCore:
    """Rebuild the denoising core described by a checkpoint's metadata (weights loaded separately)."""
    codec = ConditionCodec.from_dict(meta["conditioning"])
    # checkpoints written before the condition embedding existed have no "embed" entry: they had none
    embed = bool(meta["recipe"].get("conditioning", {}).get("embed", False))
    field_shape: list[int] = []
    if recipe.conditioning.fields and codec.dim:
        field_shape = meta.get("condition_field_shape")  # type: ignore[assignment]
        if not (
            isinstance(field_shape, list) and field_shape and all(isinstance(s, int) and s > 0 for s in field_shape)
        ):
            raise CheckpointError(f"{path}: its recipe has condition fields but no valid condition_field_shape")
    return new_core(recipe, codec, in_channels, clip_sample, embed=embed, field_shape=field_shape)


def field_meta(unet: torch.nn.Module) -> dict[str, Any]:
    """The checkpoint entry that rebuilds a UNet's condition fields (nothing for a UNet without them)."""
    fields = getattr(unet, "condition_fields", None)
    return {} if fields is None else {"condition_field_shape": list(fields.shape)}


def load_core(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    recipe: Any,
    in_channels: int,
    clip_sample: bool,
    path: Path | None,
    device: str,
) -> DiffusionCore:
    """The checkpoint's denoising core with its weights loaded, in eval mode on ``device``."""
    core = core_from_meta(meta, recipe, in_channels, clip_sample, path)
    load_weights(core.unet, tensors, "unet.", path or Path("?"))
    core.unet.eval().to(device)
    return core


def new_core(
    recipe: Any,
    codec: ConditionCodec,
    channels: int,
    clip_sample: bool,
    embed: bool | None = None,
    field_shape: Sequence[int] = (),
):
    """A freshly initialised denoising core for a recipe (its ``unet``, ``scheduler`` and ``conditioning``);
    ``field_shape`` is the network input's spatial shape, needed when the recipe asks for condition fields."""
    cond = recipe.conditioning
    embed = cond.embed if embed is None else embed
    unet = build_unet(
        recipe.unet, channels, channels, codec.dim, cond.concat, cond.crossattn, embed, cond.fields, field_shape
    )
    return DiffusionCore(
        unet, codec, recipe.scheduler, cond.concat, cond.crossattn, recipe.unet.spatial_dims, clip_sample, embed
    )


def load_weights(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], prefix: str, path: Path) -> None:
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{path}: its {prefix.rstrip('.')} weights do not match its recipe ({first})") from None


def prefixed(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in module.state_dict().items()}
