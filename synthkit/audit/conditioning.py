"""The conditioning section of the audit: do measured volumes follow the requested ones?

For every volume condition of the store (``ventricular_volume``, ``brain_volume``), N synthetic samples are
segmented and the measured volume is compared with the requested one (Pearson r, Spearman ρ, MAE, scatter) —
Pinaya et al. report r = 0.972 for ventricles with SynthSeg. The same measurement on the reference (measured
vs recorded) is the ceiling of the segmenter itself. The extrapolation probe generates samples at requested
values beyond the training range and reports whether the measured volume keeps moving the requested way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr

from synthkit.config import AuditRecipe
from synthkit.data.cache import PreprocessedCache
from synthkit.data.manifest import read_manifest
from synthkit.metrics.segmentation import Segmenter
from synthkit.store.reader import Cohort
from synthkit.viz import scatter

VOLUME_CONDITIONS = {"ventricular_volume": "ventricles", "brain_volume": "brain"}


def _stats(requested: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(requested) & np.isfinite(measured)
    r, m = requested[ok], measured[ok]
    if len(r) < 3 or np.ptp(r) == 0:
        return {
            "n": len(r),
            "pearson_r": float("nan"),
            "spearman_rho": float("nan"),
            "mae": float(np.mean(np.abs(r - m))) if len(r) else float("nan"),
        }
    return {
        "n": len(r),
        "pearson_r": float(pearsonr(r, m)[0]),
        "spearman_rho": float(spearmanr(r, m)[0]),
        "mae": float(np.mean(np.abs(r - m))),
    }


def conditioning_section(
    cohort: Cohort,
    images: np.ndarray,
    positions: np.ndarray,
    reference: Path,
    segmenter: Segmenter,
    out: Path,
    recipe: AuditRecipe,
    echo: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Segment synthetic and reference images; compare requested (or recorded) with measured volumes."""
    names = [n for n in VOLUME_CONDITIONS if n in cohort.condition_names]
    if not names:
        return {}, {}
    affine = cohort.space.affine_array
    k = min(recipe.n_segment, len(images))
    echo(f"conditioning: segmenting {k} synthetic images with {segmenter.name}")
    seg_syn = [segmenter.segment(images[i], affine).volumes for i in range(k)]
    table = cohort.conditions.iloc[positions[:k]]
    section: dict[str, Any] = {"segmenter": segmenter.name, "conditions": {}}
    figures: dict[str, Path] = {}
    m = read_manifest(reference)
    ref_rows = [i for i in range(len(m)) if all(n in m.table.columns for n in names)][:k]
    ref_measured: list[dict[str, float]] = []
    if ref_rows:
        echo(f"conditioning: segmenting {len(ref_rows)} reference images (the segmenter's own ceiling)")
        cache = PreprocessedCache(cohort.space)
        vols = m.volumes()
        for i in ref_rows:
            img = cache.get(m.table["image"].iloc[i], vols[i])
            ref_measured.append(segmenter.segment(img, affine).volumes)
    for name in names:
        key = VOLUME_CONDITIONS[name]
        req = table[name].to_numpy(float)
        meas = np.array([v[key] for v in seg_syn])
        row: dict[str, Any] = {"synthetic_requested_vs_measured": _stats(req, meas)}
        truth_col = f"true_{name}"
        if truth_col in table.columns:  # generators that know the truth (the phantom): how good is the segmenter?
            row["segmenter_vs_true_on_synthetic"] = _stats(table[truth_col].to_numpy(float), meas)
        if ref_measured:
            rec = m.table[name].to_numpy(float)[ref_rows]
            row["reference_recorded_vs_measured"] = _stats(rec, np.array([v[key] for v in ref_measured]))
        png = scatter(
            req / 1000,
            meas / 1000,
            out / f"conditioning_{name}.png",
            xlabel=f"requested {name} (ml)",
            ylabel=f"measured {key} (ml)",
            title=f"{segmenter.name}\nr = {row['synthetic_requested_vs_measured']['pearson_r']:.3f}",
        )
        figures[f"conditioning_{name}"] = png
        section["conditions"][name] = row
    return section, figures


def extrapolation_probe(
    cohort: Cohort, segmenter: Segmenter, out: Path, recipe: AuditRecipe, device: str, echo: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Generate at requested volumes below and above the training range; is the response monotone?"""
    from synthkit.models.registry import load_generator

    g = cohort.info.generator
    names = [n for n in VOLUME_CONDITIONS if n in cohort.condition_names]
    if not names or not g.get("model"):
        return {}, {}
    try:
        gen = load_generator(g["model"], spacing=g.get("spacing"), device=device)
    except Exception as e:  # the checkpoint moved or changed: the probe is optional
        return {"skipped": f"cannot load the store's generator ({e})"}, {}
    table = cohort.conditions
    ranges = gen.covariates.ranges() if getattr(gen, "covariates", None) is not None else {}
    base = {c: float(np.median(table[c])) for c in cohort.condition_names}
    if "sex" in base:
        base["sex"] = 1.0
    section: dict[str, Any] = {}
    figures: dict[str, Path] = {}
    for name in names:
        lo, hi = ranges.get(name, (float(table[name].min()), float(table[name].max())))
        levels = np.array([lo * 0.5, lo * 0.75, lo, (lo + hi) / 2, hi, hi * 1.25, hi * 1.5])
        k = recipe.extrapolation_per_level
        req = np.repeat(levels, k)
        cond = {c: np.full(req.size, v) for c, v in base.items()}
        cond[name] = req
        echo(f"extrapolation probe: {req.size} samples at {name} from {levels[0]:.0f} to {levels[-1]:.0f}")
        seeds = [int(s) for s in np.random.default_rng(recipe.seed + 7).integers(0, 2**62, req.size)]
        samples = gen.sample(req.size, seeds=seeds, conditions=cond, device=device)
        meas = np.array(
            [
                segmenter.segment(img, cohort.space.affine_array).volumes[VOLUME_CONDITIONS[name]]
                for img in samples.images
            ]
        )
        means = [float(meas[req == v].mean()) for v in levels]
        section[name] = {
            "training_range": [lo, hi],
            "requested_levels": levels.tolist(),
            "measured_means": means,
            "monotone_below": bool(means[0] <= means[1] <= means[2]),
            "monotone_above": bool(means[4] <= means[5] <= means[6]),
            "spearman_rho": float(spearmanr(req, meas)[0]),
        }
        figures[f"extrapolation_{name}"] = scatter(
            req / 1000,
            meas / 1000,
            out / f"extrapolation_{name}.png",
            xlabel=f"requested {name} (ml)",
            ylabel="measured (ml)",
            title=f"beyond the training range [{lo / 1000:.0f}, {hi / 1000:.0f}] ml",
        )
    return section, figures
