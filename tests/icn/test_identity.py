"""Network identity: known answers for the spatial correlation, the identification, accuracy and confusion."""

import numpy as np

from synthkit.metrics import icn


def test_spatial_correlation_known_values():
    t = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    maps = np.array([[2.0, 4.0, 6.0, 8.0], [0.0, 0.0, 1.0, 0.0]])
    r = icn.spatial_correlation(maps, t)
    np.testing.assert_allclose(r[0, :2], [1.0, -1.0])
    assert r[0, 2] == 0.0  # a constant template correlates 0 with everything
    # [0, 0, 1, 0] against [1, 2, 3, 4]: cov = 0.5·(1 − 0.25)… by hand: r = 0.2582
    np.testing.assert_allclose(r[1, 0], 0.5 / np.sqrt(0.75 * 5.0), rtol=1e-12)


def test_correlation_is_invariant_to_offset_and_scale_and_respects_the_mask():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(3, 4, 4, 4))
    maps = 0.5 + 0.1 * t  # as stored: zero at 0.5, scaled
    np.testing.assert_allclose(np.diag(icn.spatial_correlation(maps, t)), 1.0)
    mask = np.zeros((4, 4, 4), bool)
    mask[:2] = True
    noisy = t.copy()
    noisy[:, 2:] = rng.normal(size=(3, 2, 4, 4))  # outside the mask: ignored
    np.testing.assert_allclose(np.diag(icn.spatial_correlation(noisy, t, mask)), 1.0)


def test_identify_accuracy_and_confusion_on_a_known_mix():
    rng = np.random.default_rng(1)
    templates = rng.normal(size=(3, 6, 6, 6))
    true = np.array([0, 0, 1, 1, 2, 2])
    maps = templates[true] + 0.1 * rng.normal(size=(6, 6, 6, 6))
    maps[5] = templates[0]  # a map drawn for network 2 that looks like network 0
    pred = icn.identify(maps, templates)
    assert pred.tolist() == [0, 0, 1, 1, 2, 0]
    assert icn.top1_accuracy(true, pred) == 5 / 6
    assert icn.confusion_matrix(true, pred, 3).tolist() == [[2, 0, 0], [0, 2, 0], [1, 0, 1]]


def test_network_means_and_a_network_without_maps_is_never_predicted():
    maps = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])[:, :, None]
    means = icn.network_means(maps, np.array([0, 0, 2]), 3)
    np.testing.assert_allclose(means[0, :, 0], [2.0, 0.0])
    assert np.isnan(means[1]).all()
    r = icn.spatial_correlation(maps, means)
    assert np.isneginf(r[:, 1]).all() and icn.identify(maps, means).tolist() == [0, 0, 2]
