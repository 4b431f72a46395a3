"""Paired image metrics (data range 1): MSE and PSNR = 10·log10(1 / MSE), as in the ICN DDPM paper."""

from __future__ import annotations

import numpy as np


def mse(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean squared error of each pair (n, ...) → (n,)."""
    d = np.asarray(x, np.float64) - np.asarray(y, np.float64)
    return (d.reshape(len(d), -1) ** 2).mean(1)


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio (dB) of each pair; identical images give +inf."""
    m = mse(x, y)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(data_range**2 / m)


def nearest(x: np.ndarray, pool: np.ndarray, factor: int = 2, exclude_self: bool = False) -> np.ndarray:
    """Index of each x's nearest image in ``pool`` by MSE after ``factor``× average downsampling.

    ``exclude_self``: ``x`` is ``pool`` and each image's nearest *other* image is wanted (leave one out)."""

    def down(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float32)
        s = [d - d % factor for d in a.shape[1:]]
        a = a[:, : s[0], : s[1], : s[2]]
        return (
            a.reshape(len(a), s[0] // factor, factor, s[1] // factor, factor, s[2] // factor, factor)
            .mean((2, 4, 6))
            .reshape(len(a), -1)
        )

    from threadpoolctl import threadpool_limits

    dx, dp = down(x), down(pool)
    with threadpool_limits(limits=1, user_api="blas"):  # see synthkit.metrics.fid: BLAS threads vs torch threads
        d2 = (dx**2).sum(1)[:, None] + (dp**2).sum(1)[None] - 2 * dx @ dp.T
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    return np.argmin(d2, axis=1)
