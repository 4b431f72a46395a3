"""Where generation runs: a LocalCluster, a running scheduler, or SLURM through dask-jobqueue."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from pydantic import Field

from synthkit.config import Strict, read_yaml, validate
from synthkit.errors import UsageError


class SlurmConfig(Strict):
    """``recipes/cluster-slurm.yaml``: dask-jobqueue ``SLURMCluster`` settings plus the number of jobs."""

    kind: str = "slurm"
    jobs: int = Field(1, ge=1)  # jobs to start; each runs `processes` workers
    cores: int = Field(4, ge=1)
    memory: str = "32GB"
    processes: int = Field(1, ge=1)
    walltime: str = "02:00:00"
    queue: str | None = None
    account: str | None = None
    job_extra_directives: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    local_directory: str | None = None
    log_directory: str | None = None
    python: str | None = None


def load_cluster_config(path: str | Path) -> SlurmConfig:
    return validate(SlurmConfig, read_yaml(Path(path)), path)


def slurm_cluster(cfg: SlurmConfig) -> Any:
    """A (not yet scaled) ``dask_jobqueue.SLURMCluster`` from a config; ``.job_script()`` shows the batch file."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise UsageError("--cluster slurm needs dask-jobqueue: pip install 'synthkit[cluster]'") from None
    kw = cfg.model_dump(exclude={"kind", "jobs"}, exclude_none=True)
    return SLURMCluster(**kw)


def _local_worker_environ(workers: int) -> None:
    """Spawn local workers with the machine's cores shared among them and without distributed's
    ``MALLOC_TRIM_THRESHOLD_=65536``.

    Threads: distributed starts every worker with ``OMP_NUM_THREADS=1``; one worker on a 2-core machine then
    sampled the demo LDM at 0.6 samples/s where one plain process reached 1.4. Each worker gets
    ``cores // workers`` threads instead (still one task at a time).

    Setting the malloc variable turns off glibc's dynamic mmap threshold, so every array above 128 KB is mmap'd
    and page-faulted afresh: measured here, phantom sampling ran ~20 % slower in a worker than in a plain
    process (9.0–9.7 vs 11.7 samples/s), and as fast once the variable was left unset (11.3).

    The workers' statistical profiler is off: its call-tree records grew the worker by ~100 kB per shard of
    32 phantoms at 8 mm (RSS +5–8 MB over 2,000 samples; +1.6 MB without it, benchmarks/bench_worker_rss.py).
    The system monitor's, the worker log's and the state machine's histories are shortened: they fill slowly
    over a long run (growth over 20,000 samples 11.8 → 7.7 MB for the first two; benchmarks/RESULTS.md).
    """
    import os

    import dask

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = str(max(1, cores // workers))
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    env.update({k: threads for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ": env,
            "distributed.worker.profile.enabled": False,
            # bounded histories a long run fills slowly: the system monitor keeps 7,200 samples (an hour at 2 per
            # second) and the worker log 10,000 entries by default
            "distributed.admin.system-monitor.log-length": 120,
            "distributed.admin.log-length": 1000,
            # the worker state machine's transition and stimulus logs (developers' debugging aids): three
            # entries per task, 1,000 each by default, so they filled over the first ~330 shards of a run
            "distributed.admin.low-level-log-length": 100,
        }
    )


def check_cluster(cluster: str, cluster_config: str | Path | None) -> None:
    """Validate ``--cluster``/``--cluster-config`` without starting anything."""
    if cluster == "local" or cluster.startswith("tcp://"):
        if cluster_config is not None:
            raise UsageError("--cluster-config applies to --cluster slurm only")
    elif cluster == "slurm":
        if cluster_config is None:
            raise UsageError("--cluster slurm needs --cluster-config YAML (see recipes/cluster-slurm.yaml)")
        load_cluster_config(cluster_config)
    else:
        raise UsageError(f"--cluster {cluster!r}: expected local, tcp://HOST:PORT or slurm")


def connect(
    cluster: str, *, workers: int, cluster_config: str | Path | None = None, timeout: str = "20s"
) -> tuple[Any, Any, str]:
    """Start or reach a dask cluster; returns ``(client, cluster_or_None, description)``."""
    from dask.distributed import Client, LocalCluster

    check_cluster(cluster, cluster_config)
    if cluster == "local":
        _local_worker_environ(workers)
        with warnings.catch_warnings():  # the scheduler's HTTP port taken by another cluster: it picks another
            warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
            lc = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        return Client(lc), lc, f"local cluster, {workers} worker process(es)"
    if cluster.startswith("tcp://"):
        try:
            client = Client(cluster, timeout=timeout)
        except OSError as e:
            raise UsageError(f"--cluster {cluster}: cannot reach the scheduler ({e})") from None
        n = len(client.scheduler_info().get("workers", {}))
        return client, None, f"scheduler {cluster} ({n} workers now)"
    if cluster == "slurm":
        cfg = load_cluster_config(cluster_config)  # type: ignore[arg-type]
        sc = slurm_cluster(cfg)
        sc.scale(jobs=cfg.jobs)
        return Client(sc), sc, f"SLURM, {cfg.jobs} job(s) × {cfg.processes} worker(s)"
    raise AssertionError(cluster)  # check_cluster covers every other case
