"""What a generator family diffuses: its training tensors in network space, and how to turn them back.

A family is "what it diffuses and how it decodes" (DESIGN §5): ``ddpm`` diffuses images mapped to [-1, 1],
``ldm`` the autoencoder's latents, ``deformation`` the velocity fields that warp its template onto each
subject, ``icn`` signed network maps. The diffusion stage (:mod:`synthkit.training.diffusion`) only sees a
:class:`DiffusionInputs`; a new family registers a factory in :data:`INPUTS` for its recipe ``kind``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from synthkit.config import DeformationRecipe, LDMRecipe
from synthkit.errors import UsageError
from synthkit.models.diffusion import fixed_batch_on_cpu, prefixed
from synthkit.models.ldm import latent_shape
from synthkit.training.autoencoder import load_trained_autoencoder
from synthkit.training.common import RunContext, fit_codec


class DiffusionInputs(Protocol):
    """The training side of a family's representation."""

    #: (C, *spatial) of one sample in network space
    shape: tuple[int, ...]
    #: whether the sampler clips x₀ predictions to [-1, 1] (bounded representations only)
    clip_sample: bool

    def get(self, split: str, idx: list[int], g: torch.Generator) -> torch.Tensor:
        """Network-space training tensors of rows ``idx`` of ``split`` ("train" or "val"), on the device."""

    def decode(self, x: torch.Tensor, conditions: dict[str, Any] | None = None) -> torch.Tensor:
        """Network space → images (B, 1, *spatial) in [0, 1], for previews (``conditions``: those the samples
        were drawn at, for a family whose decoding depends on them)."""

    def meta(self) -> dict[str, Any]:
        """What the checkpoint needs besides the UNet to decode (e.g. the latent scale factor)."""

    def tensors(self) -> dict[str, torch.Tensor]:
        """Weights the checkpoint ships besides the UNet's (e.g. the autoencoder)."""

    def stats(self) -> dict[str, float]:
        """Diagnostics of the training tensors, logged once in ``metrics.csv``."""


class ImageInputs:
    """``ddpm``: images in [0, 1] mapped to [-1, 1]."""

    clip_sample = True

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        spatial = ctx.recipe.space.shape[: ctx.spatial_dims]
        self.shape = (1, *spatial)

    def get(self, split: str, idx: list[int], g: torch.Generator) -> torch.Tensor:
        bank = self.ctx.data.train if split == "train" else self.ctx.data.val
        return self.ctx.batch(bank, idx) * 2 - 1

    def decode(self, x: torch.Tensor, conditions: dict[str, Any] | None = None) -> torch.Tensor:
        return (x + 1) / 2

    def meta(self) -> dict[str, Any]:
        return {}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def stats(self) -> dict[str, float]:
        return {}


class MapInputs(ImageInputs):
    """``icn``: signed network maps (preprocessed to [-1, 1] by their largest |value|) scaled to unit variance
    over the training maps (``scale_factor``, as the LDM's latents): a map is mostly near zero (std ≈ 0.07 on
    the phantom), and at that scale the noise of all but the first timesteps drowns it, so a short run learned
    nothing (spatial correlation of samples with their network's mean ≈ 0 after 150 steps; see
    tests/icn/test_learns.py). They decode to [0, 1] images as (x / scale_factor + 1) / 2, zero at 0.5."""

    clip_sample = False

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        bank = ctx.data.train
        total, sq, count = 0.0, 0.0, 0
        for a in range(0, len(bank), 64):
            x = bank.batch(range(a, min(a + 64, len(bank)))).double()
            total, sq, count = total + float(x.sum()), sq + float((x**2).sum()), count + x.numel()
        mean = total / max(1, count)
        self.scale_factor = float(1.0 / max(np.sqrt(max(sq / max(1, count) - mean**2, 0.0)), 1e-6))

    def get(self, split: str, idx: list[int], g: torch.Generator) -> torch.Tensor:
        bank = self.ctx.data.train if split == "train" else self.ctx.data.val
        return self.ctx.batch(bank, idx) * self.scale_factor

    def decode(self, x: torch.Tensor, conditions: dict[str, Any] | None = None) -> torch.Tensor:
        return (x / self.scale_factor + 1) / 2

    def meta(self) -> dict[str, Any]:
        return {"scale_factor": self.scale_factor}

    def stats(self) -> dict[str, float]:
        return {"map_scale_factor": self.scale_factor}


