"""``icn``: fMRI intrinsic connectivity network maps (the ICN DDPM paper), one model for every network.

The image-space DDPM of :mod:`synthkit.models.ddpm` over signed maps (preprocessed to [-1, 1], zero kept at
zero), conditioned on the network: a categorical condition, one-hot through the condition embedding, i.e. a
learned embedding per network, fed to cross-attention (and the timestep embedding) like every condition. A
2D model (space [X, Y, 1]) draws axial slices and is also conditioned on the slice's z position (``slice_z``).

The network diffuses maps scaled to unit variance over the training set (``scale_factor`` in the checkpoint;
:class:`synthkit.training.inputs.MapInputs`). Samples are images in [0, 1] as every generator's:
``(map + 1) / 2`` with the map in [-1, 1], so a voxel with no signal is 0.5 (the
QC and the ICN audit know this from :attr:`ICNGenerator.image_centre`). The network is given by name or by its
index in :attr:`ICNGenerator.categories`; a store records the index (``meta/network``) and the names in its
generator description, and ``open_cohort`` gives the names back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from synthkit.config import ICNRecipe
from synthkit.models.ddpm import DDPMGenerator


class ICNGenerator(DDPMGenerator):
    kind = "icn"
    recipe_type = ICNRecipe
    clip_sample = False  # the network diffuses maps scaled to unit variance, not [-1, 1]
    #: the [0, 1] image value of a zero map value
    image_centre = 0.5

    @property
    def categories(self) -> Mapping[str, tuple[str, ...]]:
        """Categorical condition → its categories (``network`` → the network names the model knows)."""
        return self.core.codec.categories

    @property
    def network_column(self) -> str:
        return ICNRecipe(**self.meta["recipe"]).icn.network_column

    def _to_images(self, x):
        return (x / float(self.meta.get("scale_factor", 1.0)) + 1) / 2

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "categories": {k: list(v) for k, v in self.categories.items()}}

    def network_codes(self, names: np.ndarray) -> np.ndarray:
        """Network names (or indices) → indices; an unknown one is a ValueError naming the known networks."""
        return self.core.codec.codes(self.network_column, names)
