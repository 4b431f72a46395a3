"""``ddpm``: image-space diffusion (the MONAI 3D DDPM of the neurodegeneration paper), 3D or 2D.

Images in [0, 1] are mapped to [-1, 1] for the network; the x₀ prediction is clipped to [-1, 1] while sampling.
A 2D model lives in a space of shape (X, Y, 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from synthkit.config import DDPMRecipe
from synthkit.models.diffusion import DiffusionGenerator, load_core
from synthkit.space import ImageSpace


def to_network(images: torch.Tensor) -> torch.Tensor:
    return images * 2 - 1


class DDPMGenerator(DiffusionGenerator):
    kind = "ddpm"
    recipe_type: type = DDPMRecipe
    #: images in [0, 1] map to [-1, 1]: the x₀ prediction is clipped there while sampling
    clip_sample = True

    def _shape(self) -> tuple[int, ...]:
        shape = self.space.shape if self.core.spatial_dims == 3 else self.space.shape[:2]
        return (1, *shape)

    def _to_images(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2

    @classmethod
    def from_checkpoint(
        cls, tensors: dict[str, Any], meta: dict[str, Any], path: Path | None, device: str
    ) -> DDPMGenerator:
        recipe = cls.recipe_type(**meta["recipe"])
        core = load_core(tensors, meta, recipe, 1, cls.clip_sample, path, device)
        return cls(core, ImageSpace.from_dict(meta["space"]), meta, path, device)
