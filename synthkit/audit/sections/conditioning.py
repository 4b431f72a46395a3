"""The conditioning section of the audit: do measured volumes follow the requested ones?

For every volume condition of the store (``ventricular_volume``, ``brain_volume``), N synthetic samples are
segmented and the measured volume is compared with the requested one (Pearson r, Spearman ρ, MAE, scatter) —
Pinaya et al. report r = 0.972 for ventricles with SynthSeg. The same measurement on the reference (measured
vs recorded) is the ceiling of the segmenter itself. The extrapolation probe generates samples at requested
values beyond the training range and reports whether the measured volume keeps moving the requested way.
Stores whose samples carry label maps (``deformation``) add requested vs delivered (counted in the labels) and
delivered vs measured (do the labels agree with the images?).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr

from synthkit.audit.context import AuditContext, Part
from synthkit.audit.verdict import CLOSE, FAR, UNSURE, cannot_tell, verdict
from synthkit.metrics.segmentation import Segmenter
from synthkit.viz import scatter

VOLUME_CONDITIONS = {"ventricular_volume": "ventricles", "brain_volume": "brain"}


def _stats(requested: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(requested) & np.isfinite(measured)
    r, m = requested[ok], measured[ok]
    if len(r) < 3 or np.ptp(r) == 0 or np.ptp(m) == 0:  # no correlation is defined
        return {
            "n": len(r),
            "pearson_r": float("nan"),
            "spearman_rho": float("nan"),
            "mae": float(np.mean(np.abs(r - m))) if len(r) else float("nan"),
            "requested_constant": bool(len(r) and np.ptp(r) == 0),
            "measured_constant": bool(len(r) and np.ptp(m) == 0),
        }
    return {
        "n": len(r),
        "pearson_r": float(pearsonr(r, m)[0]),
        "spearman_rho": float(spearmanr(r, m)[0]),
        "mae": float(np.mean(np.abs(r - m))),
    }


def measure(ctx: AuditContext, segmenter: Segmenter, names: list[str]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Segment a random ``n_segment`` of the synthetic subset and of the loaded reference (segmenter ceiling)."""
    affine, out, echo = ctx.cohort.space.affine_array, ctx.out, ctx.options.echo
    idx, how = ctx.subset(len(ctx.synthetic), ctx.recipe.n_segment, "segment_subset")
    echo(f"conditioning: segmenting {len(idx)} synthetic images with {segmenter.name}")
    seg_syn = [segmenter.segment(ctx.synthetic[i], affine).volumes for i in idx]
    table = ctx.cohort.conditions.iloc[ctx.positions[idx]]
    section: dict[str, Any] = {"segmenter": segmenter.name, "synthetic_subset": how, "conditions": {}}
    figures: dict[str, Path] = {}
    recorded = {n: ctx.reference_column(n) for n in names}
    ref_pos = np.arange(len(ctx.reference)) if all(v is not None for v in recorded.values()) else np.arange(0)
    pick, section["reference_subset"] = ctx.subset(len(ref_pos), ctx.recipe.n_segment, "segment_subset")
    ref_pos = ref_pos[pick]
    if ref_pos.size:
        echo(f"conditioning: segmenting {len(ref_pos)} reference images (the segmenter's own ceiling)")
    ref_measured = [segmenter.segment(ctx.reference[i], affine).volumes for i in ref_pos]
    for name in names:
        key = VOLUME_CONDITIONS[name]
        req = table[name].to_numpy(float)
        meas = np.array([v[key] for v in seg_syn])
        row: dict[str, Any] = {"synthetic_requested_vs_measured": _stats(req, meas)}
        truth_col = f"true_{name}"
        if truth_col in table.columns:  # generators that know the truth (the phantom): how good is the segmenter?
            row["segmenter_vs_true_on_synthetic"] = _stats(table[truth_col].to_numpy(float), meas)
        row.update(_delivered(ctx, name, table, meas, figures))
        if ref_measured:
            rec = recorded[name][ref_pos]
            row["reference_recorded_vs_measured"] = _stats(rec, np.array([v[key] for v in ref_measured]))
        figures[f"conditioning_{name}"] = scatter(
            req / 1000,
            meas / 1000,
            out / f"conditioning_{name}.png",
            xlabel=f"requested {name} (ml)",
            ylabel=f"measured {key} (ml)",
            title=f"{segmenter.name}\nr = {row['synthetic_requested_vs_measured']['pearson_r']:.3f}",
        )
        section["conditions"][name] = row
    return section, figures


