import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkit.cli import app, main

runner = CliRunner()


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("synthkit ")


def test_help_groups_commands_in_panels():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for panel in ("Data", "Getting started"):
        assert panel in result.output
    assert "phantom" in result.output and "manifest" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["phantom"],
        ["phantom", "x", "--n", "abc"],
        ["phantom", "x", "--n", "0"],
        ["manifest", "build", "."],
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, args):
    code, _, err = run(args, capsys)
    assert code == 2
    assert err.startswith("synthkit: error: ") and err.count("\n") == 1


def test_no_args_prints_help(capsys):
    assert main([]) == 0


def test_manifest_validate_names_every_bad_row(capsys, tmp_path, phantom_cohort):
    import shutil

    cohort = tmp_path / "c"
    shutil.copytree(phantom_cohort.parent, cohort)
    victim = cohort / "images" / "phantom00003_T1w.nii.gz"
    victim.write_bytes(victim.read_bytes()[:200])
    (cohort / "images" / "phantom00007_T1w.nii.gz").unlink()
    code, _, err = run(["manifest", "validate", str(cohort / "manifest.csv")], capsys)
    assert code == 1
    assert "2 of 12 rows are bad" in err
    assert "row 4 (phantom00003)" in err and "row 8 (phantom00007)" in err


def test_manifest_build_from_a_folder(capsys, tmp_path, phantom_cohort):
    out = tmp_path / "m.csv"
    code, stdout, _ = run(
        ["manifest", "build", str(phantom_cohort.parent), "--pattern", "images/*.nii.gz", "--out", str(out)],
        capsys,
    )
    assert code == 0 and "12 rows" in stdout
    code, _, _ = run(["manifest", "validate", str(out)], capsys)
    assert code == 0


def test_phantom_command_in_a_real_subprocess(tmp_path):
    exe = Path(sys.executable).parent / "synthkit"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "synthkit.cli"]
    r = subprocess.run(
        [*cmd, "phantom", str(tmp_path / "p"), "--n", "3", "--spacing", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "p" / "images").glob("*.nii.gz"))) == 3
    r = subprocess.run(
        [*cmd, "manifest", "validate", str(tmp_path / "p" / "manifest.csv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
