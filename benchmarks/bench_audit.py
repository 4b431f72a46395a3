"""Audit benchmarks (JSON lines), at the demo space (phantom, 4 mm, 40×56×40):

* ``audit_timing``: wall time per metric for 1000 synthetic vs 200 real images (``synthkit audit`` defaults,
  1000 pairs, fallback feature extractor);
* ``pairwise_ms_ssim``: the batched separable MS-SSIM vs a naive per-pair loop over MONAI's
  ``MultiScaleSSIMMetric`` with the same kernel and scales, same pairs, same run; and their largest difference;
* ``audit_degradation``: the audit of degraded phantom stores (blurred, noisy, collapsed to one subject) next
  to an intact one — the metric that should catch each degradation, with the real-vs-real row.

Usage: ``python benchmarks/bench_audit.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi


def emit(d: dict) -> None:
    d.setdefault("machine", f"{platform.machine()}, {os.cpu_count()} cores")
    print(json.dumps(d), flush=True)


def store_of(path: Path, images: np.ndarray, space) -> Path:
    from synthkit.store.writer import write_images

    write_images(path, images, space, generator={"kind": "phantom"})
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch
    from monai.metrics import MultiScaleSSIMMetric

    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe
    from synthkit.data import phantom as ph
    from synthkit.metrics.ssim import fit_kernel, ms_ssim, pairwise, random_pairs

    n_syn, n_real, n_pairs = (120, 40, 60) if args.quick else (1000, 200, 1000)
    space = ph.default_space(4.0)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        reference = ph.write_cohort(tmp / "real", n_real, space=space, seed=7, progress=False)
        t = time.perf_counter()
        syn = np.stack([ph.render(ph.draw_params(s), space).image for s in range(10_000, 10_000 + n_syn)])
        t_render = time.perf_counter() - t
        store = store_of(tmp / "syn.zarr", syn, space)
        rep = run_audit(
            store,
            reference,
            tmp / "audit",
            AuditRecipe(n_synthetic=n_syn, n_pairs=n_pairs),
            progress=False,
            echo=lambda m: None,
        ).report
        emit(
            {
                "bench": "audit_timing",
                "space": space.describe(),
                "synthetic": n_syn,
                "real": n_real,
                "pairs": n_pairs,
                "seconds_per_metric": rep["timings_seconds"],
                "total_seconds": round(sum(rep["timings_seconds"].values()), 2),
                "feature_extractor": rep["feature_extractor"]["name"],
                "phantom_render_seconds": round(t_render, 1),
            }
        )

        k, w = fit_kernel(space.shape, 7)
        pairs = random_pairs(n_syn, 100 if args.quick else 300, np.random.default_rng(0))
        t = time.perf_counter()
        ours = pairwise(ms_ssim, syn, pairs, batch_size=16)
        t_ours = time.perf_counter() - t
        metric = MultiScaleSSIMMetric(spatial_dims=3, data_range=1.0, kernel_size=k, weights=w)
        t = time.perf_counter()
        naive = np.array(
            [float(metric(torch.as_tensor(syn[[i]])[:, None], torch.as_tensor(syn[[j]])[:, None])) for i, j in pairs]
        )
        t_naive = time.perf_counter() - t
        emit(
            {
                "bench": "pairwise_ms_ssim",
                "space": space.describe(),
                "pairs": len(pairs),
                "kernel": k,
                "scales": len(w),
                "batched_pairs_per_s": len(pairs) / t_ours,
                "naive_monai_pairs_per_s": len(pairs) / t_naive,
                "ratio_batched_vs_naive": t_naive / t_ours,
                "max_abs_difference": float(np.abs(ours - naive).max()),
            }
        )

        rng = np.random.default_rng(1)
        base = syn[:n_real]
        degraded = {
            "intact": base,
            "blurred (Gaussian σ 1.5 voxels)": np.stack([ndi.gaussian_filter(x, 1.5) for x in base]).astype(np.float32),
            "noisy (Gaussian SD 0.15)": np.clip(base + rng.normal(0, 0.15, base.shape), 0, 1).astype(np.float32),
            "collapsed (one subject)": np.repeat(base[:1], len(base), axis=0),
        }
        rows = {}
        for name, imgs in degraded.items():
            path = store_of(tmp / f"deg{len(rows)}.zarr", imgs, space)
            m = run_audit(
                path,
                reference,
                tmp / f"deg{len(rows)}",
                AuditRecipe(
                    n_synthetic=len(imgs),
                    n_pairs=min(n_pairs, 500),
                    bootstrap=10,
                    metrics=["fid", "mmd", "ms_ssim", "4gr_ssim"],
                ),
                progress=False,
                echo=lambda m: None,
            ).report["metrics"]
            rows[name] = {
                "fid": m["fid"]["synthetic_vs_real"],
                "mmd": m["mmd"]["synthetic_vs_real"],
                "ms_ssim": m["ms_ssim"]["synthetic"]["mean"],
                "4gr_ssim": m["4gr_ssim"]["synthetic"]["mean"],
            }
            real_row = {
                "fid": m["fid"]["real_vs_real"],
                "mmd": m["mmd"]["real_vs_real"],
                "ms_ssim": m["ms_ssim"]["real"]["mean"],
                "4gr_ssim": m["4gr_ssim"]["real"]["mean"],
            }
        emit(
            {
                "bench": "audit_degradation",
                "space": space.describe(),
                "n_per_store": len(base),
                "real": n_real,
                "rows": rows,
                "real_vs_real": real_row,
            }
        )


if __name__ == "__main__":
    main()
