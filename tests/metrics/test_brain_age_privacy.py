import pickle

import numpy as np
import pytest
import torch

from synthkit.data import phantom as ph
from synthkit.errors import CheckpointError
from synthkit.metrics.brain_age import CNNBrainAge, PCARidgeBrainAge, load_brain_age, regression_stats, save_brain_age
from synthkit.metrics.privacy import memorisation

SPACE = ph.default_space(8.0)


@pytest.fixture(scope="module")
def phantoms():
    subjects = [ph.render(ph.draw_params(s), SPACE) for s in range(70)]
    return np.stack([s.image for s in subjects]), np.array([s.params.age for s in subjects])


@pytest.mark.parametrize("cls", [PCARidgeBrainAge, lambda **k: CNNBrainAge(epochs=2, channels=(4, 8), **k)])
def test_estimator_conventions(phantoms, cls):
    x, y = phantoms
    est = cls(random_state=3)
    assert est.fit(x[:20], y[:20]) is est
    p = est.predict(x[20:25])
    assert p.shape == (5,) and np.isfinite(p).all()
    again = cls(random_state=3).fit(x[:20], y[:20]).predict(x[20:25])
    assert np.allclose(p, again)


def test_pca_ridge_learns_phantom_age(phantoms):
    x, y = phantoms
    est = PCARidgeBrainAge(random_state=0).fit(x[:55], y[:55])
    assert regression_stats(y[55:], est.predict(x[55:]))["pearson_r"] > 0.8


@pytest.mark.parametrize("cls", [PCARidgeBrainAge, lambda **k: CNNBrainAge(epochs=1, channels=(4, 8), **k)])
def test_model_files_round_trip(tmp_path, phantoms, cls):
    x, y = phantoms
    est = cls(random_state=0).fit(x[:20], y[:20])
    path = save_brain_age(tmp_path / "m.safetensors", est, space=SPACE.to_dict(), metrics={"n": 0})
    loaded, meta = load_brain_age(path)
    assert meta["space"]["shape"] == list(SPACE.shape)
    assert np.allclose(loaded.predict(x[20:24]), est.predict(x[20:24]), atol=1e-5)


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_a_brain_age_file_with_pickle_content_is_refused(tmp_path):
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps({"weights": Evil()}))
    with pytest.raises(CheckpointError, match="pickled"):
        load_brain_age(evil)
    torch_pickle = tmp_path / "model2.safetensors"
    torch.save({"w": torch.zeros(1)}, torch_pickle)
    with pytest.raises(CheckpointError, match="pickled"):
        load_brain_age(torch_pickle)


def test_memorising_generator_is_flagged(phantoms):
    x, _ = phantoms
    train, held = x[:40], x[40:60]
    rng = np.random.default_rng(0)
    copies = np.clip(train[rng.integers(0, 40, 30)] + rng.normal(0, 0.01, (30, *x.shape[1:])), 0, 1)
    assert memorisation(copies, train, held).fraction_flagged >= 0.95


def test_fresh_phantoms_are_not_flagged(phantoms):
    x, _ = phantoms
    fresh = np.stack([ph.render(ph.draw_params(s), SPACE).image for s in range(5000, 5040)])
    assert memorisation(fresh, x[:40], x[40:70]).fraction_flagged <= 0.05
