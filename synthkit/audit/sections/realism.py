"""Realism: distances between the synthetic and real feature (or image) distributions, each beside the same
distance between two halves of the reference, and the verdict from their ratio.

Writes ``features.npz``: the synthetic and reference feature vectors, the extractor's name and weights'
sha256, the store indices and manifest rows they belong to, and the real-vs-real halves — everything FID and
MMD² are computed from (docs/audit.md recomputes them with scipy).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from synthkit.audit.context import AuditContext, Part
from synthkit.audit.stats import basic_ci, recentred_ci
from synthkit.audit.verdict import CLOSE, FAR, UNSURE, cannot_tell, fmt_ci, verdict
from synthkit.data.cache import default_cache_dir
from synthkit.metrics import fid as fid_mod
from synthkit.metrics import mmd as mmd_mod
from synthkit.metrics.features import FeatureExtractor, load_medicalnet, random_features

DISTANCES: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], float | None, dict[str, str]]] = {
    "fid": (fid_mod.fid, 0.0, {}),
    "mmd": (mmd_mod.mmd2_gaussian, None, {"kernel": "gaussian, median heuristic"}),
}


def extractor(ctx: AuditContext, part: Part) -> FeatureExtractor:
    o = ctx.options
    if o.med3d_weights is not None:
        ext = load_medicalnet(o.med3d_weights, device=o.device)
    else:
        ext = random_features(device=o.device)
        part.warnings.append(
            "no Med3D weights given (--med3d-weights resnet_50_23dataset.pth): features come from the fallback "
            f"'{ext.name}', a randomly initialised network; FID/MMD values are not comparable with published ones"
        )
    o.echo(
        f"feature extractor: {ext.name}"
        + ("" if ext.weights_sha256 is None else f" (sha256 {ext.weights_sha256[:12]}…)")
    )
    part.top["feature_extractor"] = {"name": ext.name, "weights_sha256": ext.weights_sha256}
    return ext


def reference_features(ext: FeatureExtractor, ctx: AuditContext) -> np.ndarray:
    """Features of the loaded reference, cached on disk by manifest hash, extractor, space and rows."""
    ids = [str(x) for x in ctx.manifest.table["subject_id"].to_numpy()[ctx.reference_rows]]
    key = json.dumps([ctx.manifest_sha256, ext.identity, ctx.cohort.space.to_dict(), ids])
    f = default_cache_dir() / "features" / f"{hashlib.sha256(key.encode()).hexdigest()}.npy"
    if f.exists():
        return np.load(f)
    feats = ext.features(ctx.reference, batch_size=ctx.recipe.batch_size)
    f.parent.mkdir(parents=True, exist_ok=True)
    np.save(f, feats)
    return feats


def save_features(ctx: AuditContext, ext: FeatureExtractor, f_syn: np.ndarray, f_real: np.ndarray) -> None:
    np.savez_compressed(
        ctx.out / "features.npz",
        synthetic=f_syn,
        reference=f_real,
        synthetic_index=ctx.synthetic_index,
        reference_rows=ctx.reference_rows,
        half_a=ctx.half_a,
        half_b=ctx.half_b,
        extractor=np.str_(ext.name),
        weights_sha256=np.str_(ext.weights_sha256 or ""),
    )


def distance_row(name: str, f_syn: np.ndarray, f_real: np.ndarray, ctx: AuditContext, rng) -> dict[str, Any]:
    """One distance, synthetic vs real and real vs real, with bootstrap intervals for it and for their ratio."""
    fn, floor, extra = DISTANCES[name]
    a, b = f_real[ctx.half_a], f_real[ctx.half_b]
    est, rr = fn(f_syn, f_real), fn(a, b)
    boot, ratios = [], []
    for _ in range(ctx.recipe.bootstrap):
        s = fn(f_syn[rng.integers(0, len(f_syn), len(f_syn))], f_real[rng.integers(0, len(f_real), len(f_real))])
        r = fn(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
        boot.append(s)
        ratios.append(s / r if r > 0 else np.nan)
    ratio = est / rr if rr > 0 else None
    return {
        "synthetic_vs_real": est,
        "ci95": basic_ci(est, np.array(boot), floor=floor),
        "real_vs_real": rr,
        "ratio_to_real_vs_real": ratio,
        "ratio_ci95": None if ratio is None else recentred_ci(ratio, np.array(ratios)),
        "sizes": {"synthetic": len(f_syn), "reference": len(f_real), "real_halves": [len(a), len(b)]},
        "bootstrap": {"resamples": ctx.recipe.bootstrap, "seed": ctx.seed("bootstrap")},
        "inputs": "features.npz (synthetic, reference; halves half_a, half_b)",
        **extra,
    }


def realism_verdict(metrics: dict[str, Any], ctx: AuditContext) -> dict[str, Any]:
    t = ctx.recipe.thresholds
    name = next((k for k in ("fid", "mmd") if k in metrics), None)
    rule = f"ratio to real-vs-real ≤ {t.realism_max_ratio:g}"
    if name is None:
        return cannot_tell("no feature distance (fid or mmd) in the recipe's metrics", rule)
    m = metrics[name]
    ratio, ci = m["ratio_to_real_vs_real"], m["ratio_ci95"]
    if ratio is None:
        return cannot_tell(f"the real-vs-real {name} is {m['real_vs_real']:.3g} (no ratio)", rule)
    band = ci if ci is not None else [ratio, ratio]
    kind = FAR if band[0] > t.realism_max_ratio else CLOSE if band[1] <= t.realism_max_ratio else UNSURE
    why = f"{name} is {ratio:.3g}× the real-vs-real row ({fmt_ci(ci)})"
    if kind == UNSURE:
        why += f", which straddles {t.realism_max_ratio:g}: more samples would tell"
    evidence = {
        k: {"ratio": metrics[k]["ratio_to_real_vs_real"], "ci95": metrics[k]["ratio_ci95"]}
        for k in DISTANCES
        if k in metrics
    }
    v = verdict(kind, why, rule, evidence, based_on=name, ratio=ratio, ratio_ci95=ci)
    halves = m["sizes"]["real_halves"]
    if min(halves) < t.min_real_half:
        v["confidence"] = "low"
        v["low_confidence"] = [
            f"low confidence: the real-vs-real row rests on {halves[0]} against {halves[1]} images "
            f"(< {t.min_real_half} per half)"
        ]
    return v


def image_mmd(ctx: AuditContext) -> dict[str, Any]:
    real = ctx.reference
    return {
        "synthetic_vs_real": mmd_mod.mmd_linear_images(ctx.synthetic, real),
        "real_vs_real": mmd_mod.mmd_linear_images(real[ctx.half_a], real[ctx.half_b]),
        "kernel": "linear (MONAI MMDMetric's estimator, all samples, unequal sizes allowed)",
        "sizes": {
            "synthetic": len(ctx.synthetic),
            "reference": len(real),
            "real_halves": [len(ctx.half_a), len(ctx.half_b)],
        },
    }


def run(ctx: AuditContext) -> Part:
    """FID and MMD² on features, MMD on images; the realism verdict."""
    part = Part()
    wanted = [k for k in DISTANCES if k in ctx.recipe.metrics]
    if wanted:
        ext = extractor(ctx, part)
        t = time.perf_counter()
        f_syn = ext.features(ctx.synthetic, batch_size=ctx.recipe.batch_size)
        f_real = reference_features(ext, ctx)
        part.top["timings_features"] = time.perf_counter() - t
        save_features(ctx, ext, f_syn, f_real)
        rng = ctx.rng("bootstrap")
        for name in wanted:
            part.metrics[name] = distance_row(name, f_syn, f_real, ctx, rng) | {"features": ext.name}
    if "mmd_images" in ctx.recipe.metrics:
        part.metrics["mmd_images"] = image_mmd(ctx)
    part.verdicts["realism"] = realism_verdict(part.metrics, ctx)
    return part
