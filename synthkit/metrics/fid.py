"""Fréchet distance between feature distributions (Heusel et al. 2017), as used with Med3D features by
Pinaya et al. 2022 and HA-GAN: FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½).

The reference implementations take ``scipy.linalg.sqrtm(Σ₁Σ₂)`` (with a 1e-6·I jitter on failure) only to
read its trace. For covariance matrices tr((Σ₁Σ₂)^½) = Σ √λᵢ(Σ₁^½ Σ₂ Σ₁^½), a symmetric eigenvalue
problem: the same number, stable for the singular covariances of fewer samples than feature dimensions, and
~50× faster at 512 dimensions here (2.5 s → 0.05 s). Tests check it against ``sqrtm``."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

# In a process that has run torch, OpenBLAS's worker threads and torch's OpenMP threads fight over the
# cores: measured here, one 512-d FID took 6.2 s instead of 0.19 s. These matrices are small; one BLAS
# thread is fastest.
_ONE_BLAS_THREAD = {"limits": 1, "user_api": "blas"}


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((s1 s2)^½) for symmetric positive semi-definite s1, s2."""
    r = _sqrt_psd(s1)
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    with threadpool_limits(**_ONE_BLAS_THREAD):
        value = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2)
    return float(max(0.0, value))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of feature vectors (n, d) and (m, d)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least two samples on each side")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
