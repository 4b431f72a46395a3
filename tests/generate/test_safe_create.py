"""``--overwrite`` deletes only a synthkit store, and only once the new plan is written and the cluster is
reachable; creation is atomic (a killed or disk-full creation leaves nothing at ``--out``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthkit.cli import main
from synthkit.generate.engine import GenerateOptions, run

from .conftest import array_bytes

EXE = Path(sys.executable).parent / "synthkit"
ARGS = ["--n", "6", "--shard-size", "2", "--batch-size", "2", "--seed", "4", "--spacing", "8", "--device", "cpu"]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text, text
    return code, text


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dask_address):
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    assert main(["generate", "--out", str(out), *ARGS, "--cluster", dask_address]) == 0
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".creating-" in p.name or ".replaced-" in p.name)


def test_overwrite_refuses_a_plain_file(capsys, tmp_path, dask_address):
    f = tmp_path / "important.txt"
    f.write_text("thesis")
    code, text = cli(capsys, "generate", "--out", f, *ARGS, "--overwrite", "--cluster", dask_address)
    assert code == 2 and "not a synthkit store" in text and len(text.strip().splitlines()) == 1, text
    assert f.read_text() == "thesis"


def test_overwrite_refuses_a_foreign_folder(capsys, tmp_path, dask_address):
    d = tmp_path / "results"
    d.mkdir()
    (d / "a.csv").write_text("1")
    code, text = cli(capsys, "generate", "--out", d, *ARGS, "--overwrite", "--cluster", dask_address)
    assert code == 2 and "not a synthkit store" in text
    assert (d / "a.csv").read_text() == "1"


def test_unreachable_scheduler_leaves_the_old_store_intact(capsys, tmp_path, reference):
    import shutil

    store = tmp_path / "c.zarr"
    shutil.copytree(reference, store)
    before = array_bytes(store)
    code, text = cli(capsys, "generate", "--out", store, *ARGS, "--seed", "9", "--overwrite",
                     "--cluster", "tcp://127.0.0.1:9")
    assert code == 2 and "cannot reach the scheduler" in text, text
    assert array_bytes(store) == before and cli(capsys, "verify", store)[0] == 0
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_a_store(capsys, tmp_path, reference, dask_address):
    import shutil

    store = tmp_path / "c.zarr"
    shutil.copytree(reference, store)
    code, _ = cli(capsys, "generate", "--out", store, *ARGS, "--seed", "9", "--overwrite", "--cluster", dask_address)
    assert code == 0 and array_bytes(store) != array_bytes(reference)
    assert leftovers(tmp_path) == []


def test_sigkill_during_creation_leaves_nothing_and_resume_finishes(capsys, tmp_path, reference, dask_address):
    store = tmp_path / "k.zarr"
    env = {**os.environ, "SYNTHKIT_TEST_FAULT": "create-kill"}
    proc = subprocess.run([str(EXE), "generate", "--out", str(store), *ARGS], env=env, capture_output=True)
    assert proc.returncode == -9
    assert not store.exists() and len(leftovers(tmp_path)) == 1  # only the hidden, half-written folder
    code, text = cli(capsys, "generate", "--out", store, *ARGS, "--resume", "--cluster", dask_address)
    assert code == 0 and "creating it" in text, text
    assert array_bytes(store) == array_bytes(reference)
    assert leftovers(tmp_path) == []  # the killed creation's folder is gone


def test_disk_full_during_creation_is_one_line(capsys, tmp_path, monkeypatch, dask_address):
    monkeypatch.setenv("SYNTHKIT_TEST_FAULT", "create-enospc")
    store = tmp_path / "full.zarr"
    code, text = cli(capsys, "generate", "--out", store, *ARGS, "--cluster", dask_address)
    errors = [line for line in text.splitlines() if line.startswith("synthkit: error:")]
    assert code != 0 and len(errors) == 1 and "No space left on device" in errors[0], text
    assert not store.exists() and leftovers(tmp_path) == []


def test_resume_of_a_missing_store_with_its_plan_creates_it(tmp_path, reference, dask_address):
    o = GenerateOptions(out=tmp_path / "r.zarr", resume=True, n=6, shard_size=2, batch_size=2, seed=4, spacing=8.0,
                        device="cpu", cluster=dask_address)
    run(o, progress=False, echo=lambda m: None)
    assert array_bytes(o.out) == array_bytes(reference)


@pytest.mark.slow
def test_failing_tasks_are_one_line_not_a_traceback_per_task(tmp_path):
    """A full disk while shards are written: one error line, no "Compute Failed" traceback from each worker."""
    env = {**os.environ, "SYNTHKIT_TEST_FAULT": "shard-enospc"}
    store = tmp_path / "full.zarr"
    proc = subprocess.run(
        [str(EXE), "generate", "--out", str(store), *ARGS, "--n", "12", "--workers", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Compute Failed" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "--resume" in lines[0], proc.stderr
