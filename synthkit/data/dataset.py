"""Training data: a manifest's images preprocessed into an ImageSpace, with their conditions and split.

Everything a run needs is checked before it starts: the manifest exists and has the recipe's condition
columns, every used row has them, the split leaves training and validation rows. Volumes are preprocessed
once through the on-disk cache, then held in memory as float16 when they fit (``max_memory_gb``) or read from
the cache per batch otherwise.

A **categorical** condition (the ``icn`` family's ``network``) is read as text and held as the index of its
value in the sorted categories of the used rows (``TrainingData.categories``). With ``slices`` (a 2D model on
axial slices), every volume gives one item per listed slice, with the slice's position as the condition
:data:`SLICE`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthkit.data.cache import PreprocessedCache
from synthkit.data.manifest import Manifest, numeric_column, read_manifest
from synthkit.data.preprocess import PreprocessParams
from synthkit.errors import ManifestError
from synthkit.space import ImageSpace

#: the condition a 2D model on axial slices gets: the slice's z position (MNI mm)
SLICE = "slice_z"


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
    #: 2D slice items: item i is axial slice ``slice_index[i]`` of volume ``volume_of[i]`` (None: items are volumes)
    volume_of: np.ndarray | None = None
    slice_index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths) if self.volume_of is None else len(self.volume_of)

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
        if self.volume_of is not None and self.slice_index is not None:
            vols = self._volumes([int(self.volume_of[i]) for i in idx])
            z = torch.as_tensor(self.slice_index[idx], dtype=torch.long)
            return vols[torch.arange(len(idx)), :, :, z][:, None, :, :, None]
        return self._volumes(idx)[:, None]

    def _volumes(self, idx: list[int]) -> torch.Tensor:
        if self.memory is not None:
            x = self.memory[idx].float()
        else:
            x = torch.from_numpy(np.stack([self.cache.get(self.paths[i], self.volumes[i]) for i in idx]))
        return x

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
    #: categorical condition → its categories (the conditions hold indices into them)
    categories: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

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
    categorical: Sequence[str] = (),
    slices: Mapping[int, float] | None = None,
) -> TrainingData:
    """Check the manifest against the recipe and split it; nothing is preprocessed yet (see ``VolumeBank.load``).

    ``categorical``: conditions read as text (see the module docstring); ``slices``: axial slice index → its z
    position, for a 2D model trained on slices (the condition :data:`SLICE`).

    Raises:
        ManifestError: missing manifest, image files or condition columns, text or missing condition values,
            empty splits.
    """
    m = read_manifest(manifest_path)
    t = m.table
    derived = {SLICE} if slices is not None else set()
    missing_cols = [c for c in conditions if c not in t.columns and c not in derived]
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
    categories = {c: _categories(m, c, used) for c in conditions if c in categorical}
    values_of = {
        c: _codes(m, c, categories[c]) if c in categories else numeric_column(m, c, used)
        for c in conditions
        if c not in derived
    }
    for c in values_of:
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
        b = VolumeBank(
            cache=cache,
            paths=[str(t["image"].iloc[i]) for i in idx],
            volumes=[vols[i] for i in idx],
            conditions={c: values_of[c][idx] for c in values_of},
            label_paths=None if labels is None else [labels[i] for i in idx],
        )
        return b if slices is None else _sliced(b, slices, list(conditions))

    return TrainingData(train=bank(train_idx), val=bank(val_idx), manifest=m, categories=categories)


def _categories(m: Manifest, name: str, rows: np.ndarray) -> tuple[str, ...]:
    col = m.table[name]
    missing = [int(r) for r in rows if pd.isna(col.iloc[r]) or not str(col.iloc[r]).strip()]
    if missing:
        shown = ", ".join(str(r + 1) for r in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise ManifestError(f"{m.path}: condition {name!r} is missing in row(s) {shown}")
    return tuple(sorted({str(col.iloc[r]).strip() for r in rows}))


def _codes(m: Manifest, name: str, cats: tuple[str, ...]) -> np.ndarray:
    """Index of each row's value in ``cats`` (NaN for rows whose value is not among them: unused rows)."""
    index = {c: float(i) for i, c in enumerate(cats)}
    return np.array([index.get(str(v).strip(), np.nan) for v in m.table[name]], dtype=np.float64)


def _sliced(b: VolumeBank, slices: Mapping[int, float], order: list[str]) -> VolumeBank:
    """One item per (volume, slice); the slice's position becomes the condition :data:`SLICE`."""
    zs = np.array(sorted(slices), dtype=np.int64)
    n = len(b.paths)
    volume_of = np.repeat(np.arange(n), zs.size)
    conds = {c: v[volume_of] for c, v in b.conditions.items()}
    conds[SLICE] = np.tile(np.array([slices[int(z)] for z in zs], dtype=np.float64), n)
    ordered = {c: conds[c] for c in order if c in conds}
    return dataclasses.replace(b, conditions=ordered, volume_of=volume_of, slice_index=np.tile(zs, n), label_paths=None)
