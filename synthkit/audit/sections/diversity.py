"""Diversity: mean MS-SSIM and 4-G-R-SSIM over random pairs of distinct samples (lower = more diverse), beside
the same on real pairs, and a verdict that looks both ways — collapse (less diverse than real) *and* excess
(more diverse than real, which with poor realism is noise, see :func:`synthkit.audit.verdict.cross_flags`).

The pairs are drawn once per side (seed ``pairs``) and shared by both metrics; ``pairs.npz`` keeps them with
the per-pair values, so MS-SSIM can be recomputed with MONAI from the store, the manifest and this file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthkit.audit.context import AuditContext, Part
from synthkit.audit.stats import percentile_ci
from synthkit.audit.verdict import cannot_tell, fmt_ci, in_band, verdict
from synthkit.metrics import ssim as ssim_mod

METRICS = {"ms_ssim": ssim_mod.ms_ssim, "4gr_ssim": ssim_mod.four_g_r_ssim}
LABELS = {"ms_ssim": "MS-SSIM", "4gr_ssim": "4-G-R-SSIM"}


def draw_pairs(ctx: AuditContext) -> dict[str, np.ndarray]:
    rng = ctx.rng("pairs")
    return {
        "synthetic": ssim_mod.random_pairs(len(ctx.synthetic), ctx.recipe.n_pairs, rng),
        "real": ssim_mod.random_pairs(len(ctx.reference), ctx.recipe.n_pairs, rng),
    }


def dissimilarity_ratio(syn: np.ndarray, real: np.ndarray, ctx: AuditContext, rng) -> tuple[float | None, Any]:
    """(1 − mean synthetic similarity) / (1 − mean real similarity), with a percentile bootstrap interval."""
    if 1 - real.mean() <= 1e-12:
        return None, None
    boot = []
    for _ in range(ctx.recipe.bootstrap):
        s, r = syn[rng.integers(0, len(syn), len(syn))].mean(), real[rng.integers(0, len(real), len(real))].mean()
        boot.append((1 - s) / (1 - r) if 1 - r > 1e-12 else np.nan)
    return float((1 - syn.mean()) / (1 - real.mean())), percentile_ci(np.array(boot))


def diversity_verdict(name: str, ratio: float | None, ci: list[float] | None, ctx: AuditContext) -> dict[str, Any]:
    d = ctx.recipe.thresholds.diversity_max_ratio
    rule = f"(1 − {LABELS[name]}) synthetic ÷ real within [{1 / d:.3g}, {d:g}]"
    if ratio is None:
        return cannot_tell("every pair of real images is identical (real similarity 1)", rule)
    band = ci if ci is not None else [ratio, ratio]
    kind = in_band(band, 1 / d, d)
    direction = "above real" if band[0] > 1 else "below real" if band[1] < 1 else "as real"
    why = f"synthetic pairs are {ratio:.3g}× as dissimilar as real pairs ({fmt_ci(ci)}; {LABELS[name]})"
    if kind == "far from real":
        why = ("collapse: " if ratio < 1 else "excess: ") + why
    elif kind == "cannot tell":
        why += f"; the interval straddles {1 / d:.3g} or {d:g}: more pairs would tell"
    return verdict(kind, why, rule, {"ratio": ratio, "ci95": ci}, based_on=name, direction=direction)


def run(ctx: AuditContext) -> Part:
    """MS-SSIM and 4-G-R-SSIM diversity of synthetic and real pairs; pairs.npz; the diversity verdict."""
    part = Part()
    names = [k for k in METRICS if k in ctx.recipe.metrics]
    if not names:
        part.verdicts["diversity"] = cannot_tell("no diversity metric (ms_ssim, 4gr_ssim) in the recipe")
        return part
    r = ctx.recipe
    pairs = draw_pairs(ctx)
    kernel, scales = ssim_mod.fit_kernel(ctx.synthetic.shape[1:], r.ssim_kernel)
    rng = ctx.rng("bootstrap")
    saved: dict[str, np.ndarray] = {f"{k}_indices": v for k, v in pairs.items()}
    for name in names:
        rows, vals = {}, {}
        for label, imgs in (("synthetic", ctx.synthetic), ("real", ctx.reference)):
            v = ssim_mod.pairwise(
                METRICS[name], imgs, pairs[label], batch_size=16, device=ctx.options.device, kernel_size=r.ssim_kernel
            )
            boot = [v[rng.integers(0, len(v), len(v))].mean() for _ in range(max(r.bootstrap, 2))]
            rows[label] = {"mean": float(v.mean()), "ci95": percentile_ci(np.array(boot)), "pairs": len(v)}
            vals[label] = saved[f"{name}_{label}"] = v
        ratio, ci = dissimilarity_ratio(vals["synthetic"], vals["real"], ctx, rng)
        part.metrics[name] = rows | {
            "kernel_size": kernel,
            "scales": len(scales),
            "weights": list(scales),
            "dissimilarity_ratio": ratio,
            "dissimilarity_ratio_ci95": ci,
            "sizes": {"synthetic": len(ctx.synthetic), "reference": len(ctx.reference)},
            "pairs_seed": ctx.seed("pairs"),
            "bootstrap": {"resamples": max(r.bootstrap, 2), "seed": ctx.seed("bootstrap")},
            "inputs": "pairs.npz (synthetic_indices index synthetic_index, real_indices index reference_rows)",
            "meaning": "diversity: mean similarity of random distinct pairs (lower = more diverse)",
        }
    np.savez_compressed(
        ctx.out / "pairs.npz",
        **saved,
        synthetic_index=ctx.synthetic_index,
        reference_rows=ctx.reference_rows,
        seed=np.int64(ctx.seed("pairs")),
        kernel_size=np.int64(kernel),
        weights=np.array(scales),
    )
    first = names[0]
    m = part.metrics[first]
    part.verdicts["diversity"] = diversity_verdict(first, m["dissimilarity_ratio"], m["dissimilarity_ratio_ci95"], ctx)
    return part
