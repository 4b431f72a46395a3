"""Voxel-wise mean and variance over N samples (the ICN DDPM paper's variance heatmaps, 50 samples)."""

from __future__ import annotations

import numpy as np


def voxel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) variance of (n, X, Y, Z) images at every voxel, float32."""
    x = np.asarray(images, np.float64)
    return x.mean(0).astype(np.float32), x.var(0).astype(np.float32)
