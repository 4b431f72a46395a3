"""`synthkit train brain-age` and the brain-age and memorisation sections of `synthkit audit`."""

import json

import pytest

from synthkit.cli import main
from synthkit.data.phantom import write_cohort
from synthkit.generate.engine import GenerateOptions, run

from .conftest import SPACE


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ba")
    training = write_cohort(tmp / "train", 60, space=SPACE, seed=11, progress=False)
    store = tmp / "s.zarr"
    run(
        GenerateOptions(
            out=store,
            n=20,
            shard_size=10,
            spacing=8.0,
            device="cpu",
            cluster="local",
            workers=1,
            condition_specs=["age=uniform(45,80)"],
        ),
        progress=False,
        echo=lambda m: None,
    )
    return tmp, training, store


def audit_args(store, training, rep, *extra: str) -> list[str]:
    """``synthkit audit`` of the store against the training phantoms, with the memorisation section."""
    common = ["--reference", str(training), "--out", str(rep), "--training", str(training)]
    return ["audit", str(store), *common, *extra, "--n-pairs", "5", "--device", "cpu"]


def test_brain_age_training_and_audit(capsys, setup):
    tmp, training, store = setup
    model = tmp / "age.safetensors"
    code = main(["train", "brain-age", "--manifest", str(training), "--out", str(model), "--store", str(store)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "held-out r =" in out.out and model.exists() and model.with_suffix(".png").exists()
    rep = tmp / "rep"
    code = main(audit_args(store, training, rep, "--brain-age", str(model)))
    assert code == 0, capsys.readouterr().err
    report = json.loads((rep / "report.json").read_text())
    b = report["metrics"]["brain_age"]
    assert b["synthetic_requested_vs_predicted"]["pearson_r"] > 0.45  # 20 samples at 8 mm; figures at 2 mm: RESULTS.md
    assert b["reference_recorded_vs_predicted"]["n"] == 60
    mem = report["metrics"]["memorisation"]
    assert mem["fraction_flagged"] <= 0.05 and mem["n_training"] == 48
    text = (rep / "report.json").read_text() + (rep / "report.html").read_text()
    assert "phantom000" not in text  # no training subject IDs unless asked
    for f in ("brain_age.png", "memorisation_pairs.png", "memorisation_hist.png"):
        assert (rep / f).exists()


def test_training_ids_only_when_asked(capsys, setup):
    tmp, training, store = setup
    rep = tmp / "rep-ids"
    code = main(audit_args(store, training, rep, "--show-training-ids"))
    assert code == 0, capsys.readouterr().err
    pairs = json.loads((rep / "report.json").read_text())["metrics"]["memorisation"]["closest_pairs"]
    assert all(p["training_subject_id"].startswith("phantom") for p in pairs)


def test_brain_age_bad_input(capsys, setup):
    tmp, training, store = setup
    assert main(["train", "brain-age", "--manifest", str(training), "--out", str(tmp / "x.safetensors")]) == 2
    assert "--store" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "brain-age",
                "--manifest",
                str(training),
                "--out",
                str(tmp / "x.safetensors"),
                "--spacing",
                "8",
                "--kind",
                "xgboost",
            ]
        )
        == 2
    )
    assert "--kind" in capsys.readouterr().err
