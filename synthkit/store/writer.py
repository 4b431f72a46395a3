"""Create a store with its full plan, and write whole shards (DESIGN §7 rules).

* The plan — every condition row and seed — is written at creation, by one process, before any task runs.
* One task writes whole shards only: images, labels, its own chunk of each per-sample meta array, then its
  ``shard_done`` flag. Nobody else writes inside that shard, so zarr needs no locks.
* Group attrs are written once, at creation. Metadata is consolidated once, at the end.
* Creation writes the whole new store into a hidden folder beside the target and renames it into place, so a
  killed creation leaves no half store, and ``--overwrite`` removes the old store only once the new one is whole.
* Each task records the checksums of what it wrote (``checksums/``) before its done flag (format version 2).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import uuid
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import zarr

from synthkit.errors import StoreError
from synthkit.store import checksum
from synthkit.store import format as fmt
from synthkit.store.format import StoreInfo


def is_store(path: str | Path) -> bool:
    p = Path(path)
    return (p / "zarr.json").exists()


def is_synthkit_store(path: str | Path) -> bool:
    """A folder whose root ``zarr.json`` carries synthkit attributes (what ``--overwrite`` may replace)."""
    p = Path(path)
    try:
        meta = json.loads((p / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and fmt.ATTRS_KEY in (meta.get("attributes") or {})


def check_target(path: str | Path, *, overwrite: bool) -> None:
    """May a new store be installed at ``path``? Refuses anything that is not a synthkit store or an empty folder.

    Raises:
        StoreError: ``path`` exists (without ``overwrite``) or holds something else than a store.
    """
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return
    if not overwrite:
        raise StoreError(f"{p} already exists; use --resume to finish it or --overwrite to replace it")
    if p.is_symlink() or not p.is_dir():
        raise StoreError(f"{p} is a file, not a synthkit store; --overwrite replaces stores only, so it is left alone")
    if not is_synthkit_store(p) and any(p.iterdir()):
        raise StoreError(f"{p} is a non-empty folder that is not a synthkit store; refusing to delete it")


def _staging_prefix(p: Path) -> str:
    return f".{p.name}.creating-"


def remove_stale_staging(path: str | Path) -> None:
    """Remove folders left by creations of ``path`` that were killed (their process is gone)."""
    p = Path(path)
    if not p.parent.is_dir():
        return
    for d in p.parent.glob(_staging_prefix(p) + "*"):
        pid = d.name[len(_staging_prefix(p)) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fault(point: str) -> None:
    """Test hook: ``SYNTHKIT_TEST_FAULT=<point>-kill`` SIGKILLs this process, ``<point>-enospc`` fills the disk."""
    fault = os.environ.get("SYNTHKIT_TEST_FAULT", "")
    if fault == f"{point}-kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == f"{point}-enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def create_store(
    path: str | Path,
    info: StoreInfo,
    *,
    conditions: Mapping[str, np.ndarray],
    seeds: np.ndarray,
    extrapolated: np.ndarray | None = None,
    overwrite: bool = False,
) -> None:
    """Create the store and write its plan, aside, then move it into place (:func:`stage_store`,
    :func:`install_store`). Refuses to replace an existing path unless ``overwrite``.

    Raises:
        StoreError: the path exists (without ``overwrite``), is not a store (with ``overwrite``), cannot be
            written, or the plan does not match ``info``.
    """
    check_target(path, overwrite=overwrite)
    staged = stage_store(path, info, conditions=conditions, seeds=seeds, extrapolated=extrapolated)
    install_store(staged, path, overwrite=overwrite)


def _check_plan(info: StoreInfo, conditions: Mapping[str, np.ndarray], seeds: np.ndarray) -> None:
    n = info.n
    if len(seeds) != n:
        raise StoreError(f"plan has {len(seeds)} seeds for {n} samples")
    if sorted(conditions) != sorted(info.condition_names):
        raise StoreError("plan conditions do not match the store's condition names")
    for name, values in conditions.items():
        if len(values) != n:
            raise StoreError(f"condition {name!r} has {len(values)} values for {n} samples")


def stage_store(
    path: str | Path,
    info: StoreInfo,
    *,
    conditions: Mapping[str, np.ndarray],
    seeds: np.ndarray,
    extrapolated: np.ndarray | None = None,
) -> Path:
    """Write a complete new store (arrays, plan, plan copy, plan checksums, attributes) into a hidden folder
    beside ``path`` and return it. Nothing at ``path`` is touched; a killed creation leaves only the hidden
    folder, which the next creation of ``path`` removes.

    Raises:
        StoreError: the plan does not match ``info``, or the folder cannot be written (disk full: one line).
    """
    p = Path(path)
    _check_plan(info, conditions, seeds)
    info.created = info.created or datetime.now(UTC).isoformat(timespec="seconds")
    remove_stale_staging(p)
    staged = p.parent / f"{_staging_prefix(p)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(str(staged), mode="w-", zarr_format=3)
        _write_arrays(staged, root, info, conditions, seeds, extrapolated)
    except BaseException as e:
        shutil.rmtree(staged, ignore_errors=True)
        if isinstance(e, OSError):
            raise StoreError(f"cannot create a store at {p}: {e.strerror or e}") from None
        if isinstance(e, (zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError)):
            raise StoreError(f"cannot create a store at {p}: {e}") from None
        raise
    return staged


def _write_arrays(
    staged: Path,
    root: zarr.Group,
    info: StoreInfo,
    conditions: Mapping[str, np.ndarray],
    seeds: np.ndarray,
    extrapolated: np.ndarray | None,
) -> None:
    n, s = info.n, info.shard_size
    image_kw = {
        "shape": (n, *info.space.shape),
        "chunks": (1, *info.space.shape),
        "shards": (s, *info.space.shape),
        "fill_value": 0,
    }
    root.create_array(fmt.IMAGES, dtype=info.dtype, compressors=fmt.image_codec(info.dtype, info.codec), **image_kw)
    if info.has_labels:
        root.create_array(fmt.LABELS, dtype="uint8", compressors=fmt.image_codec("uint8", info.codec), **image_kw)
    meta = root.create_group(fmt.META)
    copy = root.create_group(fmt.PLAN_COPY) if info.has_checksums else None
    plan = {name: np.asarray(conditions[name], dtype=np.float64) for name in info.condition_names}
    plan[fmt.SEED] = np.asarray(seeds, dtype=np.uint64)
    plan[fmt.EXTRAPOLATED] = np.zeros(n, bool) if extrapolated is None else np.asarray(extrapolated, bool)
    dtypes = {fmt.SEED: ("uint64", 0), fmt.EXTRAPOLATED: ("bool", False)}
    for name, values in plan.items():
        dtype, fill = dtypes.get(name, ("float64", np.nan))
        for g in (meta, copy) if copy is not None else (meta,):
            g.create_array(name, shape=(n,), chunks=(s,), dtype=dtype, fill_value=fill)[:] = values
        _fault("create")
    meta.create_array(fmt.QC_ATTEMPTS, shape=(n,), chunks=(s,), dtype="uint8", fill_value=0)
    meta.create_array(fmt.QC_PASS, shape=(n,), chunks=(s,), dtype="bool", fill_value=False)
    for name in info.measure_names:
        meta.create_array(name, shape=(n,), chunks=(s,), dtype="float64", fill_value=np.nan)
    root.create_array(fmt.SHARD_DONE, shape=(info.n_shards,), chunks=(1,), dtype="bool", fill_value=False)
    if info.has_checksums:
        checksum.create_arrays(root, info)
        checksum.record_plan(staged, root, info)
    root.attrs[fmt.ATTRS_KEY] = info.to_json()


def install_store(staged: Path, path: str | Path, *, overwrite: bool) -> None:
    """Move a staged store into place. An existing store (``overwrite``) is first renamed aside, then removed
    once the new one is in place, so at every moment ``path`` holds a whole store or nothing."""
    p = Path(path)
    check_target(p, overwrite=overwrite)
    old = None
    if p.exists():
        old = p.parent / f".{p.name}.replaced-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(p, old)
    try:
        os.rename(staged, p)
    except OSError as e:
        if old is not None:
            os.rename(old, p)
        raise StoreError(f"cannot move the new store into {p}: {e.strerror or e}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def discard_staged(staged: Path | None) -> None:
    if staged is not None:
        shutil.rmtree(staged, ignore_errors=True)


def write_shard(
    path: str | Path,
    info: StoreInfo,
    shard: int,
    *,
    images: np.ndarray,
    labels: np.ndarray | None,
    qc_attempts: np.ndarray,
    qc_pass: np.ndarray,
    measures: Mapping[str, np.ndarray],
) -> None:
    """Write one whole shard, then mark it done. ``images`` are float32 in [0, 1]."""
    a, b = info.shard_range(shard)
    k = b - a
    if images.shape != (k, *info.space.shape):
        raise StoreError(f"shard {shard}: images of shape {images.shape}, expected {(k, *info.space.shape)}")
    root = zarr.open_group(str(path), mode="r+")
    _fault("shard")
    root[fmt.IMAGES][a:b] = fmt.encode_images(images, info.dtype)
    if info.has_labels:
        if labels is None:
            raise StoreError(f"shard {shard}: the store keeps label maps but none were given")
        root[fmt.LABELS][a:b] = np.asarray(labels, dtype=np.uint8)
    meta = root[fmt.META]
    meta[fmt.QC_ATTEMPTS][a:b] = np.asarray(qc_attempts, dtype=np.uint8)
    meta[fmt.QC_PASS][a:b] = np.asarray(qc_pass, dtype=bool)
    for name in info.measure_names:
        meta[name][a:b] = np.asarray(measures[name], dtype=np.float64)
    if info.has_checksums:
        checksum.record_shard(path, root, info, shard)
    root[fmt.SHARD_DONE][shard] = True


def consolidate(path: str | Path) -> None:
    """Consolidate metadata once, when every shard is written (readers then need one metadata read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # "not part of the v3 spec": we know
        zarr.consolidate_metadata(str(path))


def write_images(
    path: str | Path,
    images: np.ndarray,
    space,
    *,
    shard_size: int = 32,
    labels: np.ndarray | None = None,
    conditions: Mapping[str, np.ndarray] | None = None,
    generator: Mapping[str, object] | None = None,
    dtype: str = "float16",
    codec: str = "zstd",
    overwrite: bool = False,
) -> StoreInfo:
    """Pack images one already has (float32 (n, X, Y, Z) in [0, 1]) into a complete store, shard by shard —
    e.g. an existing synthetic dataset of NIfTI files, or degraded copies for an audit benchmark."""
    from synthkit.seeding import sample_seeds

    n = len(images)
    cond = {k: np.asarray(v, np.float64) for k, v in (conditions or {}).items()}
    info = StoreInfo(
        space=space,
        n=n,
        shard_size=min(shard_size, n),
        dtype=dtype,
        codec=codec,
        root_seed=0,
        condition_names=list(cond),
        measure_names=[],
        has_labels=labels is not None,
        generator=dict(generator or {"kind": "imported"}),
    )
    create_store(path, info, conditions=cond, seeds=sample_seeds(0, range(n)), overwrite=overwrite)
    for k in range(info.n_shards):
        a, b = info.shard_range(k)
        write_shard(
            path,
            info,
            k,
            images=np.asarray(images[a:b], np.float32),
            labels=None if labels is None else labels[a:b],
            qc_attempts=np.ones(b - a),
            qc_pass=np.ones(b - a, bool),
            measures={},
        )
    consolidate(path)
    return info
