import numpy as np
import pandas as pd
import pytest

from synthkit.data.coding import parse_map
from synthkit.data.manifest import build_manifest
from synthkit.errors import ManifestError, UsageError


@pytest.fixture
def images(tmp_path):
    (tmp_path / "imgs").mkdir()
    for s in ("s1", "s2", "s3", "s4"):
        (tmp_path / "imgs" / f"{s}.nii.gz").write_bytes(b"x")
    return tmp_path


def _build(root, table, **kw):
    table.to_csv(root / "cov.csv", index=False)
    return build_manifest(root, "imgs/*.nii.gz", covariates=root / "cov.csv", id_column="id", **kw)


@pytest.mark.parametrize(
    ("values", "expected"),
    [(["M", "F", "m", "f"], [1, 0, 1, 0]), (["male", "Female", "MALE", "woman"], [1, 0, 1, 0]), ([1, 2, 2, 1], [1, 0, 0, 1])],
)
def test_common_codings_of_sex_are_mapped_and_reported(images, values, expected):
    t, warnings, notes = _build(images, pd.DataFrame({"id": ["s1", "s2", "s3", "s4"], "sex": values, "age": 50}))
    assert t["sex"].tolist() == expected
    assert any(n.startswith("sex:") for n in notes) and not warnings


def test_an_unmapped_value_is_one_error_listing_it(images):
    with pytest.raises(ManifestError, match=r"'u'.*\(subjects s3\)"):
        _build(images, pd.DataFrame({"id": ["s1", "s2", "s3", "s4"], "sex": ["M", "F", "U", "M"]}))
    # named by subject, not by a row number that could be read as the covariate table's (here in another order)
    with pytest.raises(ManifestError, match=r"'\?'.*\(subjects s1, s4\)"):
        _build(images, pd.DataFrame({"id": ["s4", "s3", "s2", "s1"], "sex": ["?", "F", "M", "?"]}))
    with pytest.raises(ManifestError, match="'c'"):
        _build(images, pd.DataFrame({"id": ["s1", "s2", "s3", "s4"], "site": ["A", "B", "C", "A"]}), maps={"site": {"a": 0, "b": 1}})


def test_map_recodes_any_column_and_can_mark_missing(images):
    cov = pd.DataFrame({"id": ["s1", "s2", "s3", "s4"], "site": ["A", "B", "A", "X"], "sex": ["M", "F", "U", "F"]})
    t, warnings, notes = _build(images, cov, maps=dict([parse_map("site=A:0,B:1,X:2"), parse_map("sex=M:1,F:0,U:")]))
    assert t["site"].tolist() == [0, 1, 0, 2]
    assert t["sex"].tolist()[:2] == [1, 0] and np.isnan(t["sex"].iloc[2])
    assert len(notes) == 2


def test_text_columns_are_never_dropped_silently(images):
    t, warnings, _ = _build(images, pd.DataFrame({"id": ["s1", "s2", "s3", "s4"], "site": ["A", "B", "A", "B"]}))
    assert "site" not in t.columns and any("--map site=" in w for w in warnings)


@pytest.mark.parametrize("bad", ["site", "site=", "=A:1", "site=A", "site=A:x", "site=:1", "site=A:inf"])
def test_bad_map_options_are_usage_errors(bad):
    with pytest.raises(UsageError):
        parse_map(bad)


def test_wrong_id_column_and_unknown_map_column_are_usage_errors(images):
    pd.DataFrame({"pid": ["s1"], "age": [3]}).to_csv(images / "cov.csv", index=False)
    with pytest.raises(UsageError, match="--id-column"):
        build_manifest(images, "imgs/*.nii.gz", covariates=images / "cov.csv", id_column="id")
    with pytest.raises(UsageError, match="--map nope"):
        build_manifest(images, "imgs/*.nii.gz", covariates=images / "cov.csv", id_column="pid", maps={"nope": {"a": 1}})
