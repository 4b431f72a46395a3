import numpy as np
import pandas as pd
import pytest

from synthkit.data.phantom import COVARIATES
from synthkit.errors import UsageError
from synthkit.generate.plan import ConditionSpec, make_plan, read_conditions_csv

NAMES = ("age", "sex", "ventricular_volume", "brain_volume")


@pytest.mark.parametrize(
    ("text", "kind", "a", "b"),
    [
        ("age=70", "const", 70, 0),
        ("age = uniform(50, 60)", "uniform", 50, 60),
        ("age=normal(63.6,7.5)", "normal", 63.6, 7.5),
        ("ventricular_volume=linspace(1e4,5e4)", "linspace", 1e4, 5e4),
        ("sex=1", "const", 1, 0),
    ],
)
def test_condition_specs_parse(text, kind, a, b):
    s = ConditionSpec.parse(text)
    assert (s.kind, s.a, s.b) == (kind, a, b)


@pytest.mark.parametrize(
    "text",
    [
        "age",
        "age=",
        "age=old",
        "age=uniform(5)",
        "age=uniform(6,5)",
        "age=normal(1,-1)",
        "=3",
        "age=gamma(1,2)",
    ],
)
def test_malformed_condition_specs(text):
    with pytest.raises(UsageError, match="--condition"):
        ConditionSpec.parse(text)


def test_default_plan_draws_from_the_model_distribution_and_is_reproducible():
    p = make_plan(500, 3, condition_names=NAMES, distribution=COVARIATES)
    assert p.condition_names == ["age", "sex"]
    assert p.conditions["age"].min() >= 44 and p.conditions["age"].max() <= 82
    q = make_plan(500, 3, condition_names=NAMES, distribution=COVARIATES)
    assert np.array_equal(p.conditions["age"], q.conditions["age"]) and np.array_equal(p.seeds, q.seeds)
    assert not p.extrapolated.any()


def test_specs_override_defaults_and_flag_extrapolation():
    p = make_plan(
        10,
        0,
        condition_names=NAMES,
        distribution=COVARIATES,
        specs=[ConditionSpec.parse("age=linspace(30,90)"), ConditionSpec.parse("ventricular_volume=20000")],
    )
    assert p.conditions["age"][0] == 30 and p.conditions["age"][-1] == 90
    assert set(p.conditions) == {"age", "sex", "ventricular_volume"}
    assert p.extrapolated[0] and p.extrapolated[-1] and not p.extrapolated[5]


def test_unknown_condition_is_refused():
    with pytest.raises(UsageError, match="unknown condition"):
        make_plan(3, 0, condition_names=NAMES, distribution=COVARIATES, specs=[ConditionSpec.parse("iq=100")])


def test_bad_sex_values_are_refused():
    with pytest.raises(UsageError, match="sex must be 0"):
        make_plan(3, 0, condition_names=NAMES, distribution=COVARIATES, specs=[ConditionSpec.parse("sex=0.5")])


def test_conditions_csv(tmp_path):
    p = tmp_path / "c.csv"
    pd.DataFrame({"age": [50, 60], "sex": [0, 1]}).to_csv(p, index=False)
    t = read_conditions_csv(p, NAMES, None)
    assert list(t["age"]) == [50, 60]
    with pytest.raises(UsageError, match="has 2 rows but --n is 3"):
        read_conditions_csv(p, NAMES, 3)
    pd.DataFrame({"age": [50, None], "sex": [0, 1]}).to_csv(p, index=False)
    with pytest.raises(UsageError, match="missing or non-numeric values in row\\(s\\) 2"):
        read_conditions_csv(p, NAMES, None)
    pd.DataFrame({"age": [50], "iq": [1]}).to_csv(p, index=False)
    with pytest.raises(UsageError, match="unknown condition"):
        read_conditions_csv(p, NAMES, None)
