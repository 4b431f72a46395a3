import numpy as np
import pytest

from synthkit import load_generator
from synthkit.errors import UsageError
from synthkit.models.base import Generator
from synthkit.models.phantom import PhantomGenerator


@pytest.fixture(scope="module")
def gen(tiny_space):
    return PhantomGenerator(tiny_space)


def test_follows_the_protocol(gen):
    assert isinstance(gen, Generator)
    assert gen.kind == "phantom" and "age" in gen.condition_names
    assert gen.describe()["kind"] == "phantom"


def test_batch_invariance(gen):
    seeds = [101, 202, 303]
    cond = {"age": np.array([50.0, 60.0, 70.0]), "sex": np.array([0.0, 1.0, 0.0])}
    together = gen.sample(3, seeds=seeds, conditions=cond)
    alone = gen.sample(1, seeds=[202], conditions={k: v[1:2] for k, v in cond.items()})
    assert together.images[1].tobytes() == alone.images[0].tobytes()
    assert together.labels is not None and together.labels.dtype == np.uint8
    assert set(together.measures) == {"true_ventricular_volume", "true_brain_volume"}


def test_conditions_change_the_sample(gen):
    young = gen.sample(1, seeds=[5], conditions={"age": np.array([45.0])})
    old = gen.sample(1, seeds=[5], conditions={"age": np.array([80.0])})
    assert old.measures["true_ventricular_volume"][0] > young.measures["true_ventricular_volume"][0]


def test_nan_condition_is_drawn_from_the_seed(gen):
    a = gen.sample(1, seeds=[5], conditions={"age": np.array([np.nan])})
    b = gen.sample(1, seeds=[5])
    assert a.images.tobytes() == b.images.tobytes()


def test_bad_calls(gen):
    with pytest.raises(ValueError, match="one seed per sample"):
        gen.sample(2, seeds=[1])
    with pytest.raises(ValueError, match="no condition"):
        gen.sample(1, seeds=[1], conditions={"iq": np.array([100.0])})


def test_registry(tmp_path):
    g = load_generator("phantom", spacing=8)
    assert g.space.shape == (20, 28, 20)
    assert load_generator().space.shape == (40, 56, 40)  # default: 4 mm
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(UsageError, match="--spacing applies to the phantom only"):
        load_generator(tmp_path / "x.safetensors", spacing=2)
