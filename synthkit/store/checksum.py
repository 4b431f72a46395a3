"""CRC-32C of the encoded bytes of every chunk a store holds (format version 2).

A shard's task records, before its ``shard_done`` flag, the checksum of each sample's inner chunk in the
``images`` and ``labels`` shard files and of its chunk of every meta array it writes; creation records those of
the plan. ``verify`` recomputes them from the files; a mismatch or a missing file names the damaged samples.
Checksums are zarr's own CRC-32C (``google_crc32c``, a zarr dependency), as in the shard index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np
import zarr

from synthkit.store import format as fmt
from synthkit.store.format import StoreInfo

#: an inner chunk the shard index lists as absent (both offset and length are 2⁶⁴−1)
_EMPTY = np.uint64(2**64 - 1)
#: an inner-chunk checksum that cannot be computed: the shard index is damaged or points outside the file
CRC_BAD = -3


def crc(data: bytes) -> int:
    return int(google_crc32c.value(data))


def chunk_file(store: str | Path, array_path: str, arr: zarr.Array, coords: tuple[int, ...]) -> Path:
    """The file holding chunk (or shard) ``coords`` of the array at ``array_path`` (a local store)."""
    return Path(store) / array_path / arr.metadata.encode_chunk_key(coords)


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def file_crc(path: Path) -> int:
    """The checksum of a whole chunk file, or ``CRC_ABSENT`` when there is none."""
    data = read_bytes(path)
    return fmt.CRC_ABSENT if data is None else crc(data)


def inner_crcs(data: bytes | None, n_inner: int) -> np.ndarray:
    """One checksum per inner chunk of a shard file (zarr ``sharding_indexed``, index at the end: ``n_inner``
    pairs of little-endian uint64 offset and length, then the CRC-32C of those pairs). ``CRC_BAD`` for every
    chunk when the index is damaged, for one chunk when its entry points outside the file."""
    if data is None:
        return np.full(n_inner, fmt.CRC_ABSENT, dtype=np.int64)
    size = 16 * n_inner + 4
    out = np.full(n_inner, CRC_BAD, dtype=np.int64)
    if len(data) < size:
        return out
    raw = data[-size:-4]
    if crc(raw) != int.from_bytes(data[-4:], "little"):
        return out
    index = np.frombuffer(raw, dtype="<u8").reshape(n_inner, 2)
    body = len(data) - size
    for i, (off, nbytes) in enumerate(index):
        if off == _EMPTY and nbytes == _EMPTY:
            out[i] = fmt.CRC_ABSENT
        elif int(off) + int(nbytes) <= body:
            out[i] = crc(data[int(off) : int(off) + int(nbytes)])
    return out


@dataclass
class ShardSums:
    """Checksums of one shard's chunks: per sample for images and labels, per meta array otherwise."""

    images: np.ndarray
    labels: np.ndarray | None
    meta: np.ndarray  # one per info.task_meta_arrays()
    plan: np.ndarray  # one per info.plan_arrays()


def image_sums(store: str | Path, root: zarr.Group, info: StoreInfo, name: str, shard: int) -> np.ndarray:
    """Checksums of the samples of one shard in ``images`` or ``labels`` (length: the shard's samples)."""
    arr = root[name]
    data = read_bytes(chunk_file(store, name, arr, (shard, 0, 0, 0)))
    a, b = info.shard_range(shard)
    return inner_crcs(data, info.shard_size)[: b - a]


def meta_sums(store: str | Path, root: zarr.Group, names: list[str], shard: int, group: str = fmt.META) -> np.ndarray:
    g = root[group]
    return np.array([file_crc(chunk_file(store, f"{group}/{n}", g[n], (shard,))) for n in names], dtype=np.int64)


def observe(store: str | Path, root: zarr.Group, info: StoreInfo, shard: int) -> ShardSums:
    """The checksums of one shard's chunks as they are on disk now."""
    return ShardSums(
        images=image_sums(store, root, info, fmt.IMAGES, shard),
        labels=image_sums(store, root, info, fmt.LABELS, shard) if info.has_labels else None,
        meta=meta_sums(store, root, info.task_meta_arrays(), shard),
        plan=meta_sums(store, root, info.plan_arrays(), shard),
    )


def recorded(root: zarr.Group, info: StoreInfo, shard: int) -> ShardSums:
    """The checksums recorded for one shard (raises whatever zarr raises when the record is unreadable)."""
    a, b = info.shard_range(shard)
    g = root[fmt.CHECKSUMS]
    return ShardSums(
        images=np.asarray(g[fmt.IMAGES][a:b], dtype=np.int64),
        labels=np.asarray(g[fmt.LABELS][a:b], dtype=np.int64) if info.has_labels else None,
        meta=np.asarray(g[fmt.META][shard], dtype=np.int64),
        plan=np.asarray(g["plan"][shard], dtype=np.int64),
    )


def create_arrays(root: zarr.Group, info: StoreInfo) -> zarr.Group:
    """The empty ``checksums`` group of a new store (version 2)."""
    g = root.create_group(fmt.CHECKSUMS)
    kw = {"dtype": "int64", "fill_value": fmt.CRC_UNRECORDED}
    for name in (fmt.IMAGES, fmt.LABELS) if info.has_labels else (fmt.IMAGES,):
        g.create_array(name, shape=(info.n,), chunks=(info.shard_size,), **kw)
    m, n_plan = len(info.task_meta_arrays()), len(info.plan_arrays())
    g.create_array(fmt.META, shape=(info.n_shards, m), chunks=(1, m), **kw)  # one row per task
    g.create_array("plan", shape=(info.n_shards, n_plan), chunks=(min(info.n_shards, 1024), n_plan), **kw)
    return g


def record_plan(store: str | Path, root: zarr.Group, info: StoreInfo) -> None:
    """At creation, once the plan is written: the checksum of every plan chunk (main copy; the copy in
    ``plan_copy`` has the same bytes)."""
    names = info.plan_arrays()
    sums = np.stack([meta_sums(store, root, names, k) for k in range(info.n_shards)])
    root[fmt.CHECKSUMS]["plan"][:] = sums


def record_shard(store: str | Path, root: zarr.Group, info: StoreInfo, shard: int) -> None:
    """After a task wrote its shard, before its done flag: the checksums of what it wrote."""
    a, b = info.shard_range(shard)
    g = root[fmt.CHECKSUMS]
    g[fmt.IMAGES][a:b] = image_sums(store, root, info, fmt.IMAGES, shard)
    if info.has_labels:
        g[fmt.LABELS][a:b] = image_sums(store, root, info, fmt.LABELS, shard)
    g[fmt.META][shard] = meta_sums(store, root, info.task_meta_arrays(), shard)
