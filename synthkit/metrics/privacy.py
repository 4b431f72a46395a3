"""Memorisation: is a synthetic sample closer to a training image than real unseen images ever are?

Each image becomes a fixed-size vector (average-pooled to ``factor``× coarser, then z-scored), and similarity is
the normalised correlation (Pearson r) between vectors. For every synthetic sample we take its nearest training
image (highest r); the reference distribution is the nearest-training similarity of real held-out images.
A synthetic sample is *flagged* when it is more similar to a training image than the most similar held-out
image ever is — something real unseen subjects never do. Only indices are returned; the audit decides
whether training subject IDs may appear in a report (by default they do not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from synthkit.metrics.brain_age import downsample


def embed(images: np.ndarray, factor: int = 2) -> np.ndarray:
    """Pooled, z-scored vectors: their dot product divided by the length is Pearson's r."""
    f = downsample(images, factor).astype(np.float64)
    f -= f.mean(1, keepdims=True)
    f /= f.std(1, keepdims=True) + 1e-12
    return f / np.sqrt(f.shape[1])


def nearest_similarity(queries: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query vector, the most correlated pool vector: (similarity, index)."""
    with threadpool_limits(1, "blas"):  # see synthkit.metrics.fid
        sims = queries @ pool.T
    idx = sims.argmax(1)
    return sims[np.arange(len(queries)), idx], idx


@dataclass
class MemorisationResult:
    synthetic_similarity: np.ndarray  # nearest-training r of each synthetic sample
    synthetic_nearest: np.ndarray  # index into the training set
    heldout_similarity: np.ndarray  # nearest-training r of each real held-out image
    threshold: float  # the highest held-out similarity
    flagged: np.ndarray  # bool per synthetic sample

    @property
    def fraction_flagged(self) -> float:
        return float(self.flagged.mean()) if self.flagged.size else 0.0


def memorisation(
    synthetic: np.ndarray, training: np.ndarray, heldout: np.ndarray, factor: int = 2
) -> MemorisationResult:
    """Flag synthetic samples closer to a training image than any real held-out image is."""
    tr = embed(training, factor)
    s_sim, s_idx = nearest_similarity(embed(synthetic, factor), tr)
    h_sim, _ = nearest_similarity(embed(heldout, factor), tr)
    thr = float(h_sim.max())
    return MemorisationResult(s_sim, s_idx, h_sim, thr, s_sim > thr)
