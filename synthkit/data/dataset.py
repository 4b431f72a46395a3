"""Training data: a manifest's images preprocessed into an ImageSpace, with their conditions and split.

Everything a run needs is checked before it starts: the manifest exists and has the recipe's condition
columns, every used row has them, the split leaves training and validation rows. Volumes are preprocessed
once through the on-disk cache, then held in memory as float16 when they fit (``max_memory_gb``) or read from
the cache per batch otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthkit.data.cache import PreprocessedCache
from synthkit.data.manifest import Manifest, numeric_column, read_manifest
from synthkit.data.preprocess import PreprocessParams
from synthkit.errors import ManifestError
from synthkit.space import ImageSpace


@dataclass
class VolumeBank:
    """Preprocessed volumes of one split: ``batch(indices)`` → float32 tensor (B, 1, X, Y, Z)."""

    cache: PreprocessedCache
    paths: list[str]
    volumes: list[int | None]
    conditions: dict[str, np.ndarray]
    memory: torch.Tensor | None = None
    #: the manifest's ``label`` paths of these rows, when it has that column (None per row without one)
    label_paths: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, max_memory_gb: float, progress: str | None = None) -> None:
        """Preprocess every volume (cached on disk) and keep them in memory if they fit."""
        nbytes = len(self.paths) * int(np.prod(self.cache.space.shape)) * 2
        if nbytes <= max_memory_gb * 2**30:
            arr = self.cache.get_many(self.paths, self.volumes, progress=progress)
            self.memory = torch.from_numpy(arr.astype(np.float16))
        else:  # warm the cache only
            for p, v in zip(self.paths, self.volumes, strict=True):
                self.cache.get(p, v)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        idx = [int(i) for i in indices]
        if self.memory is not None:
            x = self.memory[idx].float()
        else:
            x = torch.from_numpy(np.stack([self.cache.get(self.paths[i], self.volumes[i]) for i in idx]))
        return x[:, None]

    def mean_image(self, spatial_dims: int = 3) -> torch.Tensor:
        """The voxel-wise mean of every volume, (1, 1, X, Y, Z) (or (1, 1, X, Y) for a 2D model)."""
        total = None
        for a in range(0, len(self), 16):
            part = self.batch(range(a, min(a + 16, len(self)))).double().sum(0, keepdim=True)
            total = part if total is None else total + part
        mean = (total / max(1, len(self))).float()
        return mean[..., 0] if spatial_dims == 2 else mean

    def condition_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        return {k: v[idx] for k, v in self.conditions.items()}


@dataclass
class TrainingData:
    train: VolumeBank
    val: VolumeBank
    manifest: Manifest

    @property
    def train_conditions(self) -> dict[str, np.ndarray]:
        return self.train.conditions


def load_training_data(
    manifest_path: str | Path,
    space: ImageSpace,
    conditions: Sequence[str],
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    params: PreprocessParams | None = None,
    cache_dir: str | Path | None = None,
) -> TrainingData:
    """Check the manifest against the recipe and split it; nothing is preprocessed yet (see ``VolumeBank.load``).

    Raises:
        ManifestError: missing manifest, image files or condition columns, text or missing condition values,
            empty splits.
    """
    m = read_manifest(manifest_path)
    t = m.table
    missing_cols = [c for c in conditions if c not in t.columns]
    if missing_cols:
        raise ManifestError(
            f"{manifest_path}: the recipe conditions on {', '.join(missing_cols)}, which the manifest lacks "
            f"(its columns: {', '.join(map(str, t.columns))})"
        )
    if "split" in t.columns and t["split"].notna().any():
        split = t["split"].fillna("train").astype(str).to_numpy()
        train_idx = np.flatnonzero(split == "train")
        val_idx = np.flatnonzero(split == "val")
    else:
        order = np.random.default_rng(seed).permutation(len(t))
        n_val = max(1, round(val_fraction * len(t))) if val_fraction > 0 and len(t) > 1 else 0
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if train_idx.size == 0:
        raise ManifestError(f"{manifest_path}: no training rows")
    used = np.concatenate([train_idx, val_idx])
    values_of = {c: numeric_column(m, c, used) for c in conditions}
    for c in conditions:
        values = values_of[c]
        bad = used[~np.isfinite(values[used])]
        if bad.size:
            rows = ", ".join(str(r + 1) for r in sorted(bad)[:5]) + (" …" if bad.size > 5 else "")
            raise ManifestError(f"{manifest_path}: condition {c!r} is missing in row(s) {rows}")
    cache = PreprocessedCache(space, params, cache_dir)
    vols = m.volumes()

    labels = None
    if "label" in t.columns:
        labels = [str(x) if isinstance(x, str) and x else None for x in t["label"]]

    def bank(idx: np.ndarray) -> VolumeBank:
        return VolumeBank(
            cache=cache,
            paths=[str(t["image"].iloc[i]) for i in idx],
            volumes=[vols[i] for i in idx],
            conditions={c: values_of[c][idx] for c in conditions},
            label_paths=None if labels is None else [labels[i] for i in idx],
        )

    return TrainingData(train=bank(train_idx), val=bank(val_idx), manifest=m)
