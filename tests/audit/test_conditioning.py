"""The conditioning section on a phantom-generator store with requested ventricular volumes."""

import json

import pytest

from synthkit.audit.suite import run_audit
from synthkit.cli import main
from synthkit.config import AuditRecipe
from synthkit.data.phantom import default_space, write_cohort
from synthkit.generate.engine import GenerateOptions, run

SPACE6 = default_space(6.0)


@pytest.fixture(scope="module")
def phantom_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cond")
    opts = GenerateOptions(
        out=tmp / "v.zarr",
        n=24,
        shard_size=8,
        spacing=6.0,
        device="cpu",
        workers=2,
        condition_specs=["ventricular_volume=uniform(12000,45000)"],
    )
    run(opts, progress=False, echo=lambda m: None)
    reference = write_cohort(tmp / "ref", 12, space=SPACE6, seed=5, progress=False)
    return opts.out, reference


def test_requested_ventricles_are_measured_with_r_above_09(tmp_path, phantom_store):
    store, reference = phantom_store
    recipe = AuditRecipe(
        n_synthetic=24, n_pairs=10, bootstrap=2, metrics=["ms_ssim"], n_segment=24, extrapolation_per_level=1
    )
    res = run_audit(store, reference, tmp_path / "rep", recipe, progress=False, echo=lambda m: None)
    c = res.report["metrics"]["conditioning"]
    assert c["segmenter"].startswith("weight-free")
    v = c["conditions"]["ventricular_volume"]
    assert v["synthetic_requested_vs_measured"]["pearson_r"] > 0.9
    assert v["segmenter_vs_true_on_synthetic"]["pearson_r"] > 0.9
    assert v["reference_recorded_vs_measured"]["n"] == 12
    assert (tmp_path / "rep" / "conditioning_ventricular_volume.png").exists()
    e = res.report["metrics"]["extrapolation"]["ventricular_volume"]
    assert len(e["measured_means"]) == 7 and e["spearman_rho"] > 0.8
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Conditioning" in html and "Extrapolation" in html
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["metrics"]["conditioning"]


def test_segment_cli_on_a_store_and_on_files(capsys, tmp_path, phantom_store):
    store, reference = phantom_store
    assert main(["segment", str(store), "--out", str(tmp_path / "s"), "--indices", "0:3"]) == 0
    vols = (tmp_path / "s" / "volumes.csv").read_text().splitlines()
    assert len(vols) == 4 and "ventricles" in vols[0]
    images = sorted((reference.parent / "images").glob("*.nii.gz"))[:2]
    assert main(["segment", *map(str, images), "--out", str(tmp_path / "f")]) == 0
    assert len(list((tmp_path / "f").glob("*_labels.nii.gz"))) == 2
    assert main(["segment", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "x")]) == 2
    capsys.readouterr()
