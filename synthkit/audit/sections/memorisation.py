"""Memorisation: did the generator copy its training subjects? A synthetic sample is flagged when it is more
similar to a training image than any held-out real image is (:func:`synthkit.metrics.privacy.memorisation`).
Held-out images are the training manifest's non-train split or, without one, the loaded reference images that
are not training images; training images already loaded as reference are not read again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthkit.audit.context import AuditContext, Part
from synthkit.audit.verdict import CLOSE, FAR, UNSURE, cannot_tell, verdict
from synthkit.data.manifest import read_manifest
from synthkit.errors import UsageError
from synthkit.metrics.privacy import MemorisationResult, memorisation
from synthkit.viz import pyplot, save, slice_grid


def held_out(ctx: AuditContext, training: Path, m, train_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training images and held-out real images."""
    t = m.table
    split = t["split"].fillna("train").to_numpy() if "split" in t.columns else np.array(["train"] * len(t))
    held_rows = np.flatnonzero(split != "train")
    if held_rows.size:
        return ctx.images_of(m, train_rows), ctx.images_of(m, held_rows)
    train_paths = set(t["image"].iloc[train_rows])
    ref_images = ctx.manifest.table["image"].to_numpy()[ctx.reference_rows]
    keep = np.array([i for i, p in enumerate(ref_images) if p not in train_paths], dtype=int)
    if train_rows.size == 0 or keep.size < 2:
        raise UsageError(
            f"{training}: memorisation needs training rows and at least two held-out real images "
            "(a 'split' column with val/test rows, or reference images outside the training set)"
        )
    return ctx.images_of(m, train_rows), ctx.reference[keep]


def closest_pairs(ctx: AuditContext, res: MemorisationResult, ids: np.ndarray, train_imgs) -> tuple[list, Path]:
    order = np.argsort(-res.synthetic_similarity)[:3]
    show = ctx.options.show_training_ids
    pairs, vols, titles = [], [], []
    for i in order:
        j, s_idx = res.synthetic_nearest[i], ctx.synthetic_index[i]
        entry = {
            "synthetic_index": int(s_idx),
            "similarity": float(res.synthetic_similarity[i]),
            "flagged": bool(res.flagged[i]),
        }
        if show:
            entry["training_subject_id"] = str(ids[j])
        pairs.append(entry)
        vols += [ctx.synthetic[i], train_imgs[j]]
        titles += [
            f"synthetic #{s_idx} (r={res.synthetic_similarity[i]:.3f})",
            "nearest training" + (f" {ids[j]}" if show else ""),
        ]
    fig = slice_grid(
        vols, ctx.out / "memorisation_pairs.png", titles=titles, suptitle="closest synthetic–training pairs"
    )
    return pairs, fig


def memorisation_verdict(res: MemorisationResult, ctx: AuditContext) -> dict[str, Any]:
    """Flagged samples against the rate expected by chance: a new sample exchangeable with the h held-out images
    is the most similar of h + 1 with probability 1/(h + 1), so that fraction is flagged without any copying."""
    from scipy.stats import binom

    n, k, h = len(res.flagged), int(res.flagged.sum()), len(res.heldout_similarity)
    chance = 1 / (h + 1)
    allowed = min(1.0, chance + ctx.recipe.thresholds.memorisation_max_fraction)
    rule = f"fraction flagged ≤ chance 1/(held-out + 1) + {ctx.recipe.thresholds.memorisation_max_fraction:g}"
    why = (
        f"{k} of {n} samples ({100 * k / n:.1f} %) are closer to a training image than any of {h} held-out real images "
        f"is; {100 * chance:.1f} % would be by chance, {100 * allowed:.1f} % is allowed"
    )
    evidence = {"fraction_flagged": k / n, "chance": chance, "allowed": allowed}
    p = float(binom.sf(k - 1, n, allowed))  # P(at least k flagged | the allowed rate)
    if k / n <= allowed:
        v = verdict(CLOSE, why, rule, evidence)
    elif p < 0.01:
        v = verdict(FAR, why + f" (p = {p:.2g} at the allowed rate)", rule, evidence)
    else:
        v = verdict(UNSURE, why + f"; above the allowed rate but not significantly (p = {p:.2g})", rule, evidence)
    if h < ctx.recipe.thresholds.min_real_half:
        v["confidence"] = "low"
        v["low_confidence"] = [f"low confidence: the threshold rests on {h} held-out real images"]
    return v


def run(ctx: AuditContext) -> Part:
    """Fraction of synthetic samples closer to a training image than any held-out real image is."""
    part = Part()
    training = ctx.options.training
    if training is None:
        part.verdicts["memorisation"] = cannot_tell("no training manifest given (--training)")
        return part
    same = Path(training).resolve() == ctx.reference_path.resolve()
    m = ctx.manifest if same else read_manifest(training)  # the reference is read once
    t = m.table
    split = t["split"].fillna("train").to_numpy() if "split" in t.columns else np.array(["train"] * len(t))
    train_rows = np.flatnonzero(split == "train")
    train_imgs, held_imgs = held_out(ctx, training, m, train_rows)
    ctx.options.echo(
        f"memorisation: {len(ctx.synthetic)} synthetic vs {train_rows.size} training images; "
        f"{len(held_imgs)} held-out real"
    )
    res = memorisation(ctx.synthetic, train_imgs, held_imgs)
    pairs, fig = closest_pairs(ctx, res, t["subject_id"].to_numpy()[train_rows], train_imgs)
    part.metrics["memorisation"] = {
        "similarity": "Pearson r of 2×-pooled images",
        "threshold_max_heldout_similarity": res.threshold,
        "fraction_flagged": res.fraction_flagged,
        "n_flagged": int(res.flagged.sum()),
        "synthetic_similarity_median": float(np.median(res.synthetic_similarity)),
        "heldout_similarity_median": float(np.median(res.heldout_similarity)),
        "n_synthetic": len(ctx.synthetic),
        "n_training": int(train_rows.size),
        "n_heldout": len(held_imgs),
        "closest_pairs": pairs,
    }
    part.figures["memorisation_pairs"] = fig
    part.figures["memorisation_hist"] = _hist(res, ctx.out / "memorisation_hist.png")
    part.verdicts["memorisation"] = memorisation_verdict(res, ctx)
    return part


def _hist(res: MemorisationResult, path: Path) -> Path:
    syn, held, thr = res.synthetic_similarity, res.heldout_similarity, res.threshold
    fig, ax = pyplot().subplots(figsize=(5, 3.2))
    bins = np.linspace(min(syn.min(), held.min()), max(syn.max(), held.max(), thr) + 1e-6, 30)
    ax.hist(held, bins=bins, alpha=0.6, label="real held-out", density=True)
    ax.hist(syn, bins=bins, alpha=0.6, label="synthetic", density=True)
    ax.axvline(thr, color="k", ls="--", lw=1, label="max held-out")
    ax.set_xlabel("similarity to the nearest training image (r)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)
