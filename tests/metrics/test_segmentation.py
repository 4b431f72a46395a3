import os

import numpy as np
import pytest
from scipy.stats import pearsonr

from synthkit.data import phantom as ph
from synthkit.errors import CheckpointError
from synthkit.metrics.segmentation import (
    SYNTHSEG_LABELS,
    WeightFreeSegmenter,
    moment_affine,
    synthseg_postprocess,
    synthseg_preprocess,
)


def test_weight_free_segmenter_on_phantoms():
    """Ventricular and brain volumes against the phantom's exact label maps (r > 0.9; 8 mm for speed)."""
    space = ph.default_space(8.0, (20, 28, 20))
    seg = WeightFreeSegmenter()
    truth, measured = [], []
    for s in range(24):
        subj = ph.render(ph.draw_params(s), space)
        r = seg.segment(subj.image, space.affine_array)
        truth.append((subj.ventricular_volume, subj.brain_volume))
        measured.append((r.volumes["ventricles"], r.volumes["brain"]))
    t, m = np.array(truth), np.array(measured)
    assert pearsonr(t[:, 0], m[:, 0])[0] > 0.9
    assert pearsonr(t[:, 1], m[:, 1])[0] > 0.9


def test_moment_affine_recovers_a_known_affine(rng):
    mask = np.zeros((30, 30, 30), bool)
    mask[8:22, 5:25, 10:18] = True
    true = np.eye(4)
    true[:3, :3] = np.diag([1.2, 0.9, 1.1])
    true[:3, 3] = [3.0, -2.0, 1.0]
    est = moment_affine(mask, np.eye(4), mask, true)  # same voxels seen through two affines
    assert np.allclose(est, true, atol=0.05)


def test_postprocessing_volumes_are_label_counts_times_voxel_volume(rng):
    labels = SYNTHSEG_LABELS["2.0"]
    truth = np.zeros((12, 12, 12), np.int64)
    truth[2:10, 2:10, 2:10] = labels.index(2)
    truth[4:8, 4:8, 4:8] = labels.index(4)
    truth[4:6, 4:6, 8:10] = labels.index(43)
    post = np.eye(len(labels))[truth]
    seg = synthseg_postprocess(post, labels, voxel_volume=2.0)
    assert seg.volumes["label_4"] == 64 * 2.0 and seg.volumes["label_43"] == 8 * 2.0
    assert seg.volumes["ventricles"] == 72 * 2.0
    total = sum(v for k, v in seg.volumes.items() if k.startswith("label_"))
    assert total == np.count_nonzero(seg.labels) * 2.0
    assert set(np.unique(seg.labels)) == {0, 2, 4, 43}


def test_preprocessing_gives_a_1mm_grid_divisible_by_32():
    aff = np.diag([1.5, 1.2, 2.0, 1.0])
    img = np.random.default_rng(0).random((50, 70, 40)).astype(np.float32)
    x, info = synthseg_preprocess(img, aff)
    assert all(s % 32 == 0 for s in x.shape)
    assert x.min() >= 0 and x.max() <= 1
    assert info["shape_1mm"] == [75, 84, 80] or all(
        abs(a - b) <= 1 for a, b in zip(info["shape_1mm"], [75, 84, 80], strict=False)
    )


@pytest.fixture(scope="module")
def tiny_synthseg_h5(tmp_path_factory):
    """A SynthSeg 2.0-shaped U-Net with random weights, saved in the legacy Keras HDF5 layout."""
    pytest.importorskip("tensorflow")
    from synthkit.metrics.segmentation import build_synthseg_unet, save_legacy_h5

    model = build_synthseg_unet(len(SYNTHSEG_LABELS["2.0"]))
    path = tmp_path_factory.mktemp("ss") / "synthseg_2.0.h5"
    save_legacy_h5(model, path)
    x = np.random.default_rng(0).random((1, 32, 32, 32, 1)).astype(np.float32)
    return path, model, x


def test_synthseg_network_round_trips_through_the_loader(tiny_synthseg_h5):
    from synthkit.metrics.segmentation import load_synthseg

    path, model, x = tiny_synthseg_h5
    loaded, version = load_synthseg(path)
    assert version == "2.0"
    assert loaded.get_layer("unet_conv_downarm_0_0") is not None and loaded.output_shape[-1] == 33
    assert np.allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-5)


def test_synthseg_segmenter_runs_end_to_end(tiny_synthseg_h5):
    from synthkit.metrics.segmentation import SynthSegSegmenter

    path, _, _ = tiny_synthseg_h5
    s = SynthSegSegmenter(path)
    space = ph.default_space(1.0, (30, 36, 30))  # a 1 mm crop: the 32-multiple grid stays small on a CPU
    img = ph.render(ph.draw_params(0), space).image
    r = s.segment(img, space.affine_array)
    assert set(np.unique(r.labels)) <= set(SYNTHSEG_LABELS["2.0"]) and "ventricles" in r.volumes
    assert s.name.startswith("SynthSeg 2.0")


def test_wrong_or_truncated_h5_is_refused(tmp_path, tiny_synthseg_h5):
    from synthkit.metrics.segmentation import load_synthseg

    path, _, _ = tiny_synthseg_h5
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="truncated|damaged|not an HDF5"):
        load_synthseg(cut)
    text = tmp_path / "model.h5"
    text.write_text("not hdf5")
    with pytest.raises(CheckpointError, match="not an HDF5 file"):
        load_synthseg(text)
    import h5py

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a SynthSeg segmentation model"):
        load_synthseg(other)
    with pytest.raises(CheckpointError, match="not found"):
        load_synthseg(tmp_path / "missing.h5")


@pytest.mark.skipif(
    not os.environ.get("SYNTHKIT_SYNTHSEG_MODEL"), reason="set SYNTHKIT_SYNTHSEG_MODEL to a real SynthSeg .h5"
)
def test_parity_with_real_synthseg_weights():
    """With the real weights: SynthSeg's ventricles follow the phantom's true ventricles."""
    from synthkit.metrics.segmentation import SynthSegSegmenter

    s = SynthSegSegmenter(os.environ["SYNTHKIT_SYNTHSEG_MODEL"])
    space = ph.default_space(1.0)
    truth, measured = [], []
    for seed in range(6):
        subj = ph.render(ph.draw_params(seed, age=45 + 7 * seed), space)
        truth.append(subj.ventricular_volume)
        measured.append(s.segment(subj.image, space.affine_array).volumes["ventricles"])
    assert pearsonr(truth, measured)[0] > 0.9