class LatentInputs:
    """``ldm``: the frozen autoencoder's latents of every training image, encoded once, scaled to unit
    variance (``scale_factor`` = 1 / std, Rombach et al.). By default the posterior means (``latents: mean``);
    ``latents: sample`` draws μ + σ·ε afresh at every step."""

    clip_sample = False

    def __init__(self, ctx: RunContext) -> None:
        recipe = ctx.recipe
        assert isinstance(recipe, LDMRecipe)
        self.ctx = ctx
        self.sample = recipe.latents == "sample"
        self.shape = latent_shape(recipe)
        self.ae = load_trained_autoencoder(ctx)
        self.latents = {name: self._encode(bank) for name, bank in (("train", ctx.data.train), ("val", ctx.data.val))}
        mu, sigma = self.latents["train"]
        if self.sample:
            g = torch.Generator().manual_seed(recipe.training.seed)
            mu = mu + sigma * torch.randn(mu.shape, generator=g)
        self.scale_factor = float(1.0 / mu.std())

    def _encode(self, bank) -> tuple[torch.Tensor, torch.Tensor]:
        mus, sigmas = [], []
        with torch.inference_mode():
            for a in range(0, len(bank), 8):
                mu, sigma = self.ae.encode(self.ctx.batch(bank, list(range(a, min(a + 8, len(bank))))))
                mus.append(mu.float().cpu())
                sigmas.append(sigma.float().cpu())
        if not mus:
            return torch.zeros(0), torch.zeros(0)
        return torch.cat(mus), torch.cat(sigmas)

    def get(self, split: str, idx: list[int], g: torch.Generator) -> torch.Tensor:
        mu, sigma = self.latents[split]
        z = mu[idx]
        if self.sample:
            z = z + sigma[idx] * torch.randn((len(idx), *mu.shape[1:]), generator=g)
        return self.ctx.layout((z * self.scale_factor).to(self.ctx.device))

    def decode(self, x: torch.Tensor, conditions: dict[str, Any] | None = None) -> torch.Tensor:
        with torch.inference_mode():
            return fixed_batch_on_cpu(self.ae.decode_stage_2_outputs, x / self.scale_factor, chunk=1)

    def meta(self) -> dict[str, Any]:
        return {"scale_factor": self.scale_factor}

    def tensors(self) -> dict[str, torch.Tensor]:
        return prefixed(self.ae, "autoencoder.")

    def stats(self) -> dict[str, float]:
        """Posterior σ against the spread of μ (a latent whose σ rivals μ's spread is mostly noise)."""
        mu, sigma = self.latents["train"]
        return {
            "latent_mu_spread": float(mu.std(0).mean()),
            "latent_sigma_mean": float(sigma.mean()),
            "latent_std_scaled": float((mu * self.scale_factor).std()),
        }


class FieldInputs:
    """``deformation``: the registration stage's velocity fields (template → subject) minus their linear
    conditional mean (:class:`synthkit.models.deformation.FieldMean`), scaled to unit variance; they decode by
    adding the mean back and warping the template."""

    clip_sample = False

    def __init__(self, ctx: RunContext) -> None:
        from synthkit.models.deformation import FieldMean, Warper, field_shape
        from synthkit.training.registration import FIELDS, load_fields

        recipe = ctx.recipe
        assert isinstance(recipe, DeformationRecipe)
        self.ctx = ctx
        self.shape = field_shape(recipe)
        path = ctx.out / FIELDS
        if not path.exists():
            raise UsageError(f"the diffusion stage of a deformation model needs the registration stage's {path}")
        self.fields, self.intensity = load_fields(path)
        self.codec = fit_codec(ctx)
        banks = {"train": ctx.data.train, "val": ctx.data.val}
        context = {k: self._context(b.conditions, len(b)) for k, b in banks.items()}
        self.mean = FieldMean.fit(context["train"], self.fields["train"])
        self.residual = {k: self.fields[k] - self.mean(context[k], len(banks[k])) for k in banks}
        self.scale_factor = float(1.0 / self.residual["train"].std())
        self.warper = Warper(recipe.space.shape, recipe.registration.integration_steps)

    def _context(self, conditions, n: int) -> torch.Tensor | None:
        return self.codec.encode(conditions, n, "cpu") if self.codec.names else None

    def get(self, split: str, idx: list[int], g: torch.Generator) -> torch.Tensor:
        return (self.residual[split][idx] * self.scale_factor).to(self.ctx.device)

    def decode(self, x: torch.Tensor, conditions: dict[str, Any] | None = None) -> torch.Tensor:
        n = x.shape[0]
        with torch.inference_mode():
            v = x.float().cpu() / self.scale_factor + self.mean(self._context(conditions, n), n)
            return self.warper.warp(self.fields["template.image"], self.warper.ddf(v))

    def meta(self) -> dict[str, Any]:
        return {"scale_factor": self.scale_factor, "intensity": self.intensity.to_dict()}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "template.image": self.fields["template.image"],
            "template.labels": self.fields["template.labels"],
            "field_mean.weight": self.mean.weight,
        }

    def stats(self) -> dict[str, float]:
        v, r = self.fields["train"], self.residual["train"]
        return {
            "field_std_voxels": float(v.std()),
            "field_max_voxels": float(v.abs().max()),
            "field_residual_variance_fraction": float(r.var() / v.var()),
        }


#: recipe kind → the factory of what its diffusion stage learns
INPUTS: dict[str, Callable[[RunContext], DiffusionInputs]] = {
    "ddpm": ImageInputs,
    "ldm": LatentInputs,
    "deformation": FieldInputs,
    "icn": MapInputs,
}
