"""`synthkit train` / `synthkit sample` from the command line."""

from synthkit.cli import main

from .conftest import write_recipe


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sample_writes_a_png_and_niftis(capsys, tmp_path, trained_ldm):
    code, out, err = cli(
        capsys,
        "sample",
        trained_ldm.checkpoint,
        "--n",
        "2",
        "--out",
        tmp_path / "p.png",
        "-c",
        "age=70",
        "--steps",
        "3",
        "--device",
        "cpu",
        "--nifti",
        tmp_path / "nii",
    )
    assert code == 0, err
    assert (tmp_path / "p.png").stat().st_size > 1000 and len(list((tmp_path / "nii").glob("*.nii.gz"))) == 2


def test_sample_bad_input(capsys, tmp_path, trained_ldm):
    code, _, err = cli(capsys, "sample", trained_ldm.checkpoint, "-c", "iq=3", "--device", "cpu")
    assert code == 2 and "unknown condition" in err
    code, _, err = cli(capsys, "sample", tmp_path / "missing.safetensors")
    assert code == 1 and "not found" in err
    code, _, err = cli(capsys, "sample", trained_ldm.checkpoint, "--sampler", "euler", "--device", "cpu")
    assert code == 2 and "sampler" in err


def test_train_cli_and_bad_recipe(capsys, tmp_path, cohort16):
    recipe = write_recipe(tmp_path, cohort16, kind="ddpm", conditions="[]", steps=2)
    code, out, err = cli(capsys, "train", recipe, "--out", tmp_path / "run", "--device", "cpu")
    assert code == 0, err
    assert "checkpoint" in out and (tmp_path / "run" / "model.safetensors").exists()
    recipe.write_text(recipe.read_text() + "learning_rate: 3\n")
    code, _, err = cli(capsys, "train", recipe)
    assert code == 2 and "learning_rate: unknown key" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "train", tmp_path / "nope.yaml")
    assert code == 2 and "file not found" in err
