import dataclasses

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from synthkit.data import phantom as ph


def test_same_seed_same_bytes(tiny_space):
    a = ph.render(ph.draw_params(11), tiny_space)
    b = ph.render(ph.draw_params(11), tiny_space)
    assert a.image.tobytes() == b.image.tobytes() and a.labels.tobytes() == b.labels.tobytes()
    c = ph.render(ph.draw_params(12), tiny_space)
    assert a.image.tobytes() != c.image.tobytes()


def test_image_and_labels_are_well_formed(tiny_space):
    s = ph.render(ph.draw_params(0), tiny_space)
    assert s.image.dtype == np.float32 and s.image.shape == tiny_space.shape
    assert s.image.min() >= 0 and s.image.max() <= 1
    assert set(np.unique(s.labels)) == {0, 1, 2, 3, 4}
    assert np.all(s.image[s.labels == 0] == 0)  # background stays exactly zero
    vv = tiny_space.voxel_volume
    assert s.ventricular_volume == np.count_nonzero(s.labels == 4) * vv
    assert s.brain_volume == np.count_nonzero((s.labels == 2) | (s.labels == 3)) * vv


def test_covariate_effects_over_50_subjects():
    """Ages ↑ → ventricles ↑ and brain ↓ (Spearman over 50 phantoms at 4 mm)."""
    space = ph.default_space(4.0)
    rows = [ph.render(ph.draw_params(seed), space) for seed in range(50)]
    age = [r.params.age for r in rows]
    assert spearmanr(age, [r.ventricular_volume for r in rows])[0] > 0.8
    assert spearmanr(age, [r.brain_volume for r in rows])[0] < -0.5


def test_males_have_larger_heads(tiny_space):
    male = [ph.render(ph.draw_params(s, age=60, sex=1), tiny_space) for s in range(6)]
    female = [ph.render(ph.draw_params(s, age=60, sex=0), tiny_space) for s in range(6)]
    assert np.mean([m.brain_volume for m in male]) > np.mean([f.brain_volume for f in female])


def test_requested_ventricular_volume_is_met():
    space = ph.default_space(4.0)
    for target in (15_000.0, 40_000.0):
        s = ph.render(ph.draw_params(5, ventricular_volume=target), space)
        assert s.ventricular_volume == pytest.approx(target, abs=2 * space.voxel_volume)


def test_requested_brain_volume_is_met():
    space = ph.default_space(4.0)
    s = ph.render(ph.draw_params(5, brain_volume=1_000_000.0), space)
    assert s.brain_volume == pytest.approx(1_000_000.0, rel=0.01)


def test_params_replay(tiny_space):
    p = ph.draw_params(3, age=70, sex=0)
    replayed = ph.PhantomParams(**p.to_dict())
    assert ph.render(replayed, tiny_space).image.tobytes() == ph.render(p, tiny_space).image.tobytes()
    older = dataclasses.replace(p, ventricle_dilation_mm=p.ventricle_dilation_mm + 3)
    assert ph.render(older, tiny_space).ventricular_volume > ph.render(p, tiny_space).ventricular_volume


def test_default_covariates_look_like_uk_biobank():
    c = ph.sample_covariates(np.random.default_rng(0), 20_000)
    assert c["age"].min() >= 44 and c["age"].max() <= 82
    assert c["age"].mean() == pytest.approx(63.6, abs=0.2)
    assert c["age"].std() == pytest.approx(7.5, abs=0.15)
    assert c["sex"].mean() == pytest.approx(0.47, abs=0.015)


def test_cohort_on_disk_matches_its_label_maps(phantom_cohort, tiny_space):
    m = pd.read_csv(phantom_cohort)
    assert list(m.columns) == [
        "subject_id",
        "image",
        "label",
        "split",
        "age",
        "sex",
        "ventricular_volume",
        "brain_volume",
    ]
    assert len(m) == 12 and set(m["split"]) == {"train", "val", "test"}
    for _, row in m.iterrows():
        lab = np.asarray(nib.load(phantom_cohort.parent / row["label"]).dataobj)
        vv = tiny_space.voxel_volume
        assert row["ventricular_volume"] == pytest.approx(np.count_nonzero(lab == 4) * vv)
        assert row["brain_volume"] == pytest.approx(np.count_nonzero((lab == 2) | (lab == 3)) * vv)
    assert (phantom_cohort.parent / "params.jsonl").read_text().count("\n") == 12


def test_cohort_is_byte_identical_for_the_same_seed(tmp_path, tiny_space):
    a = ph.write_cohort(tmp_path / "a", 3, space=tiny_space, seed=9, progress=False)
    b = ph.write_cohort(tmp_path / "b", 3, space=tiny_space, seed=9, progress=False, workers=2)
    for name in ("images/phantom00002_T1w.nii.gz", "labels/phantom00001_labels.nii.gz"):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
    assert a.read_bytes() == b.read_bytes()
