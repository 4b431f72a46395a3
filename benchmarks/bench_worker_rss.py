"""Worker memory over a long run (issue 14): RSS of the one dask worker while ``synthkit generate`` writes
N phantom samples at 8 mm, sampled every second with the number of samples done.

Prints JSON lines: one per sample point (``{"done": …, "rss_mb": …}``, every 10th) and a summary with the RSS
after the first 5 % of the run (warm: model, templates, zarr and dask state loaded), at the end, the growth,
and the slope of a least-squares line through the points after warm-up (kB per shard).

Usage: ``nice -n 10 python benchmarks/bench_worker_rss.py [--n 20000] [--shard-size 32] [--spacing 8]
[--codec zstd|lz4] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import zarr


def worker_processes() -> list[psutil.Process]:
    me = psutil.Process()
    return [
        c
        for c in me.children(recursive=True)
        if "spawn" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())
    ]


def rss_parts(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident MB from /proc (Linux): file-backed pages are mapped files and shared
    libraries paged in as code runs, which the kernel can drop; anonymous pages are the heap."""
    parts = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                key, value = line.split(":")
                parts[key] = float(value.split()[0]) / 1024
    except OSError:
        return float("nan"), float("nan")
    return parts.get("RssAnon", float("nan")), parts.get("RssFile", float("nan")) + parts.get("RssShmem", 0.0)


def done_samples(store: Path, shard_size: int, n: int) -> int:
    try:
        flags = np.asarray(zarr.open_group(str(store), mode="r")["shard_done"][:], bool)
    except Exception:
        return 0
    return min(n, int(flags.sum()) * shard_size)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--shard-size", type=int, default=32)
    ap.add_argument("--spacing", type=float, default=8.0)
    ap.add_argument("--codec", default="zstd", choices=["zstd", "lz4"], help="the store's Blosc compressor")
    ap.add_argument("--quick", action="store_true", help="2,000 samples (benchmarks/run.py --quick)")
    a = ap.parse_args()
    if a.quick:
        a.n = min(a.n, 2000)
    from synthkit.generate.engine import GenerateOptions, run

    points: list[tuple[int, float, float, float]] = []
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "rss.zarr"

        def poll() -> None:
            while not stop.wait(1.0):
                procs = worker_processes()
                if len(procs) != 1:
                    continue
                try:
                    rss = procs[0].memory_info().rss / 2**20
                    anon, file = rss_parts(procs[0].pid)
                except psutil.Error:
                    continue
                points.append((done_samples(store, a.shard_size, a.n), rss, anon, file))
                if points[-1][0] >= a.n:  # every shard written: what follows is the cluster shutting down
                    return

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        t0 = time.perf_counter()
        opts = GenerateOptions(out=store, n=a.n, shard_size=a.shard_size, batch_size=8, spacing=a.spacing,
                               workers=1, device="cpu", codec=a.codec)
        run(opts, progress=False, echo=lambda m: None)
        seconds = time.perf_counter() - t0
        stop.set()
        t.join()
    for i, (done, rss, anon, file) in enumerate(points):
        if i % 10 == 0:
            row = {"done": done, "rss_mb": round(rss, 1), "anon_mb": round(anon, 1), "file_mb": round(file, 1)}
            print(json.dumps(row))
    warm = np.array([p for p in points if p[0] >= 0.05 * a.n], float).reshape(-1, 4)
    d, r = warm[:, 0], warm[:, 1]
    slope = np.polyfit(d, r, 1)[0] if len(d) > 2 and np.ptp(d) > 0 else float("nan")
    print(json.dumps({
        "bench": "worker_rss", "n": a.n, "codec": a.codec, "spacing_mm": a.spacing, "shard_size": a.shard_size,
        "seconds": round(seconds, 1), "rss_start_mb": round(points[0][1], 1) if points else None,
        "rss_warm_mb": round(float(r[0]), 1), "rss_end_mb": round(float(r[-1]), 1),
        "rss_peak_mb": round(float(r.max()), 1), "growth_after_warm_mb": round(float(r[-1] - r[0]), 1),
        "anon_growth_after_warm_mb": round(float(warm[-1, 2] - warm[0, 2]), 1),
        "file_growth_after_warm_mb": round(float(warm[-1, 3] - warm[0, 3]), 1),
        "slope_kb_per_shard": round(float(slope) * a.shard_size * 1024, 2),
    }))


if __name__ == "__main__":
    main()
