"""`synthkit generate/inspect/verify/export` from the command line, bad input included."""

import pandas as pd
import pytest

from synthkit.cli import main

from .conftest import array_bytes


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def made(tmp_path_factory, dask_address):
    store = tmp_path_factory.mktemp("cli") / "c.zarr"
    assert (
        main(
            [
                "generate",
                "--out",
                str(store),
                "--n",
                "6",
                "--shard-size",
                "4",
                "--spacing",
                "8",
                "--cluster",
                dask_address,
            ]
        )
        == 0
    )
    return store


def test_generate_says_which_model_and_finishes(made, capsys):
    code, out, _ = cli(capsys, "verify", made)
    assert code == 0 and "OK (6 samples checked)" in out
    code, out, _ = cli(capsys, "inspect", made)
    assert code == 0 and "2 of 2 shards" in out and "phantom" in out and "age" in out


def test_export(made, capsys, tmp_path):
    code, out, _ = cli(capsys, "export", made, tmp_path / "nii", "--indices", "0:2")
    assert code == 0 and len(list((tmp_path / "nii").glob("sample_*[0-9].nii.gz"))) == 2
    code, _, err = cli(capsys, "export", made, tmp_path / "nii", "--indices", "9")
    assert code == 2 and "out of range" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n"),
        (["--n", "3", "--condition", "age=old"], "--condition 'age=old'"),
        (["--n", "3", "--condition", "iq=100"], "unknown condition"),
        (["--n", "3", "--device", "tpu"], "--device"),
        (["--n", "3", "--cluster", "k8s"], "--cluster"),
        (["--n", "3", "--dtype", "int32"], "--dtype"),
        (["--resume"], "there is no store at"),
        (["--n", "3", "--steps", "5"], "--steps applies to diffusion checkpoints only"),
        (["--n", "3", "--guidance-scale", "2", "--sampler", "ddim"], "apply to diffusion checkpoints only"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(capsys, tmp_path, args, message):
    code, _, err = cli(capsys, "generate", "--out", tmp_path / "x.zarr", "--spacing", "8", *args)
    assert code == 2, err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.zarr").exists()  # nothing is created for a bad command


def test_existing_store_is_left_alone_without_overwrite(made, capsys):
    before = array_bytes(made)
    code, _, err = cli(capsys, "generate", "--out", made, "--n", "6", "--spacing", "8")
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert array_bytes(made) == before


def test_unwritable_path(capsys, tmp_path):
    (tmp_path / "f").write_text("")
    code, _, err = cli(capsys, "generate", "--out", tmp_path / "f" / "c.zarr", "--n", "2", "--spacing", "8")
    assert code == 2 and "cannot create" in err


def test_conditions_csv_with_missing_values(capsys, tmp_path):
    csv = tmp_path / "c.csv"
    pd.DataFrame({"age": [60, None, 70], "sex": [0, 1, 1]}).to_csv(csv, index=False)
    code, _, err = cli(capsys, "generate", "--out", tmp_path / "x.zarr", "--conditions", csv, "--spacing", "8")
    assert code == 2 and "row(s) 2" in err
    assert not (tmp_path / "x.zarr").exists()


def test_resume_with_a_different_plan_is_refused(made, capsys):
    code, _, err = cli(capsys, "generate", "--out", made, "--resume", "--n", "7")
    assert code == 2 and "--n 7 (store: 6)" in err


def test_verify_and_inspect_on_something_else(capsys, tmp_path):
    code, _, err = cli(capsys, "verify", tmp_path)
    assert code == 1 and "error:" in err
    code, _, err = cli(capsys, "inspect", tmp_path / "none.zarr")
    assert code == 1 and "no such store" in err
