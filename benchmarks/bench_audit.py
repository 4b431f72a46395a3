"""Audit benchmarks (JSON lines), at the demo space (phantom, 4 mm, 40×56×40):

* ``audit_timing``: wall time per metric for 1000 synthetic vs 200 real images (``synthkit audit`` defaults,
  1000 pairs, fallback feature extractor);
* ``pairwise_ms_ssim``: the batched separable MS-SSIM vs a naive per-pair loop over MONAI's
  ``MultiScaleSSIMMetric`` with the same kernel and scales, same pairs, same run; and their largest difference;
* ``audit_verdicts``: the audit of degraded phantom stores (blurred, noisy, collapsed to one subject) next to
  an intact one — a second phantom cohort through the reference's own pipeline (NIfTI, preprocessing) — every
  section answerable (conditions = the subjects' true age, sex and volumes; a brain-age
  model trained on the reference; the reference as training set): the verdict per question and the numbers
  behind it. Expected: intact close to real on every question; blurred and noisy far on realism; noisy
  flagged noise-like on diversity; collapsed far on diversity.

Usage: ``python benchmarks/bench_audit.py [--quick] [--part all|timing|degradation]``
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


def intact_cohort(space, tmp: Path, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A second phantom cohort, independent of the reference (seed 8) and through the same pipeline (NIfTI,
    preprocessing into the space), with its true age, sex and volumes as conditions."""
    from synthkit.data import phantom as ph
    from synthkit.data.cache import PreprocessedCache
    from synthkit.data.manifest import read_manifest

    m = read_manifest(ph.write_cohort(tmp / "intact", n, space=space, seed=8, progress=False))
    images = PreprocessedCache(space).get_many(list(m.table["image"]))
    return images, {k: m.table[k].to_numpy(float) for k in ("age", "sex", "ventricular_volume", "brain_volume")}


def degraded_stores(base: np.ndarray, cond: dict[str, np.ndarray], space, tmp: Path) -> dict[str, Path]:
    """The intact store and its blurred, noisy and collapsed copies, all with the intact conditions."""
    rng = np.random.default_rng(1)
    images = {
        "intact": base,
        "blurred (Gaussian σ 1.5 voxels)": np.stack([ndi.gaussian_filter(x, 1.5) for x in base]).astype(np.float32),
        "noisy (Gaussian SD 0.15)": np.clip(base + rng.normal(0, 0.15, base.shape), 0, 1).astype(np.float32),
        "collapsed (one subject)": np.repeat(base[:1], len(base), axis=0),
    }
    from synthkit.store.writer import write_images

    out = {}
    for i, (name, imgs) in enumerate(images.items()):
        out[name] = tmp / f"deg{i}.zarr"
        write_images(out[name], imgs, space, conditions=cond, generator={"kind": "phantom"})
    return out


def degradation(space, reference: Path, tmp: Path, n: int, n_pairs: int) -> None:
    """Audit every degraded store with every section answerable (a brain-age model trained on the reference,
    the reference as the training set) and print the verdicts next to the numbers behind them."""
    from synthkit.audit.suite import run_audit
    from synthkit.cli import main as cli
    from synthkit.config import AuditRecipe

    stores = degraded_stores(*intact_cohort(space, tmp, n), space, tmp)
    model = tmp / "age.safetensors"
    first = next(iter(stores.values()))
    assert cli(["train", "brain-age", "--manifest", str(reference), "--out", str(model), "--store", str(first)]) == 0
    recipe = AuditRecipe(
        n_pairs=n_pairs,
        bootstrap=50,
        metrics=["fid", "mmd", "ms_ssim", "4gr_ssim", "psnr"],
        n_segment=60,
        extrapolation=False,
    )
    for i, (name, store) in enumerate(stores.items()):
        t = time.perf_counter()
        rep = run_audit(
            store,
            reference,
            tmp / f"audit{i}",
            recipe,
            brain_age=model,
            training=reference,
            progress=False,
            echo=lambda m: None,
        ).report
        m = rep["metrics"]
        emit(
            {
                "bench": "audit_verdicts",
                "store": name,
                "space": space.describe(),
                "n_synthetic": rep["counts"]["synthetic"],
                "n_reference": rep["counts"]["reference"],
                "verdicts": {q: v["verdict"] for q, v in rep["verdicts"].items()},
                "confidence": {q: v["confidence"] for q, v in rep["verdicts"].items()},
                "noise_like": bool(rep["verdicts"]["diversity"].get("noise_like")),
                "why": {q: v["why"] for q, v in rep["verdicts"].items()},
                "flags": rep["flags"],
                "fid_ratio": m["fid"]["ratio_to_real_vs_real"],
                "fid_ratio_ci95": m["fid"]["ratio_ci95"],
                "ms_ssim": [m["ms_ssim"]["synthetic"]["mean"], m["ms_ssim"]["real"]["mean"]],
                "psnr": [m["psnr"]["synthetic_vs_nearest_real"]["psnr"], m["psnr"]["real_vs_nearest_real"]["psnr"]],
                "seconds": round(time.perf_counter() - t, 1),
            }
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["all", "timing", "degradation"], default="all")
    args = ap.parse_args()
    from synthkit.data import phantom as ph

    n_syn, n_real, n_pairs = (120, 40, 60) if args.quick else (1000, 200, 1000)
    space = ph.default_space(4.0)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        reference = ph.write_cohort(tmp / "real", n_real, space=space, seed=7, progress=False)
        if args.part in ("all", "timing"):
            timing(space, reference, tmp, n_syn, n_real, n_pairs, args.quick)
        if args.part in ("all", "degradation"):
            degradation(space, reference, tmp, n_real, min(n_pairs, 500))


def timing(space, reference: Path, tmp: Path, n_syn: int, n_real: int, n_pairs: int, quick: bool) -> None:
    """Wall time per section, and the batched MS-SSIM against a naive MONAI loop."""
    import torch
    from monai.metrics import MultiScaleSSIMMetric

    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe
    from synthkit.data import phantom as ph
    from synthkit.metrics.ssim import fit_kernel, ms_ssim, pairwise, random_pairs

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
            "seconds_per_section": rep["timings_seconds"],
            "total_seconds": round(sum(rep["timings_seconds"].values()), 2),
            "feature_extractor": rep["feature_extractor"]["name"],
            "phantom_render_seconds": round(t_render, 1),
        }
    )
    k, w = fit_kernel(space.shape, 7)
    pairs = random_pairs(n_syn, 100 if quick else 300, np.random.default_rng(0))
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


if __name__ == "__main__":
    main()
