"""The audit as sections over one loaded reference; its numbers recomputed from features.npz / pairs.npz with
scipy and MONAI alone; the house rules (short functions, short files)."""

import ast
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist

import synthkit
from synthkit.audit.sections import SECTIONS
from synthkit.audit.suite import run_audit
from synthkit.config import AuditRecipe
from synthkit.data.cache import PreprocessedCache
from synthkit.data.manifest import read_manifest
from synthkit.data.phantom import draw_params, render
from synthkit.store.reader import Cohort, open_cohort
from synthkit.store.writer import write_images

from .conftest import SPACE


@pytest.fixture(scope="module")
def conditioned_store(tmp_path_factory):
    """24 phantoms whose true ventricular volume is the requested condition."""
    subjects = [render(draw_params(s), SPACE) for s in range(2000, 2024)]
    path = tmp_path_factory.mktemp("cond") / "c.zarr"
    cond = {"ventricular_volume": np.array([s.ventricular_volume for s in subjects])}
    write_images(path, np.stack([s.image for s in subjects]), SPACE, shard_size=8, conditions=cond)
    return path


@pytest.fixture(scope="module")
def audited(tmp_path_factory, conditioned_store, reference):
    out = tmp_path_factory.mktemp("rep")
    recipe = AuditRecipe(n_pairs=40, bootstrap=5, variance_samples=6, n_segment=12, extrapolation=False)
    res = run_audit(conditioned_store, reference, out, recipe, training=reference, progress=False, echo=lambda m: None)
    return res.report, out


def test_the_reference_and_the_store_are_read_once(monkeypatch, tmp_path, conditioned_store, reference):
    fetched: Counter = Counter()
    manifests: Counter = Counter()
    store_reads = []
    get, images, read = PreprocessedCache.get, Cohort.images, read_manifest

    def counting_get(self, path, volume=None):
        fetched[str(Path(path).resolve())] += 1
        return get(self, path, volume)

    def counting_images(self, idx):
        store_reads.append(len(idx))
        return images(self, idx)

    def counting_read(path, **kw):
        manifests[str(Path(path).resolve())] += 1
        return read(path, **kw)

    monkeypatch.setattr(PreprocessedCache, "get", counting_get)
    monkeypatch.setattr(Cohort, "images", counting_images)
    for mod in ("synthkit.audit.context", "synthkit.audit.sections.memorisation"):
        monkeypatch.setattr(f"{mod}.read_manifest", counting_read)
    recipe = AuditRecipe(n_pairs=10, bootstrap=2, variance_samples=4, n_segment=10, extrapolation=False)
    # conditioning (segments reference images) and memorisation (training = the reference) both need reference
    # images: every one is fetched once, by the loader
    rep = run_audit(
        conditioned_store, reference, tmp_path, recipe, training=reference, progress=False, echo=lambda m: None
    ).report
    assert rep["metrics"]["conditioning"]["conditions"]["ventricular_volume"]["reference_recorded_vs_measured"]["n"]
    assert rep["metrics"]["memorisation"]["n_training"] > 0
    assert len(fetched) == 40 and set(fetched.values()) == {1}
    assert manifests == Counter({str(Path(reference).resolve()): 1})
    assert store_reads == [24]


def test_sections_answer_their_questions(audited):
    rep, out = audited
    v = rep["verdicts"]
    assert list(v) == ["realism", "diversity", "conditioning", "brain_age", "memorisation"]
    assert v["conditioning"]["verdict"] == "close to real", v["conditioning"]["why"]
    assert v["memorisation"]["verdict"] == "close to real", v["memorisation"]["why"]
    assert v["memorisation"]["confidence"] == "low"  # 8 held-out real images behind its threshold
    assert any("8 held-out" in f for f in rep["flags"])
    assert v["realism"]["verdict"] in ("close to real", "cannot tell")
    assert {"realism", "diversity", "paired", "variance", "conditioning", "brain_age", "memorisation"} <= {
        name for name, _ in SECTIONS
    }
    # every number names its sizes; subsets and seeds are stated
    for k in ("fid", "mmd", "mmd_images", "ms_ssim", "4gr_ssim", "psnr"):
        assert rep["metrics"][k]["sizes"]["synthetic"] == 24, k
    assert rep["subsets"]["synthetic"] == {"n": 24, "of": 24, "subset": "all"}
    assert rep["metrics"]["variance"]["subsets"]["real"] == {"n": 6, "of": 40, "subset": "random", "seed": 3}
    assert rep["metrics"]["conditioning"]["synthetic_subset"]["seed"] == rep["seeds"]["segment_subset"]
    assert rep["metrics"]["mmd_images"]["sizes"] == {"synthetic": 24, "reference": 40, "real_halves": [20, 20]}


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns that the (rank-deficient) product is singular
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _mmd2_scipy(x: np.ndarray, y: np.ndarray) -> float:
    z = np.concatenate([x, y])
    alpha = 1 / np.median(cdist(z, z, "sqeuclidean")[np.triu_indices(len(z), 1)])
    m, n = len(x), len(y)
    kxx, kyy = np.exp(-alpha * cdist(x, x, "sqeuclidean")), np.exp(-alpha * cdist(y, y, "sqeuclidean"))
    kxy = np.exp(-alpha * cdist(x, y, "sqeuclidean"))
    return float((kxx.sum() - m) / (m * (m - 1)) + (kyy.sum() - n) / (n * (n - 1)) - 2 * kxy.mean())


