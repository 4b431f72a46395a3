import numpy as np
import pytest

from synthkit import open_cohort
from synthkit.generate.engine import GenerateOptions, QCConfig, generate_with_qc, run
from synthkit.models.base import Samples
from synthkit.store.verify import verify_store

from .conftest import array_bytes


def opts(out, address, **kw):
    base = {
        "out": out,
        "n": 10,
        "shard_size": 4,
        "batch_size": 3,
        "seed": 5,
        "spacing": 8.0,
        "cluster": address,
        "device": "cpu",
    }
    return GenerateOptions(**{**base, **kw})


def test_generate_verify_and_read(tmp_path, dask_address):
    res = run(opts(tmp_path / "a.zarr", dask_address), progress=False, echo=lambda m: None)
    assert (res.n, res.shards_run, res.shards_total) == (10, 3, 3)
    assert verify_store(res.store).ok
    c = open_cohort(res.store)
    assert len(c) == 10 and c.space.shape == (20, 28, 20)
    t = c.conditions
    assert set(t.columns) >= {"age", "sex", "seed", "qc_pass", "true_ventricular_volume"}
    assert t["qc_pass"].all() and (t["qc_attempts"] == 1).all()
    assert c[3]["label"].max() == 4


def test_workers_and_batch_size_change_no_byte(tmp_path, dask_address):
    a = run(
        opts(tmp_path / "a.zarr", dask_address, batch_size=1, shard_size=3),
        progress=False,
        echo=lambda m: None,
    )
    b = run(
        opts(tmp_path / "b.zarr", dask_address, batch_size=7, shard_size=3),
        progress=False,
        echo=lambda m: None,
    )
    assert array_bytes(a.store) == array_bytes(b.store)


def test_conditions_reach_the_generator(tmp_path, dask_address):
    res = run(
        opts(
            tmp_path / "v.zarr",
            dask_address,
            n=4,
            condition_specs=["ventricular_volume=linspace(15000,45000)", "age=60"],
        ),
        progress=False,
        echo=lambda m: None,
    )
    t = open_cohort(res.store).conditions
    assert np.allclose(t["age"], 60)
    assert np.all(np.diff(t["true_ventricular_volume"]) > 0)


def test_resume_of_a_complete_store_runs_nothing(tmp_path, dask_address):
    first = run(opts(tmp_path / "a.zarr", dask_address), progress=False, echo=lambda m: None)
    again = run(
        GenerateOptions(out=first.store, resume=True, cluster=dask_address),
        progress=False,
        echo=lambda m: None,
    )
    assert again.shards_run == 0


def _finished_shard(k):
    return {"shard": k, "n": 1, "skipped": False, "failed_qc": 0}


def test_collected_tasks_leave_the_workers(tmp_path, dask_address):
    """A worker keeps a finished task (arguments, state, result) while the client holds its future; the run
    holds every future to the end, so each one is released once collected (worker memory over a long run)."""
    import time

    from dask.distributed import Client

    from synthkit.generate.engine import _collect

    with Client(dask_address) as client:
        futures = client.map(_finished_shard, range(12), pure=False)
        stats = {"failed_qc": 0, "written": 0}
        assert _collect(futures, opts(tmp_path / "x.zarr", dask_address), stats, lambda n: None) == set()
        assert stats["written"] == 12 and len(futures) == 12  # the list still holds every future
        held = None
        for _ in range(50):  # releases reach the workers asynchronously
            held = sum(client.run(lambda dask_worker: len(dask_worker.state.tasks)).values())
            if held == 0:
                break
            time.sleep(0.1)
        assert held == 0


def test_a_task_reads_only_its_own_flag(tmp_path, monkeypatch):
    """A task checks its own done flag, not every shard's (one file each: a cost that grew with the store)."""
    from zarr.storage import LocalStore

    from synthkit.generate.engine import ShardJob, run_shard
    from synthkit.generate.prepare import prepare_store
    from synthkit.store import writer

    o = GenerateOptions(out=tmp_path / "f.zarr", n=24, shard_size=4, batch_size=4, spacing=8.0, device="cpu")
    info, spec, staged = prepare_store(o, lambda m: None)
    writer.install_store(staged, o.out, overwrite=False)
    job = ShardJob(str(o.out), spec, 4, "cpu", o.qc)
    seen = []
    get = LocalStore.get

    async def spy(self, key, *args, **kwargs):
        seen.append(key)
        return await get(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", spy)
    assert not run_shard(2, job)["skipped"]
    assert run_shard(2, job)["skipped"]  # done now
    assert {k for k in seen if k.startswith("shard_done/c/")} == {"shard_done/c/2"}
    assert info.n_shards == 6


class Flaky:
    """A generator whose first attempt fails QC (NaN) for small seeds divisible by 3, or always (all black)."""

    kind = "flaky"
    condition_names = ()

    def __init__(self, always=False):
        self.always = always
        self.calls = 0

    def sample(self, n, *, seeds, conditions=None, device="cpu"):
        self.calls += 1
        imgs = np.stack([np.random.default_rng(s).random((6, 6, 6)).astype(np.float32) for s in seeds])
        imgs[:, :3] = 0  # half background, so the foreground fraction is plausible
        for i, s in enumerate(seeds):
            if self.always:
                imgs[i] = 0
            elif s < 100 and s % 3 == 0:  # plan seeds here are small; derived retry seeds are huge
                imgs[i, 0, 0, 0] = np.nan
        return Samples(imgs, None, {"m": np.asarray(seeds, float)})


def test_qc_regenerates_from_derived_seeds():
    g = Flaky()
    s, attempts, passed = generate_with_qc(g, [3, 4, 6], {}, batch_size=2, device="cpu", qc=QCConfig())
    assert passed.all() and np.isfinite(s.images).all()
    assert attempts[1] == 1 and attempts[0] >= 2 and attempts[2] >= 2
    assert s.measures["m"][0] != 3  # the measure follows the regenerated sample


def test_qc_gives_up_after_max_retries_and_records_it():
    s, attempts, passed = generate_with_qc(
        Flaky(always=True), [1, 2], {}, batch_size=2, device="cpu", qc=QCConfig(max_retries=2)
    )
    assert not passed.any() and list(attempts) == [3, 3]


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((8, 8, 8)), "foreground"),
        (np.ones((8, 8, 8)) * 0.5, "foreground"),
        (np.full((8, 8, 8), 2.0), "outside"),
    ],
)
def test_qc_reasons(image, reason):
    assert reason in QCConfig().check(image.astype(np.float32))
