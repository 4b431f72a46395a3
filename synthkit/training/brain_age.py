"""``synthkit train brain-age``: fit a brain-age model on real images in a store's ImageSpace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthkit.data.cache import PreprocessedCache
from synthkit.data.manifest import read_manifest
from synthkit.errors import ManifestError, UsageError
from synthkit.metrics.brain_age import KINDS, regression_stats, save_brain_age
from synthkit.space import ImageSpace
from synthkit.viz import scatter


@dataclass
class BrainAgeResult:
    path: Path
    held_out: dict[str, float]
    figure: Path


def train_brain_age(
    manifest: str | Path,
    out: str | Path,
    space: ImageSpace,
    *,
    kind: str = "sklearn",
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> BrainAgeResult:
    """Fit on the manifest's training rows, report MAE and r on its held-out rows (split val/test, else 20 %)."""
    if kind not in KINDS:
        raise UsageError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    m = read_manifest(manifest)
    t = m.table
    if "age" not in t.columns:
        raise ManifestError(f"{manifest}: no 'age' column to learn from")
    ages = t["age"].to_numpy(float)
    rows = np.flatnonzero(np.isfinite(ages))
    if rows.size < 10:
        raise ManifestError(f"{manifest}: brain age needs at least 10 images with an age (has {rows.size})")
    if "split" in t.columns and t["split"].isin(["val", "test"]).any():
        held = rows[t["split"].to_numpy()[rows] != "train"]
        train = rows[t["split"].to_numpy()[rows] == "train"]
    else:
        perm = np.random.default_rng(seed).permutation(rows)
        k = max(2, round(0.2 * rows.size))
        held, train = np.sort(perm[:k]), np.sort(perm[k:])
    cache = PreprocessedCache(space)
    vols = m.volumes()
    images = cache.get_many(
        [t["image"].iloc[i] for i in rows], [vols[i] for i in rows], progress="preprocessing" if progress else None
    )
    pos = {int(r): j for j, r in enumerate(rows)}
    x_train, x_held = images[[pos[int(i)] for i in train]], images[[pos[int(i)] for i in held]]
    est = KINDS[kind](random_state=seed, **({"device": device} if kind == "cnn" else {}))
    echo(f"brain age ({kind}): {len(train)} training and {len(held)} held-out images, {space.describe()}")
    est.fit(x_train, ages[train])
    pred = est.predict(x_held)
    stats = regression_stats(ages[held], pred)
    out_p = Path(out)
    path = save_brain_age(out_p, est, space=space.to_dict(), metrics=stats)
    fig = scatter(
        ages[held],
        pred,
        out_p.with_suffix(".png"),
        xlabel="age (years)",
        ylabel="predicted age",
        title=f"held-out: r = {stats['pearson_r']:.3f}, MAE = {stats['mae']:.2f} y",
    )
    return BrainAgeResult(path, stats, fig)
