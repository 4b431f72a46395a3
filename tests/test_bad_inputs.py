"""Every user-input error at every command: one line ``synthkit: error: …``, exit 1 (bad data) or 2 (usage),
never a traceback. Each case runs the real entry point (``synthkit.cli.main``) in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthkit.cli import main

TINY_RECIPE = """
kind: ddpm
name: tiny
space: {{shape: [16, 24, 16], spacing: 10}}
data: {{manifest: {manifest}, conditions: [age, sex]{extra}}}
unet: {{channels: [16, 32], attention_levels: [false, false], norm_num_groups: 8}}
scheduler: {{num_train_timesteps: 100}}
training: {{steps: 2, batch_size: 2, log_every: 1, val_every: 2, checkpoint_every: 2, preview_every: 100}}
"""


@pytest.fixture(scope="module")
def bed(tmp_path_factory, phantom_cohort):
    """Manifests, recipes, a covariate table, a tiny store and broken files to feed the commands."""
    from synthkit.data.phantom import default_space
    from synthkit.store.writer import write_images

    root = tmp_path_factory.mktemp("bad-inputs")
    m = pd.read_csv(phantom_cohort)
    folder = phantom_cohort.parent
    good = m.assign(image=[str(folder / p) for p in m["image"]], label=[str(folder / p) for p in m["label"]])
    good.to_csv(root / "good.csv", index=False)
    typo = good.copy()
    typo.loc[2, "image"] = str(folder / "images" / "phantom0002_T1w.nii.gzz")
    typo.to_csv(root / "typo.csv", index=False)
    good.assign(sex=np.where(good["sex"] == 1, "M", "F")).to_csv(root / "sex_text.csv", index=False)
    (root / "folder.csv").mkdir()
    for name in ("good", "typo", "sex_text"):
        (root / f"{name}.yaml").write_text(TINY_RECIPE.format(manifest=root / f"{name}.csv", extra=""))
    (root / "bad_mode.yaml").write_text(
        TINY_RECIPE.format(manifest=root / "good.csv", extra=", preprocess: {mode: magic}")
    )
    (root / "folder_manifest.yaml").write_text(TINY_RECIPE.format(manifest=root / "folder.csv", extra=""))
    imgs = root / "scans"
    imgs.mkdir()
    for i in range(3):
        shutil.copy(folder / good["image"].iloc[i], imgs / f"s{i}.nii.gz")
    pd.DataFrame({"id": ["s0", "s1", "s2"], "sex": ["M", "U", "F"], "age": [50, 60, 70]}).to_csv(
        root / "cov_unmapped.csv", index=False
    )
    pd.DataFrame({"id": ["s0", "s1", "s2"], "sex": ["M", "F", "F"], "site": ["A", "B", "C"]}).to_csv(
        root / "cov.csv", index=False
    )
    space = default_space(8.0)
    store = root / "tiny.zarr"
    rng = np.random.default_rng(0)
    write_images(store, rng.random((4, *space.shape), dtype=np.float32), space, shard_size=2,
                 conditions={"age": np.array([50.0, 60, 70, 80])})
    (root / "junk.nii.gz").write_bytes(b"not a nifti at all")
    return root


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except BaseException as e:  # any escaping exception is the failure this test looks for
        pytest.fail(f"synthkit {' '.join(map(str, argv))} raised {type(e).__name__}: {e}")
    out = capsys.readouterr()
    return code, out.out + out.err


def _cases(r: Path) -> list[tuple[str, list, int, str]]:
    """(name, argv, expected exit, a fragment the error line must contain)."""
    scans, out = r / "scans", r / "out"
    return [
        # manifest
        ("validate a folder", ["manifest", "validate", r / "folder.csv"], 1, "is a folder"),
        ("validate a missing file", ["manifest", "validate", r / "nope.csv"], 1, "not found"),
        ("build: wrong --id-column", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--covariates", r / "cov.csv",
                                      "--id-column", "subject", "-o", out / "m.csv"], 2, "--id-column"),
        ("build: --covariates alone", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--covariates", r / "cov.csv",
                                       "-o", out / "m.csv"], 2, "--id-column"),
        ("build: covariates is a folder", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--covariates", r,
                                           "--id-column", "id", "-o", out / "m.csv"], 2, "is a folder"),
        ("build: unmapped sex value", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--covariates",
                                       r / "cov_unmapped.csv", "--id-column", "id", "-o", out / "m.csv"], 1, "'u'"),
        ("build: --map syntax", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--covariates", r / "cov.csv",
                                 "--id-column", "id", "--map", "site", "-o", out / "m.csv"], 2, "--map"),
        ("build: --map code not a number", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--covariates",
                                            r / "cov.csv", "--id-column", "id", "--map", "site=A:x", "-o", out / "m.csv"],
         2, "not a number"),
        ("build: --map unknown column", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--covariates",
                                         r / "cov.csv", "--id-column", "id", "--map", "scanner=A:1", "-o", out / "m.csv"],
         2, "--map scanner"),
        ("build: --map leaves a value out", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--covariates",
                                             r / "cov.csv", "--id-column", "id", "--map", "site=A:0,B:1", "-o",
                                             out / "m.csv"], 1, "'c'"),
        ("build: --map without --covariates", ["manifest", "build", scans, "--pattern", "*.nii.gz", "--map", "site=A:0",
                                               "-o", out / "m.csv"], 2, "--map needs --covariates"),
        ("build: root is not a folder", ["manifest", "build", r / "good.csv", "--pattern", "*", "-o", out / "m.csv"], 1,
         "not a folder"),
        ("build: unknown dataset", ["manifest", "build", scans, "--dataset", "nosuch", "-o", out / "m.csv"], 2,
         "unknown dataset"),
        # train
        ("train: image path typo", ["train", r / "typo.yaml", "--out", out / "run1"], 1, "row 3 (phantom00002)"),
        ("train: sex as M/F", ["train", r / "sex_text.yaml", "--out", out / "run2"], 1, "--map sex="),
        ("train: recipe missing", ["train", r / "nope.yaml"], 2, "not found"),
        ("train: bad preprocess mode", ["train", r / "bad_mode.yaml", "--out", out / "run3"], 2, "preprocess.mode"),
        ("train: manifest is a folder", ["train", r / "folder_manifest.yaml", "--out", out / "run4"], 1, "is a folder"),
        # generate
        ("generate: --n 0", ["generate", "--n", "0", "--out", out / "g.zarr"], 2, "--n"),
        ("generate: bad condition", ["generate", "--n", "2", "--out", out / "g.zarr", "-c", "age=old"], 2, "age"),
        ("generate: conditions file missing", ["generate", "--n", "2", "--out", out / "g.zarr", "--conditions",
                                               r / "nope.csv"], 2, "not found"),
        ("generate: model missing", ["generate", "--n", "2", "--out", out / "g.zarr", "--model", r / "nope.safetensors"],
         None, "nope.safetensors"),
        # audit
        ("audit: reference image typo", ["audit", r / "tiny.zarr", "--reference", r / "typo.csv", "--out", out / "a1"], 1,
         "row 3 (phantom00002)"),
        ("audit: store missing", ["audit", r / "nope.zarr", "--reference", r / "good.csv", "--out", out / "a2"], None,
         "nope.zarr"),
        ("audit: reference is a folder", ["audit", r / "tiny.zarr", "--reference", r / "folder.csv", "--out", out / "a3"],
         1, "is a folder"),
        # segment
        ("segment: missing file", ["segment", r / "nope.nii.gz", "--out", out / "s1"], None, "nope.nii.gz"),
        ("segment: not a NIfTI", ["segment", r / "junk.nii.gz", "--out", out / "s2"], 1, "junk.nii.gz"),
        # export
        ("export: store missing", ["export", r / "nope.zarr", out / "e1"], None, "nope.zarr"),
        ("export: bad indices", ["export", r / "tiny.zarr", out / "e2", "--indices", "a:b"], 2, "indices"),
        # preprocess and phantom
        ("preprocess: manifest missing", ["preprocess", r / "nope.csv", "--out", out / "p1"], 1, "not found"),
        ("preprocess: bad mode", ["preprocess", r / "good.csv", "--out", out / "p2", "--mode", "magic"], 2, "mode"),
        ("preprocess: image typo", ["preprocess", r / "typo.csv", "--out", out / "p3"], 1, "row 3 (phantom00002)"),
        ("preprocess: --recipe with --mode", ["preprocess", r / "good.csv", "--out", out / "p4", "--recipe",
                                              r / "good.yaml", "--mode", "register"], 2, "--recipe"),
        ("preprocess: out is a file", ["preprocess", r / "good.csv", "--out", r / "good.csv"], 2, "not a folder"),
        ("phantom: --head with --shape", ["phantom", out / "h", "--head", "--shape", "8", "8", "8"], 2, "--shape"),
    ]


CASE_NAMES = [c[0] for c in _cases(Path("."))]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_line_and_no_traceback(bed, capsys, name):
    _, argv, expected, fragment = next(c for c in _cases(bed) if c[0] == name)
    code, text = _run(argv, capsys)
    assert "Traceback" not in text, text
    assert code != 0, text
    if expected is not None:
        assert code == expected, (code, text)
    errors = [line for line in text.splitlines() if line.startswith("synthkit: error:")]
    assert len(errors) == 1, text
    assert fragment in errors[0], errors[0]


def test_at_least_25_cases_across_the_commands():
    commands = {c[1][0] for c in _cases(Path("."))}
    assert len(CASE_NAMES) >= 25
    assert {"manifest", "train", "generate", "audit", "segment", "export"} <= commands