def test_fid_mmd_and_ms_ssim_recomputed_from_the_saved_files(audited, conditioned_store, reference):
    from monai.metrics import MultiScaleSSIMMetric

    rep, out = audited
    assert rep["files"] == ["features.npz", "pairs.npz"]
    f = np.load(out / "features.npz")
    assert str(f["extractor"]) == rep["feature_extractor"]["name"] == "random-features-resnet10-seed0"
    syn, ref, a, b = f["synthetic"], f["reference"], f["half_a"], f["half_b"]
    m = rep["metrics"]
    assert _fid_scipy(syn, ref) == pytest.approx(m["fid"]["synthetic_vs_real"], abs=1e-6)
    assert _fid_scipy(ref[a], ref[b]) == pytest.approx(m["fid"]["real_vs_real"], abs=1e-6)
    assert _mmd2_scipy(syn, ref) == pytest.approx(m["mmd"]["synthetic_vs_real"], abs=1e-6)
    assert _mmd2_scipy(ref[a], ref[b]) == pytest.approx(m["mmd"]["real_vs_real"], abs=1e-6)
    # MS-SSIM: the images from the store and the manifest, the pairs and the kernel from pairs.npz, MONAI
    p = np.load(out / "pairs.npz")
    cohort = open_cohort(conditioned_store)
    images = {
        "synthetic": cohort.images(np.searchsorted(cohort.indices, p["synthetic_index"])),
        "real": PreprocessedCache(cohort.space).get_many(
            list(read_manifest(reference).table["image"].to_numpy()[p["reference_rows"]])
        ),
    }
    metric = MultiScaleSSIMMetric(
        spatial_dims=3, data_range=1.0, kernel_size=int(p["kernel_size"]), weights=tuple(p["weights"])
    )
    for side in ("synthetic", "real"):
        pairs, imgs = p[f"{side}_indices"], torch.as_tensor(images[side])[:, None]
        vals = metric(imgs[pairs[:, 0]], imgs[pairs[:, 1]]).flatten().double().numpy()
        assert vals.mean() == pytest.approx(m["ms_ssim"][side]["mean"], abs=1e-6)
        assert np.abs(vals - p[f"ms_ssim_{side}"]).max() < 1e-5


def test_functions_and_files_stay_short():
    root = Path(synthkit.__file__).parent
    too_long = []
    for path in [*root.glob("audit/**/*.py"), *root.glob("cli/*.py")]:
        text = path.read_text()
        if len(text.splitlines()) > 500:
            too_long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                too_long.append(f"{path.name}:{node.name} {node.end_lineno - node.lineno + 1} lines")
    assert not too_long


def test_copies_of_training_images_are_far_from_real_on_memorisation(tmp_path, reference):
    m = read_manifest(reference)
    train = np.flatnonzero(m.table["split"].to_numpy() == "train")[:20]
    copies = PreprocessedCache(SPACE).get_many(list(m.table["image"].to_numpy()[train]))
    store = tmp_path / "copies.zarr"
    write_images(store, copies, SPACE, shard_size=10)
    recipe = AuditRecipe(metrics=["psnr"], conditioning=False)
    rep = run_audit(store, reference, tmp_path / "r", recipe, training=reference, progress=False, echo=lambda m: None)
    v = rep.report["verdicts"]
    assert v["memorisation"]["verdict"] == "far from real", v["memorisation"]["why"]
    assert any("check memorisation" in f for f in v["realism"]["flags"])


def test_the_ratio_interval_contains_its_estimate():
    from synthkit.audit.stats import recentred_ci

    boot = np.array([44.0, 50.0, 52.0, 55.0, 60.0])  # bootstrap ratios all below the estimate, as for FID
    lo, hi = recentred_ci(64.0, boot)
    assert lo < 64.0 < hi and hi / 64.0 == pytest.approx(60.0 / 52.0, rel=0.05)
    lo, hi = recentred_ci(0.5, np.array([-0.2, 0.1, 0.3]))  # not all positive: additive spread
    assert lo < 0.5 < hi
    assert recentred_ci(1.0, np.array([np.nan, 2.0])) is None
