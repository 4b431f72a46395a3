"""The built-in ``phantom`` generator: the ground-truth phantom of :mod:`synthkit.data.phantom`.

Conditions: ``age`` (years), ``sex`` (0/1), and optionally ``ventricular_volume`` / ``brain_volume`` (mm³),
which the phantom meets exactly up to voxel quantisation. A NaN condition means "draw it from the seed".
Measures returned with every sample: the exact ``true_ventricular_volume`` and ``true_brain_volume``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synthkit.data import phantom as ph
from synthkit.data.covariates import CovariateDistribution
from synthkit.models.base import Samples, check_seeds
from synthkit.space import ImageSpace


class PhantomGenerator:
    kind = "phantom"
    condition_names = ("age", "sex", "ventricular_volume", "brain_volume")

    def __init__(self, space: ImageSpace | None = None, spacing: float = 4.0) -> None:
        self.space = space or ph.default_space(spacing)
        #: default conditions are drawn from this (the UK-Biobank-like age/sex mix)
        self.covariates: CovariateDistribution = ph.COVARIATES

    def sample(
        self,
        n: int,
        *,
        seeds: Sequence[int],
        conditions: Mapping[str, np.ndarray] | None = None,
        device: str = "cpu",
    ) -> Samples:
        seeds = check_seeds(n, seeds)
        cond = {k: np.asarray(v, dtype=np.float64) for k, v in (conditions or {}).items()}
        unknown = set(cond) - set(self.condition_names)
        if unknown:
            raise ValueError(f"the phantom has no condition(s) {sorted(unknown)}")
        images = np.empty((n, *self.space.shape), dtype=np.float32)
        labels = np.empty((n, *self.space.shape), dtype=np.uint8)
        vent = np.empty(n)
        brain = np.empty(n)
        for i, seed in enumerate(seeds):
            kw = {k: (None if np.isnan(v[i]) else float(v[i])) for k, v in cond.items()}
            subject = ph.render(ph.draw_params(seed, **kw), self.space)
            images[i], labels[i] = subject.image, subject.labels
            vent[i], brain[i] = subject.ventricular_volume, subject.brain_volume
        return Samples(
            images=images,
            labels=labels,
            measures={"true_ventricular_volume": vent, "true_brain_volume": brain},
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "checkpoint": None,
            "checkpoint_sha256": None,
            "recipe": None,
            "phantom_version": ph.PHANTOM_VERSION,
        }
