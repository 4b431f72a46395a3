"""What ``synthkit inspect`` shows about a store."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthkit.config import sampling_flag
from synthkit.store import format as fmt
from synthkit.store.reader import open_store, read_whole, shard_done


@dataclass
class StoreSummary:
    path: Path
    info: fmt.StoreInfo
    shards_done: int
    bytes_on_disk: int
    qc_failed: int
    extrapolated: int
    conditions: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        i = self.info
        g = i.generator
        gen = g.get("kind", "?") + (f" ({g['model']})" if g.get("model") not in (None, "phantom") else "")
        if g.get("checkpoint_sha256"):
            gen += f", sha256 {g['checkpoint_sha256'][:12]}…"
        per_sample = self.bytes_on_disk / max(1, self.shards_done * i.shard_size)
        sampling = _sampling(g)
        return [
            ("samples", f"{i.n}"),
            (
                "complete",
                f"{self.shards_done} of {i.n_shards} shards ({100 * self.shards_done / i.n_shards:.0f} %)",
            ),
            ("space", i.space.describe()),
            ("image dtype", i.dtype + (" + uint8 label maps" if i.has_labels else "")),
            ("shard size", f"{i.shard_size} samples"),
            ("generator", gen),
            *([("sampling", sampling)] if sampling else []),
            ("root seed", str(i.root_seed)),
            ("conditions", ", ".join(i.condition_names) or "none"),
            ("measures", ", ".join(i.measure_names) or "none"),
            ("QC failures", str(self.qc_failed)),
            ("extrapolated", f"{self.extrapolated} samples outside the training range"),
            ("size on disk", f"{_human(self.bytes_on_disk)} (~{_human(per_sample)} per sample)"),
            ("created", f"{i.created} with synthkit {i.versions.get('synthkit', '?')}"),
        ]


def _sampling(generator: dict) -> str:
    """A diffusion store's sampler, steps and guidance, marking those given on the command line."""
    s = generator.get("sampling")
    if not isinstance(s, dict):
        return ""
    text = f"{s.get('sampler')}, {s.get('steps')} steps, guidance scale {s.get('guidance_scale')}"
    given = generator.get("sampling_given") or {}
    return text + (f" (given: {', '.join(map(sampling_flag, given))})" if given else " (the recipe's)")


def summarise(path: str | Path) -> StoreSummary:
    root, info = open_store(path)
    done = shard_done(root)
    finished = np.repeat(done, info.shard_size)[: info.n]
    conditions = {}
    for name in (*info.condition_names, *info.measure_names):
        v = read_whole(root, f"{fmt.META}/{name}").astype(float)
        v = v[finished & np.isfinite(v)] if name in info.measure_names else v
        if v.size:
            conditions[name] = (float(v.min()), float(v.mean()), float(v.max()))
    qc_pass = read_whole(root, f"{fmt.META}/{fmt.QC_PASS}").astype(bool)
    return StoreSummary(
        path=Path(path),
        info=info,
        shards_done=int(done.sum()),
        bytes_on_disk=_du(Path(path)),
        qc_failed=int((finished & ~qc_pass).sum()),
        extrapolated=int(read_whole(root, f"{fmt.META}/{fmt.EXTRAPOLATED}").astype(bool).sum()),
        conditions=conditions,
    )


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"
