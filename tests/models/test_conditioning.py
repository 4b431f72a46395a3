"""The condition codec: min–max numeric conditions, one-hot categorical ones, the null context."""

import numpy as np
import pytest

from synthkit.models.conditioning import ConditionCodec


def test_numeric_and_categorical_conditions_encode_and_round_trip():
    table = {"age": np.array([40.0, 80.0, 60.0]), "network": np.array(["Visual", "DefaultMode", "Visual"])}
    codec = ConditionCodec.fit(table, ["age", "network"], null_flag=True, categorical=["network"])
    assert codec.dim == 1 + 2 + 1
    c = codec.encode({"age": np.array([60.0, 100.0]), "network": np.array(["DefaultMode", "Visual"])}, 2, "cpu")
    assert c.tolist() == [[0.5, 1.0, 0.0, 1.0], [1.5, 0.0, 1.0, 1.0]]  # 100 years: extrapolation, allowed
    assert ConditionCodec.from_dict(codec.to_dict()) == codec
    assert codec.null(2, "cpu").abs().sum() == 0


def test_an_unknown_category_names_the_known_ones():
    codec = ConditionCodec.fit({"network": np.array(["A", "B"])}, ["network"], null_flag=False, categorical=["network"])
    with pytest.raises(ValueError, match="unknown value.*'C'.*knows A, B"):
        codec.encode({"network": np.array(["C"])}, 1, "cpu")


def test_old_codecs_without_categories_still_load():
    d = {"names": ["age"], "low": [44.0], "high": [82.0], "null_flag": False}
    codec = ConditionCodec.from_dict(d)
    assert codec.dim == 1 and codec.categories == {}
    assert codec.encode({"age": np.array([63.0])}, 1, "cpu").item() == pytest.approx(0.5)
