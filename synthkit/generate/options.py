"""What ``synthkit generate`` is asked to do, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class QCConfig:
    """What makes a sample implausible; failing ones are regenerated from derived retry seeds."""

    max_retries: int = 3
    foreground_threshold: float = 0.05  # a voxel above this intensity is foreground
    min_foreground: float = 0.02  # fraction of the volume
    max_foreground: float = 0.95
    min_std: float = 1e-3  # a constant image is implausible
    #: a deformation sample whose map folds on more than this fraction of voxels is regenerated
    max_folding: float = 0.01

    def check(self, image: np.ndarray, measures: dict[str, float] | None = None, centre: float = 0.0) -> str | None:
        """None if plausible, else the reason (``measures``: the sample's own, e.g. its folding fraction;
        ``centre``: the image value of "nothing there", 0.5 for signed maps such as ICNs)."""
        folding = (measures or {}).get("folding_fraction")
        if folding is not None and folding > self.max_folding:
            return f"the deformation folds on {folding:.3%} of voxels (more than {self.max_folding:.1%})"
        if not np.all(np.isfinite(image)):
            return "non-finite voxels"
        if image.min() < -0.01 or image.max() > 1.01:
            return f"intensities outside [0, 1] ({image.min():.3g}..{image.max():.3g})"
        fg = float(np.mean(np.abs(image - centre) > self.foreground_threshold))
        if not self.min_foreground <= fg <= self.max_foreground:
            return f"foreground fraction {fg:.3f} outside [{self.min_foreground}, {self.max_foreground}]"
        if float(image.std()) < self.min_std:
            return "nearly constant image"
        return None


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the model: picklable and small. ``sampling``: settings that replace the
    checkpoint's recipe's (sampler, steps, guidance scale), as sorted ``(name, value)`` pairs."""

    model: str
    spacing: float | None = None
    sampling: tuple[tuple[str, Any], ...] = ()

    def key(self) -> tuple[Any, ...]:
        return (self.model, self.spacing, self.sampling)


@dataclass
class GenerateOptions:
    out: Path
    model: str | None = None
    n: int | None = None
    shard_size: int = 32
    batch_size: int = 8
    seed: int = 0
    workers: int = 1
    device: str = "auto"
    cluster: str = "local"
    cluster_config: Path | None = None
    resume: bool = False
    overwrite: bool = False
    dtype: str = "float16"
    codec: str = "zstd"
    spacing: float | None = None
    conditions_csv: Path | None = None
    condition_specs: list[str] = field(default_factory=list)
    qc: QCConfig = field(default_factory=QCConfig)
    sampler: str | None = None
    steps: int | None = None
    guidance_scale: float | None = None

    def sampling_overrides(self) -> dict[str, Any]:
        """The diffusion sampling settings given on the command line (the recipe's apply to the rest)."""
        from synthkit.config import given_sampling

        return given_sampling(self.sampler, self.steps, self.guidance_scale)


@dataclass
class GenerateResult:
    store: Path
    n: int
    shards_run: int
    shards_total: int
    seconds: float
    failed_qc: int
    generator: str
    extrapolated: int
    #: seconds from the first task's submission to the last one's completion (no planning, no cluster start)
    generation_seconds: float = 0.0
    #: shards this run generated (fewer than shards_run when a concurrent run claimed some)
    shards_written: int = 0
