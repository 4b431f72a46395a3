import numpy as np
import pytest
import torch
from monai.metrics import MultiScaleSSIMMetric
from scipy import ndimage as ndi

from synthkit.metrics.ssim import fit_kernel, four_g_r_ssim, ms_ssim, pairwise, random_pairs, sobel_magnitude


@pytest.fixture(scope="module")
def vols():
    rng = np.random.default_rng(0)
    base = ndi.gaussian_filter(rng.random((6, 48, 48, 48)), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    return base.astype(np.float32)


def test_ms_ssim_identity_and_symmetry(vols):
    x, y = vols[:2], vols[2:4]
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-5)
    assert torch.allclose(ms_ssim(x, y), ms_ssim(y, x), atol=1e-6)
    assert (ms_ssim(x, y) < 1).all()


def test_ms_ssim_agrees_with_monai(vols):
    k, w = fit_kernel((48, 48, 48), 7)
    assert k == 3 and len(w) == 5  # 48 // 16 = 3 > k − 1 only for k = 3
    ref = MultiScaleSSIMMetric(spatial_dims=3, data_range=1.0, kernel_size=3)(
        torch.as_tensor(vols[:3])[:, None], torch.as_tensor(vols[3:6])[:, None]
    ).flatten()
    assert torch.allclose(ms_ssim(vols[:3], vols[3:6]), ref, atol=1e-5)


def test_kernel_and_scales_shrink_for_small_volumes():
    assert fit_kernel((160, 224, 160), 7) == (7, (0.0448, 0.2856, 0.3001, 0.2363, 0.1333))
    assert fit_kernel((84, 128, 84), 7)[0] == 5  # the ≤ 5 of the MONAI DDPM paper's volumes
    k, w = fit_kernel((20, 28, 20), 7)  # 5 scales cannot fit even a 3³ window: 3 scales (20 // 4 = 5 > 5 − 1)
    assert (k, len(w)) == (5, 3) and sum(w) == pytest.approx(1.0)


def test_4grssim_identity_and_falls_with_noise(vols):
    x = vols[:2]
    assert torch.allclose(four_g_r_ssim(x, x), torch.ones(2), atol=1e-5)
    rng = np.random.default_rng(1)
    scores = [
        float(four_g_r_ssim(x, np.clip(x + rng.normal(0, s, x.shape), 0, 1).astype(np.float32)).mean())
        for s in (0.01, 0.05, 0.2)
    ]
    assert scores[0] > scores[1] > scores[2]


def test_pairs_are_distinct_and_pairwise_batches_agree(vols):
    p = random_pairs(6, 50, np.random.default_rng(0))
    assert (p[:, 0] != p[:, 1]).all() and p.max() < 6
    a = pairwise(ms_ssim, vols, p[:7], batch_size=3)
    b = np.array([float(ms_ssim(vols[[i]], vols[[j]])[0]) for i, j in p[:7]])
    assert np.allclose(a, b, atol=1e-6)


def test_sobel_magnitude_agrees_with_scipy(vols):
    x = vols[0].astype(np.float64)
    expected = np.sqrt(sum(ndi.sobel(x, axis=a, mode="nearest") ** 2 for a in range(3)))
    got = sobel_magnitude(torch.as_tensor(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
