import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from synthkit.data.manifest import build_manifest, read_manifest, validate_manifest
from synthkit.errors import ManifestError


def nifti(path, data=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.ones((6, 6, 6), np.float32) if data is None else data
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def test_build_joins_covariates_and_warns_about_unmatched(tmp_path):
    for sid in ("s1", "s2", "s3"):
        nifti(tmp_path / "imgs" / f"{sid}.nii.gz")
    pd.DataFrame({"pid": ["s1", "s2"], "age": [50.0, 60.0], "sex": [0, 1], "site": ["a", "b"]}).to_csv(
        tmp_path / "cov.csv", index=False
    )
    table, warnings, _ = build_manifest(tmp_path, "imgs/*.nii.gz", covariates=tmp_path / "cov.csv", id_column="pid")
    assert list(table["subject_id"]) == ["s1", "s2", "s3"]
    assert list(table.columns) == ["subject_id", "image", "age", "sex"]  # text column 'site' is left out
    assert table.loc[1, "age"] == 60.0 and np.isnan(table.loc[2, "age"])
    assert len(warnings) == 2 and "--map site=" in warnings[0] and "s3" in warnings[1]  # never dropped silently


def test_build_with_no_matching_files_fails(tmp_path):
    with pytest.raises(ManifestError, match="no NIfTI files match"):
        build_manifest(tmp_path, "*.nii.gz")


def test_build_refuses_duplicate_covariate_rows(tmp_path):
    nifti(tmp_path / "s1.nii.gz")
    cov = pd.DataFrame({"pid": ["s1", "s1"], "age": [1.0, 2.0]})
    with pytest.raises(ManifestError, match="several rows"):
        build_manifest(tmp_path, "*.nii.gz", covariates=cov, id_column="pid")


def test_validate_reports_every_bad_row_at_once(tmp_path):
    good = nifti(tmp_path / "good.nii.gz")
    truncated = nifti(tmp_path / "trunc.nii.gz", np.random.default_rng(0).random((20, 20, 20)).astype(np.float32))
    truncated.write_bytes(truncated.read_bytes()[:300])
    fourd = nifti(tmp_path / "4d.nii.gz", np.ones((4, 4, 4, 2), np.float32))
    nan = np.ones((6, 6, 6), np.float32)
    nan[0, 0, 0] = np.nan
    nanfile = nifti(tmp_path / "nan.nii.gz", nan)
    rows = [
        {"subject_id": "a", "image": good.name, "age": 60, "sex": 1},
        {"subject_id": "b", "image": truncated.name, "age": 61, "sex": 0},
        {"subject_id": "c", "image": "missing.nii.gz", "age": 62, "sex": 0},
        {"subject_id": "d", "image": fourd.name, "age": 63, "sex": 0},
        {"subject_id": "e", "image": nanfile.name, "age": 64, "sex": 0},
        {"subject_id": "f", "image": good.name, "age": "old", "sex": 3},
        {"subject_id": "f", "image": good.name, "age": 250, "sex": 0},
        {"subject_id": "g", "image": good.name, "age": None, "sex": 1},  # missing covariate: allowed
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    _, problems = validate_manifest(tmp_path / "m.csv")
    by_row = {}
    for p in problems:
        by_row.setdefault(p.row, []).append(p.problem)
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7]
    assert "truncated" in by_row[2][0]
    assert "file not found" in by_row[3][0]
    assert "4D image" in by_row[4][0]
    assert "NaN" in by_row[5][0]
    assert any("duplicate subject_id" in x for x in by_row[6])
    assert any("'old' is not a number" in x for x in by_row[6])
    assert any("sex = 3" in x for x in by_row[6])
    assert any("plausible range" in x for x in by_row[7])
    assert str(problems[0]).startswith("row 2 (b):")


def test_4d_rows_with_a_volume_column_are_valid(tmp_path):
    fourd = nifti(tmp_path / "4d.nii.gz", np.ones((4, 4, 4, 2), np.float32))
    pd.DataFrame([{"subject_id": "a", "image": fourd.name, "volume": 1}]).to_csv(tmp_path / "m.csv", index=False)
    assert validate_manifest(tmp_path / "m.csv")[1] == []


def test_missing_required_column(tmp_path):
    pd.DataFrame({"subject_id": ["a"], "path": ["x.nii"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError, match="missing required column.*image"):
        read_manifest(tmp_path / "m.csv")


def test_label_shape_must_match_image(tmp_path):
    img = nifti(tmp_path / "i.nii.gz")
    lab = nifti(tmp_path / "l.nii.gz", np.zeros((5, 5, 5), np.float32))
    pd.DataFrame([{"subject_id": "a", "image": img.name, "label": lab.name}]).to_csv(tmp_path / "m.csv", index=False)
    problems = validate_manifest(tmp_path / "m.csv")[1]
    assert len(problems) == 1 and "label shape" in problems[0].problem
