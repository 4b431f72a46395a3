"""Each public dataset description, against a tiny fake download laid out as its YAML says."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from synthkit.data.datasets import build_dataset_manifest, list_datasets, load_dataset_spec
from synthkit.errors import UsageError


def nifti(path, shape=(4, 4, 4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), str(path))


def test_all_five_datasets_are_described():
    assert {"ixi", "oasis3", "ukbiobank", "adni", "neuromark"} <= set(list_datasets())


def test_ixi(tmp_path):
    nifti(tmp_path / "IXI-T1/IXI002-Guys-0828-T1.nii.gz")
    nifti(tmp_path / "IXI-T1/IXI012-HH-1211-T1.nii.gz")
    pd.DataFrame({"IXI_ID": [2, 12, 12], "SEX_ID": [1, 2, 2], "AGE": [35.8, 38.8, 38.8]}).to_csv(
        tmp_path / "IXI.csv", index=False
    )
    t, w, _ = build_dataset_manifest(load_dataset_spec("ixi"), tmp_path)
    assert list(t["subject_id"]) == ["002", "012"]
    assert list(t["sex"]) == [1, 0] and list(t["age"]) == [35.8, 38.8]
    assert w == []


def test_oasis3_age_at_scan_adds_days_since_entry(tmp_path):
    nifti(tmp_path / "sub-OAS30001/ses-d0129/anat/sub-OAS30001_ses-d0129_run-01_T1w.nii.gz")
    nifti(tmp_path / "sub-OAS30001/ses-d0757/anat/sub-OAS30001_ses-d0757_T1w.nii.gz")
    pd.DataFrame({"OASISID": ["OAS30001"], "AgeatEntry": [65.0], "GENDER": [2]}).to_csv(
        tmp_path / "OASIS3_demographics.csv", index=False
    )
    t, _, _ = build_dataset_manifest(load_dataset_spec("oasis3"), tmp_path)
    assert list(t["subject_id"]) == ["OAS30001_d0129_run-01", "OAS30001_d0757"]
    assert t["age"].tolist() == pytest.approx([65 + 129 / 365.25, 65 + 757 / 365.25])
    assert list(t["sex"]) == [0, 0]


def test_ukbiobank_maps_field_ids(tmp_path):
    nifti(tmp_path / "1000017_20252_2_0/T1/T1_brain_to_MNI.nii.gz")
    pd.DataFrame(
        {"eid": [1000017], "21003-2.0": [64], "31-0.0": [1], "25004-2.0": [30123.0], "25009-2.0": [1.5e6]}
    ).to_csv(tmp_path / "ukb_covariates.csv", index=False)
    t, _, _ = build_dataset_manifest(load_dataset_spec("ukbiobank"), tmp_path)
    row = t.iloc[0]
    assert row["subject_id"] == "1000017_2_0"
    assert (row["age"], row["sex"], row["ventricular_volume"], row["brain_volume"]) == (64, 1, 30123.0, 1.5e6)


def test_adni_takes_the_baseline_row(tmp_path):
    nifti(tmp_path / "ADNI/002_S_0295/MPRAGE/2006-04-18/I45108/ADNI_002_S_0295_MR_MPRAGE_br_raw_1_S13408_I45108.nii")
    pd.DataFrame(
        {
            "PTID": ["002_S_0295", "002_S_0295"],
            "VISCODE": ["bl", "m06"],
            "AGE": [84.8, 84.8],
            "PTGENDER": ["Male", "Male"],
        }
    ).to_csv(tmp_path / "ADNIMERGE.csv", index=False)
    t, _, _ = build_dataset_manifest(load_dataset_spec("adni"), tmp_path)
    assert list(t["subject_id"]) == ["002_S_0295_45108"] and list(t["sex"]) == [1]


def test_neuromark_expands_components_into_rows(tmp_path):
    nifti(tmp_path / "neuromark_sub001_component_ica_s1_.nii", shape=(4, 4, 4, 53))
    pd.DataFrame({"participant_id": ["sub001"], "age": [55], "sex": [0]}).to_csv(
        tmp_path / "participants.csv", index=False
    )
    spec = load_dataset_spec("neuromark")
    t, _, _ = build_dataset_manifest(spec, tmp_path)
    assert len(t) == 53 and list(t["volume"]) == list(range(53)) and (t["age"] == 55).all()
    assert t["network"].iloc[0] == "SC1_Caudate" and t["subject_id"].iloc[0] == "sub001_SC1_Caudate"
    counts = t["domain"].value_counts().to_dict()
    assert counts == {
        "subcortical": 5,
        "auditory": 2,
        "sensorimotor": 9,
        "visual": 9,
        "cognitive control": 17,
        "default mode": 7,
        "cerebellar": 4,
    }
    spec.images.volumes = [0, 1, 2, 3, 4]
    t, _, _ = build_dataset_manifest(spec, tmp_path)
    assert list(t["domain"].unique()) == ["subcortical"] and len(t) == 5


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(UsageError, match="known: .*ixi"):
        load_dataset_spec("hcp")


def test_a_dataset_yaml_needs_only_what_it_uses(tmp_path):
    (tmp_path / "imgs").mkdir()
    for s in ("a", "b"):
        (tmp_path / "imgs" / f"{s}.nii.gz").write_bytes(b"x")
    pd.DataFrame({"id": ["a", "b"], "sex": ["M", "F"]}).to_csv(tmp_path / "cov.csv", index=False)
    y = tmp_path / "mine.yaml"
    y.write_text("images: {pattern: 'imgs/*.nii.gz'}\ncovariates: {table: cov.csv, id_column: id}\n")
    spec = load_dataset_spec(y)
    assert spec.name == "mine"
    t, _, notes = build_dataset_manifest(spec, tmp_path)
    assert t["sex"].tolist() == [1, 0] and notes
