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
conditioning: {{fields: 1}}
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
    (root / "important.txt").write_text("not a store")
    _damaged_stores(root, store)
    _edited_checkpoints(root)
    _edited_brain_age_models(root, space)
    return root


def _damaged_stores(root: Path, store: Path) -> None:
    """Copies of the tiny store: one image shard deleted; one inner chunk overwritten (does not decode)."""
    shutil.copytree(store, root / "deleted.zarr")
    (root / "deleted.zarr" / "images" / "c" / "1" / "0" / "0" / "0").unlink()
    shutil.copytree(store, root / "corrupt.zarr")
    f = root / "corrupt.zarr" / "images" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(f.read_bytes())
    data[20:28] = b"\xff" * 8  # inside sample 0's blosc header
    f.write_bytes(bytes(data))
    shutil.copytree(store, root / "flags.zarr")
    f = root / "flags.zarr" / "shard_done" / "c" / "1"
    f.write_bytes(f.read_bytes()[:4] + b"\xff" * 8)  # a done flag that does not decode


def _rewrite(src: Path, dst: Path, edit) -> None:
    """A copy of a safetensors file with its synthkit metadata edited (as a hostile or careless user might)."""
    import json

    from safetensors.numpy import load_file, save_file

    from synthkit.safefile import read_meta

    _, meta = read_meta(src)
    arrays = load_file(str(src))
    edited = edit(meta, arrays)  # a metadata edit returns None (or what dict.pop returns); an array edit the arrays
    if isinstance(edited, dict) and all(isinstance(v, np.ndarray) for v in edited.values()):
        arrays = edited
    save_file(arrays, str(dst), metadata={"synthkit": json.dumps(meta)})


def _edited_checkpoints(root: Path) -> None:
    from synthkit.training.run import train

    ck = train(root / "good.yaml", out=root / "run", device="cpu", progress=False, echo=lambda m: None).checkpoint
    edits = {
        "ck_kind": lambda m, a: m.update(kind="ldm"),
        "ck_recipe": lambda m, a: m.pop("recipe"),
        "ck_space": lambda m, a: m["space"].update(shape=[16, 24, 17]),
        "ck_space_gone": lambda m, a: m.pop("space"),
        "ck_steps": lambda m, a: m["recipe"].setdefault("sampling", {}).update(steps=1e9),
        "ck_fields": lambda m, a: m.update(condition_field_shape=[16, 24, "x"]),
    }
    for name, edit in edits.items():
        _rewrite(ck, root / f"{name}.safetensors", edit)


def _edited_brain_age_models(root: Path, space) -> None:
    from synthkit.data import phantom as ph
    from synthkit.metrics.brain_age import PCARidgeBrainAge, save_brain_age

    subjects = [ph.render(ph.draw_params(s), space) for s in range(12)]
    x, y = np.stack([s.image for s in subjects]), np.array([s.params.age for s in subjects])
    good = save_brain_age(root / "ba.safetensors", PCARidgeBrainAge(n_components=4).fit(x, y),
                          space=space.to_dict(), metrics={"n": 0})
    edits = {
        "ba_shape": lambda m, a: {**a, "pca_components": a["pca_components"][:, :-7]},
        "ba_kind": lambda m, a: m.update(kind="brain-age-cnn"),
        "ba_space_gone": lambda m, a: m.pop("space"),
    }
    for name, edit in edits.items():
        _rewrite(good, root / f"{name}.safetensors", edit)


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
        ("train: --threads 0", ["train", r / "good.yaml", "--out", out / "run5", "--threads", "0"], 2, "--threads"),
        ("train: --stage of another kind", ["train", r / "good.yaml", "--out", out / "run6", "--stage", "autoencoder"],
         2, "--stage"),
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
        *_integrity_cases(r),
    ]


