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
