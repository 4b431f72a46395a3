"""Network identity of intrinsic connectivity network (ICN) maps.

A generated map of network *k* should look like network *k* and like no other. Its identity is read the way
ICA components are matched to a template (NeuroMark's spatially constrained ICA, GIFT's component sorting):
by the spatial (Pearson) correlation of the map with each network's template, here the voxel-wise mean of the
real maps of that network; the predicted network is the one with the highest correlation. Top-1 accuracy is
the fraction of maps whose predicted network is the one they were drawn for; the confusion matrix counts
(requested, predicted) pairs.
"""

from __future__ import annotations

import numpy as np


def network_means(maps: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Voxel-wise mean map of each network 0..k-1, (k, *spatial); NaN for a network without maps."""
    maps = np.asarray(maps, np.float64)
    out = np.full((k, *maps.shape[1:]), np.nan)
    for j in range(k):
        sel = labels == j
        if sel.any():
            out[j] = maps[sel].mean(0)
    return out


def spatial_correlation(maps: np.ndarray, templates: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation of every map (n, *spatial) with every template (k, *spatial) over the voxels of
    ``mask`` (all voxels without one): (n, k). A constant map or template correlates 0 with everything; a
    NaN template (a network without real maps) gets -inf so that it is never predicted."""
    a = np.asarray(maps, np.float64).reshape(len(maps), -1)
    b = np.asarray(templates, np.float64).reshape(len(templates), -1)
    if mask is not None:
        keep = np.asarray(mask, bool).reshape(-1)
        a, b = a[:, keep], b[:, keep]
    missing = ~np.isfinite(b).all(1)
    b = np.where(missing[:, None], 0.0, b)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    r = (a @ b.T) / np.maximum(na[:, None] * nb[None, :], 1e-300)
    r[:, missing] = -np.inf
    return r


def identify(maps: np.ndarray, templates: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The predicted network of each map: the template it correlates with most (ties: the lowest index)."""
    return np.argmax(spatial_correlation(maps, templates, mask), axis=1)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: row = the network a map was drawn for, column = the network it was identified as."""
    out = np.zeros((k, k), dtype=np.int64)
    np.add.at(out, (np.asarray(true, np.int64), np.asarray(pred, np.int64)), 1)
    return out


def top1_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of maps identified as the network they were drawn for (NaN for no maps)."""
    true, pred = np.asarray(true), np.asarray(pred)
    return float(np.mean(true == pred)) if true.size else float("nan")
