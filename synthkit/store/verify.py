"""``synthkit verify``: is a store complete and consistent?"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthkit.errors import StoreError
from synthkit.store import format as fmt
from synthkit.store.reader import open_store


@dataclass
class VerifyReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def verify_store(path: str | Path, *, check_values: bool = True) -> VerifyReport:
    """Check structure (arrays, shapes, dtypes, metadata lengths), completeness and values.

    Errors: unreadable store, missing arrays, shape/dtype/metadata mismatches, unwritten shards, non-finite or
    out-of-range voxels, missing measures in finished shards. Warnings: samples that failed QC.
    """
    rep = VerifyReport()
    try:
        root, info = open_store(path)
    except StoreError as e:
        rep.errors.append(str(e))
        return rep
    shape = (info.n, *info.space.shape)
    expected = {fmt.IMAGES: (shape, info.dtype)}
    if info.has_labels:
        expected[fmt.LABELS] = (shape, "uint8")
    expected[fmt.SHARD_DONE] = ((info.n_shards,), "bool")
    for name, (shp, dtype) in expected.items():
        if name not in root:
            rep.errors.append(f"array {name!r} is missing")
            continue
        arr = root[name]
        if tuple(arr.shape) != shp:
            rep.errors.append(f"array {name!r} has shape {list(arr.shape)}, expected {list(shp)}")
        if str(arr.dtype) != dtype:
            rep.errors.append(f"array {name!r} has dtype {arr.dtype}, expected {dtype}")
    meta_names = [*info.condition_names, *info.measure_names, *fmt.BOOKKEEPING]
    meta = root.get(fmt.META)
    if meta is None:
        rep.errors.append("group 'meta' is missing")
        meta_names = []
    for name in meta_names:
        if name not in meta:
            rep.errors.append(f"metadata array meta/{name} is missing")
        elif tuple(meta[name].shape) != (info.n,):
            rep.errors.append(f"meta/{name} has {meta[name].shape[0]} values for {info.n} samples")
    if rep.errors:
        return rep

    done = np.asarray(root[fmt.SHARD_DONE][:], bool)
    if not done.all():
        missing = np.flatnonzero(~done)
        shown = ", ".join(map(str, missing[:10])) + (" …" if missing.size > 10 else "")
        rep.errors.append(f"{missing.size} of {info.n_shards} shards are not written: {shown}")
    for name in info.condition_names:
        if np.isnan(np.asarray(meta[name][:], dtype=float)).any():
            rep.errors.append(f"meta/{name} has missing values in the plan")
    qc_pass = np.asarray(meta[fmt.QC_PASS][:], bool)
    if not check_values:
        return rep
    images = root[fmt.IMAGES]
    for k in np.flatnonzero(done):
        a, b = info.shard_range(int(k))
        block = np.asarray(images[a:b])
        rep.n_checked += b - a
        if block.dtype != np.uint8:
            bad = ~np.isfinite(block).reshape(b - a, -1).all(axis=1)
            if bad.any():
                which = ", ".join(str(int(i) + a) for i in np.flatnonzero(bad))
                rep.errors.append(f"sample(s) {which} hold NaN or infinite voxels")
            lo, hi = float(np.nanmin(block)), float(np.nanmax(block))
            if lo < 0 or hi > 1:
                rep.errors.append(f"shard {k}: intensities outside [0, 1] ({lo:.3g}..{hi:.3g})")
        for name in info.measure_names:
            if np.isnan(np.asarray(meta[name][a:b], float)).any():
                rep.errors.append(f"shard {k}: meta/{name} is missing for a finished sample")
    failed = np.flatnonzero(~qc_pass & np.repeat(done, info.shard_size)[: info.n])
    if failed.size:
        rep.warnings.append(f"{failed.size} samples failed QC after all retries (meta/qc_pass is false)")
    return rep
