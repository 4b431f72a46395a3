"""Fault tests: a killed run or a killed worker leaves a store that finishes byte-identical."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr

from synthkit.generate.engine import GenerateOptions, run

from .conftest import array_bytes

EXE = Path(sys.executable).parent / "synthkit"
ARGS = [
    "--n",
    "40",
    "--shard-size",
    "2",
    "--batch-size",
    "2",
    "--seed",
    "11",
    "--spacing",
    "4",
    "--device",
    "cpu",
]


def done_count(store: Path) -> int:
    try:
        return int(np.asarray(zarr.open_group(str(store), mode="r")["shard_done"][:]).sum())
    except Exception:
        return 0


def start(store: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(EXE), "generate", "--out", str(store), *ARGS, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_for(predicate, timeout=120.0) -> None:
    t0 = time.time()
    while not predicate():
        if time.time() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dask_address) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    o = GenerateOptions(
        out=out, n=40, shard_size=2, batch_size=2, seed=11, spacing=4.0, device="cpu", cluster=dask_address
    )
    run(o, progress=False, echo=lambda m: None)
    return out


@pytest.mark.slow
def test_sigkill_then_resume_is_byte_identical(tmp_path, reference, dask_address):
    store = tmp_path / "k.zarr"
    proc = start(store, "--workers", "1")
    wait_for(lambda: done_count(store) >= 3 or proc.poll() is not None)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = done_count(store)
    assert 0 < n_done < 20, "the kill should land mid-run"
    res = run(GenerateOptions(out=store, resume=True, cluster=dask_address), progress=False, echo=lambda m: None)
    assert res.shards_run <= 20 - n_done + 1
    assert array_bytes(store) == array_bytes(reference)


@pytest.mark.slow
def test_a_worker_killed_mid_task_changes_nothing(tmp_path, reference):
    store = tmp_path / "w.zarr"
    proc = start(store, "--workers", "2")
    wait_for(lambda: done_count(store) >= 2 or proc.poll() is not None)
    workers = [
        c
        for c in psutil.Process(proc.pid).children(recursive=True)
        if "spawn" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())
    ]
    assert workers, "expected dask worker processes"
    workers[0].kill()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert array_bytes(store) == array_bytes(reference)


@pytest.mark.slow
def test_two_concurrent_resumes_split_the_shards(tmp_path, reference):
    """Each run claims the shards it writes; together they write each missing shard once."""
    from synthkit.generate.prepare import prepare_store
    from synthkit.store.writer import install_store

    store = tmp_path / "c.zarr"
    o = GenerateOptions(out=store, n=40, shard_size=2, batch_size=2, seed=11, spacing=4.0, device="cpu")
    _, _, staged = prepare_store(o, echo=lambda m: None)
    install_store(staged, store, overwrite=False)  # the plan only: 20 shards missing
    procs = [
        subprocess.Popen(
            [str(EXE), "generate", "--out", str(store), "--resume", "--workers", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    written = [int(out.split("samples (")[1].split(" of ")[0]) for out, _ in outs]
    assert sum(written) == 20, written
    assert array_bytes(store) == array_bytes(reference)
    assert not (store / "claims").exists()
