"""Issue 13's acceptance test: real-scan preprocessing on the head phantom (3 orientations × 2 sites)."""

import numpy as np
import pytest

from synthkit.data import head_phantom as hp
from synthkit.data.preprocess import PreprocessParams, preprocess
from synthkit.space import ImageSpace

SPACING = 4.0
SPACE = ImageSpace.centered((40, 56, 40), SPACING)  # 160×224×160 mm


@pytest.fixture(scope="module")
def results():
    out = {}
    for orientation in hp.ORIENTATIONS:
        for site in (0, 1):
            params = hp.draw_head_params(21, orientation=orientation, site=site, spacing=SPACING)
            scan = hp.render_head(params)
            out[orientation, site] = (scan, preprocess(scan.image, scan.affine, SPACE))
    return out


def _faces(mask):
    return sum(int(mask[s].sum()) for s in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1], np.s_[:, :, 0], np.s_[:, :, -1]))


@pytest.mark.slow
@pytest.mark.parametrize("orientation", hp.ORIENTATIONS)
@pytest.mark.parametrize("site", [0, 1])
def test_the_brain_is_inside_centred_and_extracted(results, orientation, site):
    scan, res = results[orientation, site]
    assert res.mode == "register"
    truth = res.to_output_grid(scan.brain_mask, scan.affine) > 0.5  # the true brain, where the pipeline put it
    assert _faces(truth) == 0
    idx = np.argwhere(truth)
    centre = (idx.min(0) + idx.max(0)) / 2  # centre of the brain's bounding box
    assert np.all(np.abs(centre - (np.array(SPACE.shape) - 1) / 2) <= 1.0)
    native = res.native_brain_mask(scan.brain_mask.shape, scan.affine)
    dice = 2 * np.sum(native & (scan.brain_mask > 0)) / (native.sum() + scan.brain_mask.sum())
    assert dice >= 0.95, dice
    assert res.image.min() >= 0 and res.image.max() <= 1 and not res.image[~res.brain_mask].any()


@pytest.mark.slow
@pytest.mark.parametrize("orientation", hp.ORIENTATIONS)
def test_sites_are_harmonised(results, orientation):
    """Same brain, two sites (other contrast, bias field, scale): brain medians and means within 5 %."""
    (scan0, a), (scan1, b) = results[orientation, 0], results[orientation, 1]
    assert np.median(scan1.image[scan1.brain_mask > 0]) > 2 * np.median(scan0.image[scan0.brain_mask > 0])
    for stat in (np.median, np.mean):
        va, vb = stat(a.image[a.brain_mask]), stat(b.image[b.brain_mask])
        assert abs(va - vb) <= 0.05 * max(va, vb), (stat.__name__, va, vb)
    # the median is a landmark inside the extracted mask, so also inside the true brain (not a landmark)
    ta, tb = (r.image[r.to_output_grid(sc.brain_mask, sc.affine) > 0.5] for sc, r in ((scan0, a), (scan1, b)))
    assert abs(np.median(ta) - np.median(tb)) <= 0.05 * max(np.median(ta), np.median(tb))
    # the same voxels agree too, not only the summary (correlation over the brain)
    both = a.brain_mask & b.brain_mask
    assert np.corrcoef(a.image[both], b.image[both])[0, 1] > 0.9


def test_orientation_and_pose_are_recorded_truthfully():
    p = hp.draw_head_params(3, orientation="PSR", site=1, spacing=8.0)
    shape, aff = hp.scanner_grid(p)
    assert shape == (30, 32, 24)  # voxel axes run along y, z, x
    assert np.allclose(np.abs(aff[:3, :3]), np.array([[0, 0, 8], [8, 0, 0], [0, 8, 0]]))
    pose = hp.pose_matrix(p)
    assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3))
    assert hp.draw_head_params(3, orientation="RAS", site=0).brain == p.brain  # same brain at every site


def test_images_already_in_template_space_are_only_resampled(phantom_cohort):
    from synthkit.data.io import template_space_code
    from synthkit.data.preprocess import preprocess_file_full

    image = next((phantom_cohort.parent / "images").glob("*.nii.gz"))
    assert template_space_code(image) == 4
    assert preprocess_file_full(image, SPACE).mode == "resample"
    assert preprocess_file_full(image, SPACE, PreprocessParams(mode="register")).mode == "register"
