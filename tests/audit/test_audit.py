"""The audit on phantoms: a phantom store scores like real-vs-real; degraded stores score worse where expected."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from synthkit.audit.suite import run_audit
from synthkit.cli import main
from synthkit.config import AuditRecipe, AuditThresholds
from synthkit.data.phantom import draw_params, render
from synthkit.store.writer import write_images

from .conftest import SPACE

RECIPE = AuditRecipe(n_synthetic=40, n_pairs=60, bootstrap=10, variance_samples=10)


def store_of(path, images):
    write_images(path, images, SPACE, shard_size=10, generator={"kind": "test"})
    return path


@pytest.fixture(scope="module")
def phantom_images():
    return np.stack([render(draw_params(s), SPACE).image for s in range(1000, 1040)])


@pytest.fixture(scope="module")
def audits(tmp_path_factory, reference, phantom_images):
    tmp = tmp_path_factory.mktemp("audits")
    rng = np.random.default_rng(0)
    stores = {
        "good": phantom_images,
        "blurred": np.stack([ndi.gaussian_filter(x, 1.5) for x in phantom_images]).astype(np.float32),
        "noisy": np.clip(phantom_images + rng.normal(0, 0.15, phantom_images.shape), 0, 1).astype(np.float32),
        "collapsed": np.repeat(phantom_images[:1], 40, axis=0),
    }
    out = {}
    for name, imgs in stores.items():
        res = run_audit(
            store_of(tmp / f"{name}.zarr", imgs), reference, tmp / name, RECIPE, progress=False, echo=lambda m: None
        )
        out[name] = res.report
    return out


def test_a_phantom_store_scores_close_to_real_vs_real(audits):
    m = audits["good"]["metrics"]
    assert m["fid"]["synthetic_vs_real"] < 2.5 * m["fid"]["real_vs_real"] + 1e-6
    assert abs(m["ms_ssim"]["synthetic"]["mean"] - m["ms_ssim"]["real"]["mean"]) < 0.05


@pytest.mark.parametrize("degraded", ["blurred", "noisy"])
def test_blur_and_noise_raise_fid_and_mmd(audits, degraded):
    good, bad = audits["good"]["metrics"], audits[degraded]["metrics"]
    assert bad["fid"]["synthetic_vs_real"] > 3 * good["fid"]["synthetic_vs_real"]
    assert bad["mmd"]["synthetic_vs_real"] > 3 * max(good["mmd"]["synthetic_vs_real"], 1e-4)


def test_a_collapsed_generator_loses_diversity(audits):
    # phantoms share one template, so even distinct ones are similar (MS-SSIM ~0.94 at 8 mm); a collapsed
    # generator sits at 1, clear of the good store and of the real reference
    good, collapsed = audits["good"]["metrics"], audits["collapsed"]["metrics"]
    for k in ("ms_ssim", "4gr_ssim"):
        assert collapsed[k]["synthetic"]["mean"] > 0.999
        assert collapsed[k]["synthetic"]["ci95"][0] > good[k]["synthetic"]["ci95"][1] + 0.02
        assert collapsed[k]["synthetic"]["ci95"][0] > good[k]["real"]["ci95"][1] + 0.02


def test_verdicts_of_intact_and_degraded_stores(audits):
    v = {name: rep["verdicts"] for name, rep in audits.items()}
    assert v["good"]["realism"]["verdict"] == "close to real"
    assert v["good"]["diversity"]["verdict"] == "close to real"
    for bad in ("blurred", "noisy", "collapsed"):
        assert v[bad]["realism"]["verdict"] == "far from real", bad
    assert v["noisy"]["diversity"]["verdict"] == "far from real" and v["noisy"]["diversity"]["noise_like"]
    assert any("noise-like" in f for f in audits["noisy"]["flags"])
    assert v["collapsed"]["diversity"]["verdict"] == "far from real"
    assert v["collapsed"]["diversity"]["why"].startswith("collapse")
    assert not v["good"]["diversity"].get("noise_like") and not v["collapsed"]["diversity"].get("noise_like")
    # 40 reference images: halves of 20 < 50, so every realism verdict says it rests on little
    assert all(v[s]["realism"]["confidence"] == "low" for s in v)
    assert any("20 against 20" in f for f in v["good"]["realism"]["flags"])
    # questions without inputs say why they cannot be answered
    assert v["good"]["memorisation"]["verdict"] == "cannot tell" and "--training" in v["good"]["memorisation"]["why"]
    assert "no volume conditions" in v["good"]["conditioning"]["why"]


def test_report_opens_with_the_verdicts_and_their_thresholds(audits, tmp_path):
    rep = audits["noisy"]
    assert next(iter(rep)) == "verdicts"
    html = (Path(rep["store"]).parent / "noisy" / "report.html").read_text()
    assert html.index("<h2>Verdict") < html.index("<h2>Realism")
    assert "far from real" in html and "noise-like" in html and "≤ 2" in html
    assert "synthetic-vs-real ÷ real-vs-real FID" in html


def test_thresholds_come_from_the_recipe(tmp_path, reference, phantom_images):
    blurred = np.stack([ndi.gaussian_filter(x, 1.5) for x in phantom_images[:20]]).astype(np.float32)
    lax = AuditRecipe(n_synthetic=20, metrics=["fid"], bootstrap=5, thresholds=AuditThresholds(realism_max_ratio=1e6))
    res = run_audit(store_of(tmp_path / "b.zarr", blurred), reference, tmp_path / "r", lax, progress=False, echo=print)
    assert res.report["verdicts"]["realism"]["verdict"] == "close to real"
    assert res.report["thresholds"]["realism_max_ratio"] == 1e6
    assert "1e+06" in (tmp_path / "r" / "report.html").read_text()


def test_report_files_and_fallback_named(tmp_path, reference, phantom_images):
    run_audit(
        store_of(tmp_path / "s.zarr", phantom_images[:10]),
        reference,
        tmp_path / "rep",
        AuditRecipe(n_synthetic=10, n_pairs=10, bootstrap=3, variance_samples=5),
        progress=False,
        echo=lambda m: None,
    )
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["feature_extractor"]["name"] == "random-features-resnet10-seed0" and rep["warnings"]
    assert rep["metrics"]["fid"]["ci95"] is not None and rep["counts"]["synthetic"] == 10
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "random-features-resnet10-seed0" in html and html.count("data:image/png;base64,") >= 3
    for f in ("variance.png", "mean.png", "examples.png", "variance_synthetic.nii.gz", "mean_real.nii.gz"):
        assert (tmp_path / "rep" / f).exists()


def test_audit_cli(capsys, tmp_path, reference, phantom_images):
    store = store_of(tmp_path / "s.zarr", phantom_images[:8])
    code = main(
        [
            "audit",
            str(store),
            "--reference",
            str(reference),
            "--out",
            str(tmp_path / "r"),
            "--n-pairs",
            "5",
            "--device",
            "cpu",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "report" in out.out and "fid" in out.out and "warning:" in out.err
    code = main(["audit", str(tmp_path / "missing.zarr"), "--reference", str(reference), "--out", str(tmp_path / "r2")])
    assert code == 1 and "no such store" in capsys.readouterr().err
