"""Find and repair damaged chunks: presence, checksums (format version 2) and decodability of every chunk of
every array, reported per sample.

A damaged sample is one whose bytes come from a damaged chunk: its own inner chunk of ``images`` or ``labels``,
or its shard's chunk of a meta array (then every sample of the shard). ``repair`` removes what a damaged shard's
task wrote and clears its done flag, so ``generate --resume`` writes it again (byte-identical); a damaged plan
chunk is restored from its intact copy in ``plan_copy/``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from synthkit.errors import StoreError
from synthkit.store import checksum
from synthkit.store import format as fmt
from synthkit.store.format import StoreInfo


@dataclass
class Damage:
    """What is damaged: reasons per sample, shards to regenerate, plan chunks to restore."""

    samples: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    shards: set[int] = field(default_factory=set)
    plan: set[tuple[int, str]] = field(default_factory=set)  # (shard, name): main copy damaged
    plan_copy: set[tuple[int, str]] = field(default_factory=set)  # (shard, name): the copy damaged
    notes: list[str] = field(default_factory=list)
    plan_record: bool = False  # checksums/plan itself is damaged (the plan and its copy agree)
    warnings: list[str] = field(default_factory=list)

    def add(
        self, info: StoreInfo, shard: int, reason: str, positions: np.ndarray | None = None, *, regenerate: bool = True
    ) -> None:
        """Mark samples of ``shard`` (all of them, or those at ``positions`` within it) damaged; ``regenerate``:
        its task must run again (not for a damaged plan chunk, which is restored from its copy)."""
        a, b = info.shard_range(shard)
        idx = range(a, b) if positions is None else (a + int(p) for p in positions)
        for i in idx:
            self.samples[i].append(reason)
        if regenerate:
            self.shards.add(shard)

    def lines(self) -> list[str]:
        record = ["checksums/plan (the plan's checksums) is damaged; --repair records them again"]
        samples = [f"sample {i}: {'; '.join(dict.fromkeys(r))}" for i, r in sorted(self.samples.items())]
        return samples + self.notes + (record if self.plan_record else [])


def read_flags(root: zarr.Group, info: StoreInfo, damage: Damage) -> np.ndarray:
    """``shard_done``, chunk by chunk when a chunk is unreadable (such a shard counts as damaged, not done)."""
    arr = root[fmt.SHARD_DONE]
    try:
        return np.asarray(arr[:], dtype=bool)
    except Exception:
        pass
    done = np.zeros(info.n_shards, dtype=bool)
    for k in range(info.n_shards):
        try:
            done[k] = bool(arr[k])
        except Exception:
            damage.add(info, k, "its shard's done flag is unreadable")
    return done


def _describe(expected: int, observed: int, what: str) -> str | None:
    if expected == observed:
        return None
    if expected == fmt.CRC_UNRECORDED:
        return f"no checksum recorded for {what}"
    if observed == fmt.CRC_ABSENT:
        return f"{what} is missing"
    if observed == checksum.CRC_BAD:
        return f"{what}: shard index damaged"
    if expected == fmt.CRC_ABSENT:
        return f"{what} exists where none was written"
    return f"{what}: checksum mismatch"


def _compare(info: StoreInfo, shard: int, seen: checksum.ShardSums, rec: checksum.ShardSums, d: Damage) -> None:
    pairs = [(fmt.IMAGES, seen.images, rec.images)]
    if info.has_labels:
        pairs.append((fmt.LABELS, seen.labels, rec.labels))
    for name, obs, exp in pairs:
        for j in range(len(exp)):
            reason = _describe(int(exp[j]), int(obs[j]), f"{name} chunk")
            if reason:
                d.add(info, shard, reason, np.array([j]))
    for name, exp, obs in zip(info.task_meta_arrays(), rec.meta, seen.meta, strict=True):
        reason = _describe(int(exp), int(obs), f"meta/{name} chunk {shard}")
        if reason:
            d.add(info, shard, reason)


def check_plan(path: Path, root: zarr.Group, info: StoreInfo, d: Damage) -> None:
    """The plan chunks of every shard (done or not) and their copies, against the checksums of creation."""
    names = info.plan_arrays()
    try:
        rec = np.asarray(root[fmt.CHECKSUMS]["plan"][:], dtype=np.int64)
    except Exception:
        rec = None
    for k in range(info.n_shards):
        main = checksum.meta_sums(path, root, names, k)
        copy = checksum.meta_sums(path, root, names, k, group=fmt.PLAN_COPY)
        if rec is None or ((main == copy).all() and (main != rec[k]).any()):
            # the plan and its copy agree with each other, not with the record: the record is what is damaged
            d.plan_record = True
            continue
        for j, name in enumerate(names):
            reason = _describe(int(rec[k, j]), int(main[j]), f"plan meta/{name} chunk {k}")
            if reason:
                d.plan.add((k, name))
                d.add(info, k, reason, regenerate=False)
            if _describe(int(rec[k, j]), int(copy[j]), "copy"):
                d.plan_copy.add((k, name))
                d.notes.append(f"plan_copy/{name} chunk {k} is damaged (no sample affected; --repair restores it)")


def check_checksums(path: Path, root: zarr.Group, info: StoreInfo, done: np.ndarray, d: Damage) -> None:
    check_plan(path, root, info, d)
    for k in np.flatnonzero(done):
        k = int(k)
        try:
            rec = checksum.recorded(root, info, k)
        except Exception:
            d.add(info, k, "its checksum record is unreadable")
            continue
        _compare(info, k, checksum.observe(path, root, info, k), rec, d)


def _decodes(arr: zarr.Array, a: int, b: int) -> np.ndarray:
    """Positions in ``a:b`` that do not decode (none when the whole block does)."""
    try:
        arr[a:b]
        return np.zeros(0, dtype=np.int64)
    except Exception:
        pass
    bad = []
    for i in range(a, b):
        try:
            arr[i]
        except Exception:
            bad.append(i - a)
    return np.array(bad, dtype=np.int64)


def check_decoding(root: zarr.Group, info: StoreInfo, done: np.ndarray, d: Damage) -> None:
    """Decode every chunk of every finished shard (and the plan of every shard); an all-zero image that passed
    QC is a chunk that went missing (the only sign of it in a version 1 store)."""
    images = [fmt.IMAGES, fmt.LABELS] if info.has_labels else [fmt.IMAGES]
    meta = root[fmt.META]
    for k in range(info.n_shards):
        a, b = info.shard_range(k)
        for name in info.plan_arrays():
            if _decodes(meta[name], a, b).size:
                d.plan.add((k, name))
                d.add(info, k, f"plan meta/{name} chunk {k} does not decode", regenerate=False)
        if not done[k]:
            continue
        for name in images:
            bad = _decodes(root[name], a, b)
            if bad.size:
                d.add(info, k, f"{name} chunk does not decode", bad)
        for name in info.task_meta_arrays():
            if _decodes(meta[name], a, b).size:
                d.add(info, k, f"meta/{name} chunk {k} does not decode")
        _zero_images(root, info, k, d)


def _zero_images(root: zarr.Group, info: StoreInfo, k: int, d: Damage) -> None:
    a, b = info.shard_range(k)
    try:
        block = np.asarray(root[fmt.IMAGES][a:b])
        passed = np.asarray(root[fmt.META][fmt.QC_PASS][a:b], bool)
    except Exception:
        return  # reported above
    empty = ~block.reshape(b - a, -1).any(axis=1) & passed
    if empty.any():
        d.add(info, k, "all-zero image that passed QC (its chunk is missing)", np.flatnonzero(empty))


def find_damage(
    path: str | Path, root: zarr.Group, info: StoreInfo, *, decode: bool = True
) -> tuple[Damage, np.ndarray]:
    """Every damaged sample of a store, and its done flags (unreadable ones read as not done)."""
    d = Damage()
    p = Path(path)
    done = read_flags(root, info, d)
    if info.has_checksums:
        check_checksums(p, root, info, done, d)
    else:
        d.warnings.append("format version 1: no checksums recorded; presence and decoding checked only")
    if decode:
        check_decoding(root, info, done, d)
    return d, done


def repair(path: str | Path, info: StoreInfo, damage: Damage) -> list[int]:
    """Restore damaged plan chunks from their copy (or the copy from the plan), remove what each damaged shard's
    task wrote and clear its done flag. Returns the shards to regenerate with ``generate --resume``.

    Raises:
        StoreError: a plan chunk and its copy are both damaged (the plan cannot be recovered).
    """
    p = Path(path)
    root = zarr.open_group(str(p), mode="r+")
    lost = sorted(damage.plan & damage.plan_copy)
    if lost or (damage.plan and not info.has_checksums):
        what = ", ".join(f"meta/{n} chunk {k}" for k, n in lost) or "the plan (a version 1 store keeps no copy)"
        raise StoreError(f"{p}: cannot repair {what}; the plan is lost — generate the cohort again")
    for k, name in sorted(damage.plan | damage.plan_copy):
        src, dst = (fmt.PLAN_COPY, fmt.META) if (k, name) in damage.plan else (fmt.META, fmt.PLAN_COPY)
        data = checksum.read_bytes(checksum.chunk_file(p, f"{src}/{name}", root[src][name], (k,)))
        target = checksum.chunk_file(p, f"{dst}/{name}", root[dst][name], (k,))
        _replace(target, data)
    if damage.plan_record:
        checksum.record_plan(p, root, info)
    shards = sorted(damage.shards)
    for k in shards:
        for f in _task_files(p, root, info, k):
            f.unlink(missing_ok=True)
        root[fmt.SHARD_DONE][k] = False
    return shards


def _replace(target: Path, data: bytes | None) -> None:
    if data is None:
        target.unlink(missing_ok=True)
        return
    tmp = target.with_suffix(".repair")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(data)
    tmp.replace(target)


def _task_files(p: Path, root: zarr.Group, info: StoreInfo, k: int) -> list[Path]:
    """The files a shard's task writes (images, labels, its meta chunks and checksums) and its done flag."""
    files = [checksum.chunk_file(p, n, root[n], (k, 0, 0, 0)) for n in (fmt.IMAGES, fmt.LABELS) if n in root]
    files += [checksum.chunk_file(p, f"{fmt.META}/{n}", root[fmt.META][n], (k,)) for n in info.task_meta_arrays()]
    files.append(checksum.chunk_file(p, fmt.SHARD_DONE, root[fmt.SHARD_DONE], (k,)))
    if info.has_checksums:
        g = root[fmt.CHECKSUMS]
        names = [n for n in (fmt.IMAGES, fmt.LABELS) if n in g]
        files += [checksum.chunk_file(p, f"{fmt.CHECKSUMS}/{n}", g[n], (k,)) for n in names]
        files.append(checksum.chunk_file(p, f"{fmt.CHECKSUMS}/{fmt.META}", g[fmt.META], (k, 0)))
    return files
