"""Audit sections for brain age (does a synthetic 75-year-old look 75?) and memorisation (did the generator
copy its training subjects?)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthkit.data.cache import PreprocessedCache
from synthkit.data.manifest import read_manifest
from synthkit.errors import UsageError
from synthkit.metrics.brain_age import load_brain_age, regression_stats
from synthkit.metrics.privacy import memorisation
from synthkit.space import ImageSpace
from synthkit.store.reader import Cohort
from synthkit.viz import pyplot, save, scatter, slice_grid


def _images(manifest_rows, m, space: ImageSpace, progress: bool) -> np.ndarray:
    cache = PreprocessedCache(space)
    vols = m.volumes()
    return cache.get_many(
        [m.table["image"].iloc[i] for i in manifest_rows],
        [vols[i] for i in manifest_rows],
        progress="preprocessing" if progress else None,
    )


def brain_age_section(
    model_path: Path,
    cohort: Cohort,
    synthetic: np.ndarray,
    positions: np.ndarray,
    reference: Path,
    out: Path,
    progress: bool,
    echo: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Path]]:
    model, meta = load_brain_age(model_path)
    mspace = ImageSpace.from_dict(meta["space"])
    if mspace.shape != cohort.space.shape or mspace.spacing != cohort.space.spacing:
        raise UsageError(
            f"{model_path}: brain-age model space {mspace.describe()} differs from "
            f"the store's {cohort.space.describe()}"
        )
    if "age" not in cohort.condition_names:
        return {"skipped": "the store has no 'age' condition"}, {}
    echo(f"brain age: predicting {len(synthetic)} synthetic ages ({meta['kind']})")
    requested = cohort.conditions["age"].to_numpy(float)[positions]
    predicted = model.predict(synthetic)
    section: dict[str, Any] = {
        "model": str(model_path),
        "kind": meta["kind"],
        "held_out_at_training": meta.get("held_out"),
        "synthetic_requested_vs_predicted": regression_stats(requested, predicted),
    }
    m = read_manifest(reference)
    if "age" in m.table.columns:
        rows = np.flatnonzero(np.isfinite(m.table["age"].to_numpy(float)))
        if rows.size >= 3:
            real = _images(rows, m, cohort.space, progress)
            section["reference_recorded_vs_predicted"] = regression_stats(
                m.table["age"].to_numpy(float)[rows], model.predict(real)
            )
    fig = scatter(
        requested,
        predicted,
        out / "brain_age.png",
        xlabel="requested age (years)",
        ylabel="predicted age",
        title=f"r = {section['synthetic_requested_vs_predicted']['pearson_r']:.3f}",
    )
    return section, {"brain_age": fig}


def memorisation_section(
    training: Path,
    cohort: Cohort,
    synthetic: np.ndarray,
    synthetic_index: np.ndarray,
    reference: Path,
    out: Path,
    show_ids: bool,
    progress: bool,
    echo: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Path]]:
    m = read_manifest(training)
    t = m.table
    split = t["split"].fillna("train").to_numpy() if "split" in t.columns else np.array(["train"] * len(t))
    train_rows = np.flatnonzero(split == "train")
    held_rows = np.flatnonzero(split != "train")
    held_m = m
    if held_rows.size == 0:  # no held-out split: real reference images that are not training images
        ref = read_manifest(reference)
        train_paths = set(t["image"].iloc[train_rows])
        held_rows = np.array([i for i in range(len(ref)) if ref.table["image"].iloc[i] not in train_paths], dtype=int)
        held_m = ref
    if train_rows.size == 0 or held_rows.size < 2:
        raise UsageError(
            f"{training}: memorisation needs training rows and at least two held-out real images "
            "(a 'split' column with val/test rows, or reference images outside the training set)"
        )
    echo(
        f"memorisation: {len(synthetic)} synthetic vs {train_rows.size} training images; {held_rows.size} held-out real"
    )
    train_imgs = _images(train_rows, m, cohort.space, progress)
    held_imgs = _images(held_rows, held_m, cohort.space, progress)
    res = memorisation(synthetic, train_imgs, held_imgs)
    section: dict[str, Any] = {
        "similarity": "Pearson r of 2×-pooled images",
        "threshold_max_heldout_similarity": res.threshold,
        "fraction_flagged": res.fraction_flagged,
        "n_flagged": int(res.flagged.sum()),
        "synthetic_similarity_median": float(np.median(res.synthetic_similarity)),
        "heldout_similarity_median": float(np.median(res.heldout_similarity)),
        "n_training": int(train_rows.size),
        "n_heldout": int(held_rows.size),
    }
    order = np.argsort(-res.synthetic_similarity)[:3]
    pairs = []
    for i in order:
        entry = {
            "synthetic_index": int(synthetic_index[i]),
            "similarity": float(res.synthetic_similarity[i]),
            "flagged": bool(res.flagged[i]),
        }
        if show_ids:
            entry["training_subject_id"] = str(t["subject_id"].iloc[train_rows[res.synthetic_nearest[i]]])
        pairs.append(entry)
    section["closest_pairs"] = pairs
    vols, titles = [], []
    for i in order:
        vols += [synthetic[i], train_imgs[res.synthetic_nearest[i]]]
        who = f" {t['subject_id'].iloc[train_rows[res.synthetic_nearest[i]]]}" if show_ids else ""
        titles += [f"synthetic #{synthetic_index[i]} (r={res.synthetic_similarity[i]:.3f})", f"nearest training{who}"]
    figs = {
        "memorisation_pairs": slice_grid(
            vols, out / "memorisation_pairs.png", titles=titles, suptitle="closest synthetic–training pairs"
        )
    }
    figs["memorisation_hist"] = _hist(
        res.synthetic_similarity, res.heldout_similarity, res.threshold, out / "memorisation_hist.png"
    )
    return section, figs


def _hist(syn: np.ndarray, held: np.ndarray, thr: float, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(5, 3.2))
    bins = np.linspace(min(syn.min(), held.min()), max(syn.max(), held.max(), thr) + 1e-6, 30)
    ax.hist(held, bins=bins, alpha=0.6, label="real held-out", density=True)
    ax.hist(syn, bins=bins, alpha=0.6, label="synthetic", density=True)
    ax.axvline(thr, color="k", ls="--", lw=1, label="max held-out")
    ax.set_xlabel("similarity to the nearest training image (r)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)
