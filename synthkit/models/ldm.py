"""``ldm``: latent diffusion (Pinaya et al. 2022) — an AutoencoderKL and a conditioned latent UNet.

Latents are multiplied by ``scale_factor`` = 1 / std(latents of the training set) before diffusion (Rombach
et al.), so that the diffusion model sees unit-variance inputs; sampling divides by it before decoding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from synthkit.config import LDMRecipe
from synthkit.models.diffusion import (
    DiffusionCore,
    DiffusionGenerator,
    cpu_chunk,
    fixed_batch_on_cpu,
    load_core,
    load_weights,
)
from synthkit.models.networks import build_autoencoder
from synthkit.space import ImageSpace


def latent_shape(recipe: LDMRecipe) -> tuple[int, ...]:
    """(C, *spatial) of a latent: the space shrunk by 2 per autoencoder level after the first."""
    f = 2 ** (len(recipe.autoencoder.channels) - 1)
    spatial = recipe.space.shape if recipe.unet.spatial_dims == 3 else recipe.space.shape[:2]
    return (recipe.autoencoder.latent_channels, *(s // f for s in spatial))


class LDMGenerator(DiffusionGenerator):
    kind = "ldm"

    def __init__(
        self, core: DiffusionCore, autoencoder: torch.nn.Module, scale_factor: float, recipe: LDMRecipe, *args: Any
    ) -> None:
        super().__init__(core, *args)
        self.autoencoder = autoencoder
        self.scale_factor = scale_factor
        self.recipe = recipe

    def _shape(self) -> tuple[int, ...]:
        return latent_shape(self.recipe)

    def _to_images(self, x: torch.Tensor) -> torch.Tensor:
        return fixed_batch_on_cpu(
            self.autoencoder.decode_stage_2_outputs, x / self.scale_factor, chunk=cpu_chunk(self.space.shape)
        )

    def to(self, device: str) -> LDMGenerator:
        super().to(device)
        self.autoencoder.to(device)
        return self

    @classmethod
    def from_checkpoint(
        cls, tensors: dict[str, Any], meta: dict[str, Any], path: Path | None, device: str
    ) -> LDMGenerator:
        recipe = LDMRecipe(**meta["recipe"])
        spatial_dims = recipe.unet.spatial_dims
        core = load_core(tensors, meta, recipe, recipe.autoencoder.latent_channels, False, path, device)
        ae = build_autoencoder(recipe.autoencoder, spatial_dims)
        load_weights(ae, tensors, "autoencoder.", path or Path("?"))
        ae.eval().to(device)
        gen = cls(
            core, ae, float(meta["scale_factor"]), recipe, ImageSpace.from_dict(meta["space"]), meta, path, device
        )
        return gen
