import json

import numpy as np
import pytest

from synthkit.data.covariates import CovariateDistribution
from synthkit.generate.plan import ConditionSpec, make_plan


@pytest.fixture(scope="module")
def bimodal():
    """Ages 23–51 and 68–96 (nobody in between), sex, and a volume that grows with age."""
    rng = np.random.default_rng(0)
    age = np.concatenate([rng.uniform(23, 51, 150), rng.uniform(68, 96, 150)])
    sex = rng.integers(0, 2, 300).astype(float)
    vent = 10_000 + 600 * (age - 20) + rng.normal(0, 2_000, 300)
    return {"age": np.round(age, 3), "sex": sex, "ventricular_volume": vent}


def test_default_draws_leave_the_gap_empty_and_keep_correlations(bimodal):
    dist = CovariateDistribution.fit(bimodal)
    draws = dist.sample(20_000, np.random.default_rng(1))
    in_gap = np.mean((draws["age"] >= 55) & (draws["age"] <= 64))
    assert in_gap <= 0.02, in_gap
    r_train = np.corrcoef(bimodal["age"], bimodal["ventricular_volume"])[0, 1]
    r_drawn = np.corrcoef(draws["age"], draws["ventricular_volume"])[0, 1]
    assert abs(r_drawn - r_train) < 0.05
    assert abs(draws["sex"].mean() - bimodal["sex"].mean()) < 0.02
    # every default draw is in a supported region
    assert dist.supported(draws).all()


def test_the_stored_distribution_holds_no_individual_value(bimodal):
    dist = CovariateDistribution.fit(bimodal)
    stored = json.loads(json.dumps(dist.to_dict()))
    numbers = []
    for g in stored["groups"]:
        numbers += g["mean"] + g["low"] + g["high"] + [v for row in g["cov"] for v in row]
    for name in ("age", "ventricular_volume"):
        values = set(np.round(bimodal[name], 6))
        assert not values & set(np.round(numbers, 6)), name
    lo, hi = dist.ranges()["age"]
    assert lo < bimodal["age"].min() and hi > bimodal["age"].max()
    assert all(round(len_g) >= 5 for len_g in (g["weight"] * 300 for g in stored["groups"]))


def test_requested_values_in_a_gap_are_flagged(bimodal):
    dist = CovariateDistribution.fit(bimodal)
    plan = make_plan(
        30,
        0,
        condition_names=["age", "sex", "ventricular_volume"],
        distribution=dist,
        specs=[ConditionSpec.parse("age=linspace(30,90)")],
    )
    age = plan.conditions["age"]
    gap = (age > 55) & (age < 65)
    assert plan.extrapolated[gap].all()
    assert not plan.extrapolated[(age < 50) | (age > 70)].any()
    # drawn covariates follow the requested age (old subjects come with large ventricles)
    vent = plan.conditions["ventricular_volume"]
    assert vent[age > 85].mean() > vent[age < 35].mean() + 20_000


def test_old_format_is_still_read():
    old = {
        "names": ["age", "sex"],
        "binary": ["sex"],
        "groups": [
            {"binary_values": {"sex": 0.0}, "weight": 0.5, "mean": [60.0], "cov": [[25.0]], "low": [44.0], "high": [82.0]},
            {"binary_values": {"sex": 1.0}, "weight": 0.5, "mean": [62.0], "cov": [[25.0]], "low": [45.0], "high": [80.0]},
        ],
    }
    dist = CovariateDistribution.from_dict(old)
    draws = dist.sample(500, np.random.default_rng(0))
    assert draws["age"].min() >= 44 and draws["age"].max() <= 82
    assert dist.ranges() == {"sex": (0.0, 1.0), "age": (44.0, 82.0)}
    assert dist.to_dict() == old
    assert dist.supported({"age": np.array([81.0, 81.0]), "sex": np.array([0.0, 1.0])}).tolist() == [True, False]


def test_no_group_describes_fewer_than_k_rows():
    # 8 women, 3 men: the men get no group of their own (their ages would be nearly exposed)
    age = np.array([40.1, 42.3, 44.8, 47.2, 60.5, 63.9, 66.2, 69.4, 41.7, 45.6, 68.8])
    sex = np.array([0.0] * 8 + [1.0] * 3)
    dist = CovariateDistribution.fit({"age": age, "sex": sex, "site": np.full(11, 3.0)})
    sizes = [round(g.weight * 11) for g in dist.groups]
    assert min(sizes) >= 5 and sum(sizes) == 11
    assert any(0 < g.binary_values["sex"] < 1 for g in dist.groups)
    draws = dist.sample(3000, np.random.default_rng(0))
    assert abs(draws["sex"].mean() - 3 / 11) < 0.03 and np.allclose(draws["site"], 3.0, atol=1e-5)
    assert dist.ranges()["sex"] == (0.0, 1.0)
    assert dist.supported({"age": np.array([45.0]), "sex": np.array([1.0]), "site": np.array([3.0])}).all()
    # fewer than k rows in all: one group
    tiny = CovariateDistribution.fit({"age": age[:4], "sex": sex[:4]})
    assert len(tiny.groups) == 1


@pytest.mark.parametrize("seed", range(6))
def test_a_gap_stays_empty_when_another_covariate_overlaps_across_it(seed):
    """Ventricles grow with age but vary so much that young and old subjects overlap in volume: splitting
    along the volume's wider spread put ages 50 and 70 in one group (one training set in five before)."""
    rng = np.random.default_rng(seed)
    age = np.concatenate([rng.uniform(23, 51, 150), rng.uniform(68, 96, 150)])
    vent = 10_000 + 600 * (age - 20) + rng.normal(0, 6_000, 300)
    sex = rng.integers(0, 2, 300).astype(float)
    dist = CovariateDistribution.fit({"age": age, "sex": sex, "ventricular_volume": vent})
    gap = np.linspace(55.5, 64.5, 19)  # 55 and 65 are range edges: ranges are rounded outward to 5 years
    for sex in (0.0, 1.0):
        assert not dist.supported({"age": gap, "sex": np.full(19, sex)}).any()
    draws = dist.sample(5000, np.random.default_rng(seed))
    assert np.mean((draws["age"] >= 55) & (draws["age"] <= 64)) == 0.0