def _integrity_cases(r: Path) -> list[tuple[str, list, int, str]]:
    """Issue 14: infinite or huge inputs, folders for files, bad spacing, edited model files, damaged stores."""
    out = r / "out"
    g = ["generate", "--n", "2", "--spacing", "8", "--out"]
    ck = ["generate", "--n", "2", "--out", out / "ck.zarr", "--model"]
    audit = ["audit", r / "tiny.zarr", "--reference", r / "good.csv", "--out"]
    return [
        ("generate: infinite condition", [*g, out / "g1.zarr", "-c", "age=1e999"], 2, "finite"),
        ("generate: infinite distribution parameter", [*g, out / "g2.zarr", "-c", "age=normal(60,1e999)"], 2,
         "finite"),
        ("generate: --n beyond a plan", ["generate", "--n", "1000000000000", "--out", out / "g3.zarr"], 2,
         "at most"),
        ("generate: --model is a folder", ["generate", "--n", "2", "--out", out / "g4.zarr", "--model", r], 1,
         "is a folder"),
        ("generate: --conditions is a folder", [*g, out / "g5.zarr", "--conditions", r], 2, "is a folder"),
        ("generate: --spacing 0", ["generate", "--n", "2", "--out", out / "g6.zarr", "--spacing", "0"], 2,
         "--spacing"),
        ("generate: --spacing -4", ["generate", "--n", "2", "--out", out / "g7.zarr", "--spacing", "-4"], 2,
         "--spacing"),
        ("generate: --spacing nan", ["generate", "--n", "2", "--out", out / "g8.zarr", "--spacing", "nan"], 2,
         "--spacing"),
        ("generate: --overwrite a plain file", [*g, r / "important.txt", "--overwrite"], 2, "not a synthkit store"),
        ("generate: --resume a plain file", ["generate", "--out", r / "important.txt", "--resume"], 2,
         "not a synthkit store"),
        ("generate: checkpoint kind edited", [*ck, r / "ck_kind.safetensors"], 1, "'kind'"),
        ("generate: checkpoint recipe removed", [*ck, r / "ck_recipe.safetensors"], 1, "'recipe'"),
        ("generate: checkpoint space edited", [*ck, r / "ck_space.safetensors"], 1, "'space'"),
        ("generate: checkpoint sampling steps 1e9", [*ck, r / "ck_steps.safetensors"], 1, "recipe.sampling.steps"),
        ("generate: checkpoint field shape edited", [*ck, r / "ck_fields.safetensors"], 1, "condition_field_shape"),
        ("sample: checkpoint space removed", ["sample", r / "ck_space_gone.safetensors", "--out", out / "s.png"], 1,
         "'space'"),
        ("sample: checkpoint is a folder", ["sample", r, "--out", out / "s2.png"], 1, "is a folder"),
        ("audit: brain-age arrays of the wrong shape", [*audit, out / "a4", "--brain-age", r / "ba_shape.safetensors"],
         1, "'space'"),
        ("audit: brain-age kind edited", [*audit, out / "a5", "--brain-age", r / "ba_kind.safetensors"], 1, "'kind'"),
        ("audit: brain-age space removed", [*audit, out / "a6", "--brain-age", r / "ba_space_gone.safetensors"], 1,
         "'space'"),
        ("audit: brain-age not a model file", [*audit, out / "a7", "--brain-age", r / "junk.nii.gz"], 1,
         "junk.nii.gz"),
        ("verify: an image shard deleted", ["verify", r / "deleted.zarr"], 1, "sample 2: images chunk is missing"),
        ("verify: a chunk that does not decode", ["verify", r / "corrupt.zarr"], 1, "sample 0: images chunk"),
        ("verify --quick: an image shard deleted", ["verify", r / "deleted.zarr", "--quick"], 1, "sample 3"),
        ("verify: a plain file", ["verify", r / "important.txt"], 1, "important.txt"),
        ("export: a chunk that does not decode", ["export", r / "corrupt.zarr", out / "e3"], 1, "cannot be read"),
        ("inspect: a plain file", ["inspect", r / "important.txt"], 1, "important.txt"),
        ("inspect: a done flag that does not decode", ["inspect", r / "flags.zarr"], 1, "shard_done is damaged"),
        ("export: a done flag that does not decode", ["export", r / "flags.zarr", out / "e4"], 1, "shard_done"),
        ("verify: a done flag that does not decode", ["verify", r / "flags.zarr"], 1, "done flag is unreadable"),
    ]


CASE_NAMES = [c[0] for c in _cases(Path("."))]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_line_and_no_traceback(bed, capsys, name):
    _, argv, expected, fragment = next(c for c in _cases(bed) if c[0] == name)
    code, text = _run(argv, capsys)
    assert "Traceback" not in text, text
    assert code != 0, text
    assert code in (1, 2), (code, text)  # 1 bad data, 2 usage
    if expected is not None:
        assert code == expected, (code, text)
    if argv[0] == "verify":  # "error: …" lines, one per damaged sample
        assert any(line.startswith("error: ") and fragment in line for line in text.splitlines()), text
        return
    errors = [line for line in text.splitlines() if line.startswith("synthkit: error:")]
    assert len(errors) == 1, text
    assert fragment in errors[0], errors[0]
    for folder in ("a4", "a5", "a6", "a7", "e3", *(f"run{i}" for i in range(1, 7))):
        assert not (bed / "out" / folder).exists(), f"a failed command left {folder}/ behind"


def test_at_least_40_cases_across_the_commands():
    commands = {c[1][0] for c in _cases(Path("."))}
    assert len(CASE_NAMES) >= 40
    assert {"manifest", "train", "generate", "audit", "segment", "export", "verify", "inspect", "sample"} <= commands


def test_a_real_process_prints_one_line_and_exits_1(bed):
    """The same errors through the console entry point in a separate process (what a user's shell sees)."""
    import subprocess
    import sys

    for argv in (["train", bed / "typo.yaml", "--out", bed / "out" / "run-sub"],
                 ["manifest", "build", bed / "scans", "--pattern", "*.nii.gz", "--covariates",
                  bed / "cov_unmapped.csv", "--id-column", "id", "-o", bed / "out" / "m-sub.csv"]):
        r = subprocess.run([sys.executable, "-m", "synthkit.cli", *map(str, argv)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stdout + r.stderr
        assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [r.stderr.strip()]
        assert r.stderr.startswith("synthkit: error: ")
    assert not (bed / "out" / "run-sub").exists()
