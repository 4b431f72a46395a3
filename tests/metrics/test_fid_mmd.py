import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel

from synthkit.metrics.fid import fid, frechet_distance
from synthkit.metrics.image import mse, nearest, psnr
from synthkit.metrics.mmd import median_alpha, mmd2_gaussian, mmd_linear_images


def test_fid_of_a_set_with_itself_is_zero(rng):
    x = rng.normal(size=(200, 8))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_closed_form_for_isotropic_gaussians():
    d = 6
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = np.eye(d) * 1.0**2, np.eye(d) * 2.0**2
    # ‖μ1 − μ2‖² + d (σ1 − σ2)²
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(d * 0.25 + d * 1.0, rel=1e-9)


def test_frechet_distance_agrees_with_scipy_sqrtm(rng):
    from scipy.linalg import sqrtm

    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_sampled_gaussians_approach_the_closed_form(rng):
    x = rng.normal(0, 1, size=(4000, 4))
    y = rng.normal(1, 1, size=(4000, 4))
    assert fid(x, y) == pytest.approx(4.0, rel=0.05)


def test_mmd_matches_an_independent_computation(rng):
    x, y = rng.normal(size=(30, 5)), rng.normal(0.5, 1, size=(40, 5))
    a = median_alpha(x, y)
    kxx, kyy, kxy = rbf_kernel(x, x, gamma=a), rbf_kernel(y, y, gamma=a), rbf_kernel(x, y, gamma=a)
    expected = (kxx.sum() - 30) / (30 * 29) + (kyy.sum() - 40) / (40 * 39) - 2 * kxy.mean()
    assert mmd2_gaussian(x, y) == pytest.approx(expected, rel=1e-9)


def test_mmd_near_zero_for_one_distribution_and_larger_when_shifted(rng):
    same = mmd2_gaussian(rng.normal(size=(200, 4)), rng.normal(size=(200, 4)))
    shifted = mmd2_gaussian(rng.normal(size=(200, 4)), rng.normal(1.0, 1, size=(200, 4)))
    assert abs(same) < 0.01 and shifted > 10 * max(abs(same), 1e-3)


def test_linear_image_mmd_is_the_unbiased_linear_kernel_estimate(rng):
    x, y = rng.random((5, 6, 6, 6)), rng.random((5, 6, 6, 6))
    fx, fy = x.reshape(5, -1), y.reshape(5, -1)
    kxx, kyy, kxy = fx @ fx.T, fy @ fy.T, fx @ fy.T
    expected = (kxx.sum() - np.trace(kxx)) / 20 + (kyy.sum() - np.trace(kyy)) / 20 - 2 * kxy.mean()
    assert mmd_linear_images(y.astype(np.float32), x.astype(np.float32)) == pytest.approx(expected, rel=1e-4)
    same = abs(mmd_linear_images(x, y))
    assert mmd_linear_images(x, y + 0.5) > 10 * same


def test_linear_image_mmd_uses_every_sample_of_unequal_sets_and_matches_monai(rng):
    import torch
    from monai.metrics import MMDMetric

    x, y = rng.random((7, 6, 6, 6)), rng.random((4, 6, 6, 6)) + 0.1
    fx, fy = x.reshape(7, -1), y.reshape(4, -1)
    kxx, kyy, kxy = fx @ fx.T, fy @ fy.T, fx @ fy.T
    expected = (kxx.sum() - np.trace(kxx)) / 42 + (kyy.sum() - np.trace(kyy)) / 12 - 2 * kxy.mean()
    assert mmd_linear_images(x, y) == pytest.approx(expected, rel=1e-12)
    # the first four of x give a different value: the last three count
    assert abs(mmd_linear_images(x[:4], y) - expected) > 1e-3 * abs(expected)
    monai = float(MMDMetric()(torch.as_tensor(y)[:, None], torch.as_tensor(x[:4])[:, None]))
    assert mmd_linear_images(x[:4], y) == pytest.approx(monai, rel=1e-9)


def test_psnr_and_mse(rng):
    x = rng.random((3, 4, 4, 4))
    y = x + 0.1
    assert np.allclose(mse(x, y), 0.01)
    assert np.allclose(psnr(x, y), 20.0)
    assert np.isinf(psnr(x, x)).all()


def test_nearest_finds_the_copy(rng):
    pool = rng.random((10, 8, 8, 8)).astype(np.float32)
    queries = pool[[7, 2]] + 0.01
    assert list(nearest(queries, pool)) == [7, 2]
