"""``synthkit verify``: is a store complete, consistent and undamaged? ``--repair`` prepares damaged shards
for ``generate --resume``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from synthkit.errors import StoreError
from synthkit.store import format as fmt
from synthkit.store import integrity
from synthkit.store.format import StoreInfo
from synthkit.store.reader import open_store


@dataclass
class VerifyReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_checked: int = 0
    #: samples found damaged (by index)
    damaged: list[int] = field(default_factory=list)
    #: shards whose done flag ``repair`` cleared (``generate --resume`` writes them again)
    repaired: list[int] | None = None
    #: plan chunks (or their copies) ``repair`` restored
    restored: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def verify_store(path: str | Path, *, check_values: bool = True, repair: bool = False) -> VerifyReport:
    """Check structure, completeness, the presence, checksum and decoding of every chunk, and values.

    ``check_values=False`` (``--quick``) checks done flags and checksums only, decoding nothing. Errors: an
    unreadable store, missing arrays, shape/dtype mismatches, damaged samples (one line each, by index), unwritten
    shards, non-finite or out-of-range voxels. Warnings: samples that failed QC. ``repair`` then clears the done
    flags of damaged shards (and restores damaged plan chunks from their copy).

    Raises:
        StoreError: ``repair`` met a plan chunk whose copy is damaged too.
    """
    rep = VerifyReport()
    try:
        root, info = open_store(path)
    except StoreError as e:
        rep.errors.append(str(e))
        return rep
    _check_structure(root, info, rep)
    if rep.errors:
        return rep
    damage, done = integrity.find_damage(path, root, info, decode=check_values)
    rep.damaged = sorted(damage.samples)
    rep.errors.extend(damage.lines())
    rep.warnings.extend(damage.warnings)
    unwritten = np.flatnonzero(~done)
    if unwritten.size:
        shown = ", ".join(map(str, unwritten[:10])) + (" …" if unwritten.size > 10 else "")
        rep.errors.append(f"{unwritten.size} of {info.n_shards} shards are not written: {shown}")
    if check_values:
        _check_values(root, info, done, rep)
    if repair and (damage.shards or damage.plan or damage.plan_copy or damage.plan_record):
        rep.repaired = integrity.repair(path, info, damage)
        rep.restored = len(damage.plan | damage.plan_copy) + int(damage.plan_record)
    elif repair:
        rep.repaired = []
    return rep


def _check_structure(root: zarr.Group, info: StoreInfo, rep: VerifyReport) -> None:
    shape = (info.n, *info.space.shape)
    expected = {fmt.IMAGES: (shape, info.dtype)}
    if info.has_labels:
        expected[fmt.LABELS] = (shape, "uint8")
    expected[fmt.SHARD_DONE] = ((info.n_shards,), "bool")
    meta_names = [*info.plan_arrays(), *info.task_meta_arrays()]
    expected.update({f"{fmt.META}/{n}": ((info.n,), None) for n in meta_names})
    if info.has_checksums:
        expected.update({f"{fmt.PLAN_COPY}/{n}": ((info.n,), None) for n in info.plan_arrays()})
        expected[f"{fmt.CHECKSUMS}/{fmt.IMAGES}"] = ((info.n,), "int64")
        if info.has_labels:
            expected[f"{fmt.CHECKSUMS}/{fmt.LABELS}"] = ((info.n,), "int64")
        expected[f"{fmt.CHECKSUMS}/{fmt.META}"] = ((info.n_shards, len(info.task_meta_arrays())), "int64")
        expected[f"{fmt.CHECKSUMS}/plan"] = ((info.n_shards, len(info.plan_arrays())), "int64")
    for name, (shp, dtype) in expected.items():
        try:
            arr = root[name]
        except KeyError:
            rep.errors.append(f"array {name!r} is missing")
            continue
        except Exception as e:  # a damaged zarr.json
            rep.errors.append(f"array {name!r} has unreadable metadata ({type(e).__name__})")
            continue
        if tuple(arr.shape) != shp and name.startswith(fmt.META) and len(arr.shape) == 1:
            rep.errors.append(f"{name} has {arr.shape[0]} values for {shp[0]} samples")
        elif tuple(arr.shape) != shp:
            rep.errors.append(f"array {name!r} has shape {list(arr.shape)}, expected {list(shp)}")
        if dtype is not None and str(arr.dtype) != dtype:
            rep.errors.append(f"array {name!r} has dtype {arr.dtype}, expected {dtype}")


def _check_values(root: zarr.Group, info: StoreInfo, usable: np.ndarray, rep: VerifyReport) -> None:
    """Plan values, voxel values and measures of the finished shards that decode."""
    meta = root[fmt.META]
    for name in info.condition_names:
        try:
            values = np.asarray(meta[name][:], dtype=float)
        except Exception:
            continue  # a damaged chunk, reported per sample
        if np.isnan(values).any():
            rep.errors.append(f"meta/{name} has missing values in the plan")
        elif not np.isfinite(values).all():
            rep.errors.append(f"meta/{name} has infinite values in the plan")
    images = root[fmt.IMAGES]
    failed = 0
    for k in np.flatnonzero(usable):
        a, b = info.shard_range(int(k))
        try:
            block = np.asarray(images[a:b])
            measures = {name: np.asarray(meta[name][a:b], float) for name in info.measure_names}
            failed += int((~np.asarray(meta[fmt.QC_PASS][a:b], bool)).sum())
        except Exception:
            continue  # a chunk that does not decode: reported per sample
        rep.n_checked += b - a
        if block.dtype != np.uint8:
            bad = ~np.isfinite(block).reshape(b - a, -1).all(axis=1)
            if bad.any():
                which = ", ".join(str(int(i) + a) for i in np.flatnonzero(bad))
                rep.errors.append(f"sample(s) {which} hold NaN or infinite voxels")
            lo, hi = float(np.nanmin(block)), float(np.nanmax(block))
            if lo < 0 or hi > 1:
                rep.errors.append(f"shard {k}: intensities outside [0, 1] ({lo:.3g}..{hi:.3g})")
        for name, values in measures.items():
            if np.isnan(values).any():
                rep.errors.append(f"shard {k}: meta/{name} is missing for a finished sample")
    if failed:
        rep.warnings.append(f"{failed} samples failed QC after all retries (meta/qc_pass is false)")