def _delivered(ctx: AuditContext, name: str, segmented: Any, measured: np.ndarray, figures: dict) -> dict[str, Any]:
    """Generators that deliver label maps (``deformation``) record the volume counted in each sample's labels
    (``meta/delivered_<name>``): requested vs delivered over the whole store, no segmenter involved; and
    delivered vs the segmenter's measurement of the images — whether the labels tell the truth about them."""
    col = f"delivered_{name}"
    if col not in segmented.columns:
        return {}
    table = ctx.cohort.conditions
    row = {
        "synthetic_requested_vs_delivered": _stats(table[name].to_numpy(float), table[col].to_numpy(float)),
        "delivered_vs_measured": _stats(segmented[col].to_numpy(float), measured),
    }
    figures[f"delivered_{name}"] = scatter(
        table[name].to_numpy(float) / 1000,
        table[col].to_numpy(float) / 1000,
        ctx.out / f"delivered_{name}.png",
        xlabel=f"requested {name} (ml)",
        ylabel=f"delivered {VOLUME_CONDITIONS[name]}, counted in the labels (ml)",
        title=f"label maps\nr = {row['synthetic_requested_vs_delivered']['pearson_r']:.3f}",
    )
    return row


def conditioning_verdict(section: dict[str, Any], ctx: AuditContext) -> dict[str, Any]:
    t = ctx.recipe.thresholds.conditioning_min_r
    rule = f"Pearson r(requested, measured) ≥ {t:g} for every volume condition"
    rs, ceilings = {}, {}
    for name, row in section["conditions"].items():
        s = row["synthetic_requested_vs_measured"]
        if s["n"] < 10 or s.get("requested_constant"):
            return cannot_tell(f"{name}: {s['n']} segmented samples with a spread of requested values (need 10)", rule)
        if s.get("measured_constant"):
            why = f"{name}: the measured volume is the same in every sample while the requested one varies"
            return verdict(FAR, why, rule, {"pearson_r": None})
        rs[name] = s["pearson_r"]
        ceilings[name] = row.get("reference_recorded_vs_measured", {}).get("pearson_r")
    low = {n: r for n, r in rs.items() if r < t}
    text = ", ".join(f"{n} r = {r:.3f}" for n, r in rs.items())
    evidence = {"pearson_r": rs, "segmenter_ceiling_r": ceilings}
    if not low:
        return verdict(CLOSE, f"measured volumes follow the requested ones ({text})", rule, evidence)
    blind = [n for n in low if ceilings[n] is not None and ceilings[n] < t]
    if blind:
        why = f"the segmenter itself reaches only r = {ceilings[blind[0]]:.3f} on real {blind[0]} ({text})"
        return verdict(UNSURE, why, rule, evidence)
    return verdict(FAR, f"measured volumes do not follow the requested ones ({text})", rule, evidence)


def run(ctx: AuditContext) -> Part:
    """The conditioning section and, when the store's generator loads, the extrapolation probe."""
    part = Part()
    names = [n for n in VOLUME_CONDITIONS if n in ctx.cohort.condition_names]
    if not ctx.recipe.conditioning or not names:
        why = "not asked (conditioning: false)" if names else "the store has no volume conditions"
        part.verdicts["conditioning"] = cannot_tell(why)
        return part
    from synthkit.metrics.segmentation import make_segmenter

    segmenter = make_segmenter(ctx.options.synthseg_model)
    part.metrics["conditioning"], part.figures = measure(ctx, segmenter, names)
    part.verdicts["conditioning"] = conditioning_verdict(part.metrics["conditioning"], ctx)
    if ctx.recipe.extrapolation:
        sec, figs = extrapolation_probe(ctx, segmenter)
        part.metrics["extrapolation"] = sec
        part.figures.update(figs)
    return part


def extrapolation_probe(ctx: AuditContext, segmenter: Segmenter) -> tuple[dict[str, Any], dict[str, Path]]:
    """Generate at requested volumes below and above the training range; is the response monotone?"""
    from synthkit.models.registry import load_generator, with_sampling

    cohort, recipe, device, echo, out = ctx.cohort, ctx.recipe, ctx.options.device, ctx.options.echo, ctx.out

    g = cohort.info.generator
    names = [n for n in VOLUME_CONDITIONS if n in cohort.condition_names]
    if not names or not g.get("model"):
        return {}, {}
    try:
        gen = load_generator(g["model"], spacing=g.get("spacing"), device=device)
        gen = with_sampling(gen, g.get("sampling_given") or {}, g["model"])  # as the cohort was drawn
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
        seeds = [int(s) for s in ctx.rng("extrapolation").integers(0, 2**62, req.size)]
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
