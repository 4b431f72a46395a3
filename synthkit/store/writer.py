"""Create a store with its full plan, and write whole shards (DESIGN §7 rules).

* The plan — every condition row and seed — is written at creation, by one process, before any task runs.
* One task writes whole shards only: images, labels, its own chunk of each per-sample meta array, then its
  ``shard_done`` flag. Nobody else writes inside that shard, so zarr needs no locks.
* Group attrs are written once, at creation. Metadata is consolidated once, at the end.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import zarr

from synthkit.errors import StoreError
from synthkit.store import format as fmt
from synthkit.store.format import StoreInfo


def is_store(path: str | Path) -> bool:
    p = Path(path)
    return (p / "zarr.json").exists()


def create_store(
    path: str | Path,
    info: StoreInfo,
    *,
    conditions: Mapping[str, np.ndarray],
    seeds: np.ndarray,
    extrapolated: np.ndarray | None = None,
    overwrite: bool = False,
) -> zarr.Group:
    """Create the store and write its plan. Refuses to replace an existing path unless ``overwrite``.

    Raises:
        StoreError: the path exists (without ``overwrite``), is not a store (with ``overwrite``), cannot be
            written, or the plan does not match ``info``.
    """
    p = Path(path)
    if p.exists():
        if not overwrite:
            raise StoreError(f"{p} already exists; use --resume to finish it or --overwrite to replace it")
        if p.is_dir() and not is_store(p) and any(p.iterdir()):
            raise StoreError(f"{p} is a non-empty folder that is not a synthkit store; refusing to delete it")
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    n = info.n
    if len(seeds) != n:
        raise StoreError(f"plan has {len(seeds)} seeds for {n} samples")
    if sorted(conditions) != sorted(info.condition_names):
        raise StoreError("plan conditions do not match the store's condition names")
    for name, values in conditions.items():
        if len(values) != n:
            raise StoreError(f"condition {name!r} has {len(values)} values for {n} samples")
    info.created = info.created or datetime.now(UTC).isoformat(timespec="seconds")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(str(p), mode="w-", zarr_format=3)
    except (OSError, zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError) as e:
        raise StoreError(f"cannot create a store at {p}: {e}") from None
    shape = (n, *info.space.shape)
    s = info.shard_size
    image_kw = {
        "shape": shape,
        "chunks": (1, *info.space.shape),
        "shards": (s, *info.space.shape),
        "fill_value": 0,
    }
    root.create_array(fmt.IMAGES, dtype=info.dtype, compressors=fmt.image_codec(info.dtype, info.codec), **image_kw)
    if info.has_labels:
        root.create_array(fmt.LABELS, dtype="uint8", compressors=fmt.image_codec("uint8", info.codec), **image_kw)
    meta = root.create_group(fmt.META)

    def meta_array(name: str, dtype: str, data: np.ndarray | None, fill: object) -> None:
        arr = meta.create_array(name, shape=(n,), chunks=(s,), dtype=dtype, fill_value=fill)
        if data is not None:
            arr[:] = data

    for name in info.condition_names:
        meta_array(name, "float64", np.asarray(conditions[name], dtype=np.float64), np.nan)
    meta_array(fmt.SEED, "uint64", np.asarray(seeds, dtype=np.uint64), 0)
    meta_array(fmt.EXTRAPOLATED, "bool", None if extrapolated is None else np.asarray(extrapolated, bool), False)
    meta_array(fmt.QC_ATTEMPTS, "uint8", None, 0)
    meta_array(fmt.QC_PASS, "bool", None, False)
    for name in info.measure_names:
        meta_array(name, "float64", None, np.nan)
    root.create_array(fmt.SHARD_DONE, shape=(info.n_shards,), chunks=(1,), dtype="bool", fill_value=False)
    # attrs last: a store without them is recognisably unfinished at creation
    root.attrs[fmt.ATTRS_KEY] = info.to_json()
    return root


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
