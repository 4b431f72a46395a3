"""``synthkit generate``: plan → store → one dask task per shard → QC → write shard → mark done.

Determinism: sample ``i`` depends only on ``(root_seed, i)`` (its seed, plus derived retry seeds), so worker
count, batch size and interruptions never change a byte (on CPU). ``resume`` runs only the shards whose
``shard_done`` flag is false. Each worker loads the model once (a per-process cache).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthkit.errors import StoreError, SynthkitError, UsageError
from synthkit.generate.options import GenerateOptions, GenerateResult, ModelSpec, QCConfig
from synthkit.generate.prepare import prepare_store
from synthkit.generate.progress import Progress
from synthkit.models.base import Generator, Samples
from synthkit.models.registry import load_generator, with_sampling
from synthkit.seeding import retry_seed
from synthkit.store import claims, writer
from synthkit.store.format import StoreInfo
from synthkit.store.reader import is_shard_done, open_store, read_whole, shard_done

_MODELS: dict[tuple[Any, ...], Generator] = {}


def _worker_model(spec: ModelSpec, device: str) -> Generator:
    """The model, loaded once per worker process."""
    key = (*spec.key(), device)
    if key not in _MODELS:
        gen = load_generator(spec.model, spacing=spec.spacing, device=device)
        _MODELS[key] = with_sampling(gen, dict(spec.sampling), spec.model)
    return _MODELS[key]


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device {device!r}: expected auto, cpu or cuda")
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return device


def _worker_device(device: str) -> str:
    """One GPU per worker: worker k of a LocalCluster takes GPU k mod the number of GPUs."""
    if device != "cuda":
        return device
    import torch

    try:
        from dask.distributed import get_worker

        name = get_worker().name
        k = int(name) if str(name).isdigit() else abs(hash(name))
    except (ValueError, ImportError):
        k = 0
    return f"cuda:{k % max(1, torch.cuda.device_count())}"


def generate_with_qc(
    gen: Generator,
    seeds: Sequence[int],
    conditions: dict[str, np.ndarray],
    *,
    batch_size: int,
    device: str,
    qc: QCConfig,
) -> tuple[Samples, np.ndarray, np.ndarray]:
    """Sample in batches, then regenerate each implausible sample from its retry seeds.

    Returns the samples, attempts per sample (1 = first try passed) and whether each finally passed.
    """
    n = len(seeds)
    parts = []
    for a in range(0, n, batch_size):
        b = min(a + batch_size, n)
        parts.append(
            gen.sample(
                b - a,
                seeds=list(seeds[a:b]),
                conditions={k: v[a:b] for k, v in conditions.items()},
                device=device,
            )
        )
    images = np.concatenate([p.images for p in parts])
    labels = None if parts[0].labels is None else np.concatenate([p.labels for p in parts])  # type: ignore[misc]
    measures = {k: np.concatenate([p.measures[k] for p in parts]) for k in parts[0].measures}
    attempts = np.ones(n, dtype=np.uint8)
    passed = np.ones(n, dtype=bool)
    centre = float(getattr(gen, "image_centre", 0.0))
    for i in range(n):
        attempt = 0
        while qc.check(images[i], {k: float(v[i]) for k, v in measures.items()}, centre) is not None:
            if attempt >= qc.max_retries:
                passed[i] = False
                break
            attempt += 1
            redo = gen.sample(
                1,
                seeds=[retry_seed(int(seeds[i]), attempt)],
                conditions={k: v[i : i + 1] for k, v in conditions.items()},
                device=device,
            )
            images[i] = redo.images[0]
            if labels is not None and redo.labels is not None:
                labels[i] = redo.labels[0]
            for k in measures:
                measures[k][i] = redo.measures[k][0]
        attempts[i] = attempt + 1
    return Samples(images=images, labels=labels, measures=measures), attempts, passed


@dataclass(frozen=True)
class ShardJob:
    """Everything a task needs besides the shard index (small and picklable)."""

    store: str
    spec: ModelSpec
    batch_size: int
    device: str
    qc: QCConfig


def warm_worker(spec: ModelSpec, device: str) -> str:
    """Load the model into this worker's cache (run on every worker before any task)."""
    device = _worker_device(device)
    gen = _worker_model(spec, device)
    ranges = gen.covariates.ranges() if getattr(gen, "covariates", None) is not None else {}
    if all(name in ranges for name in gen.condition_names):  # a first call pays one-off costs (templates, kernels)
        mid = {name: np.array([0.5 * sum(ranges[name])]) for name in gen.condition_names}
        if "sex" in mid:
            mid["sex"] = np.array([1.0])
        gen.sample(1, seeds=[0], conditions=mid, device=device)
    return device


def run_shard_reporting(shard: int, job: ShardJob) -> dict[str, Any]:
    """:func:`run_shard`, with a failure returned as ``{"error": ...}`` instead of raised: the client then stops
    the run and says it once, where a raising task would log a "Compute Failed" traceback on every worker."""
    try:
        return run_shard(shard, job)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0][:300]
        return {"shard": shard, "error": f"{type(e).__name__}: {first}"}


def run_shard(shard: int, job: ShardJob) -> dict[str, Any]:
    """One dask task: claim the shard, generate, QC and write it whole, mark it done, release the claim.
    Skipped when the shard is done, or claimed by another live run (``claimed_by``: that run's pid and host)."""
    t0 = time.perf_counter()
    store = job.store
    root, info = open_store(store)
    skipped = {"shard": shard, "n": 0, "skipped": True, "seconds": 0.0, "failed_qc": 0}
    if is_shard_done(root, shard):
        return skipped
    other = claims.claim(store, shard)
    if other is not None:
        return {**skipped, "claimed_by": other}
    try:
        if is_shard_done(root, shard):  # finished by another run between the check and the claim
            return skipped
        failed = _generate_shard(shard, job, info, root)
    finally:
        claims.release(store, shard)
    a, b = info.shard_range(shard)
    return {
        "shard": shard,
        "n": b - a,
        "skipped": False,
        "seconds": time.perf_counter() - t0,
        "failed_qc": failed,
        "pid": os.getpid(),
    }


def _generate_shard(shard: int, job: ShardJob, info: StoreInfo, root: Any) -> int:
    """Generate, QC and write one shard; returns how many samples failed QC."""
    store, spec, device = job.store, job.spec, job.device
    a, b = info.shard_range(shard)
    meta = root["meta"]
    seeds = [int(s) for s in meta["seed"][a:b]]
    conditions = {name: np.asarray(meta[name][a:b], dtype=np.float64) for name in info.condition_names}
    device = _worker_device(device)
    gen = _worker_model(spec, device)
    samples, attempts, passed = generate_with_qc(
        gen, seeds, conditions, batch_size=job.batch_size, device=device, qc=job.qc
    )
    writer.write_shard(
        store,
        info,
        shard,
        images=samples.images,
        labels=samples.labels if info.has_labels else None,
        qc_attempts=attempts,
        qc_pass=passed,
        measures=samples.measures,
    )
    return int((~passed).sum())


def run(
    opts: GenerateOptions,
    *,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> GenerateResult:
    """Plan (or resume), reach the cluster, put a new store in place, run every unfinished shard on dask,
    consolidate. A new store replaces ``opts.out`` only once its plan is written and the cluster is reachable;
    Ctrl-C leaves a resumable store."""
    from synthkit.generate.cluster import check_cluster

    t0 = time.perf_counter()
    device = resolve_device(opts.device)  # every check of what the user typed comes before the store exists
    check_cluster(opts.cluster, opts.cluster_config)
    info, spec, staged = prepare_store(opts, echo)
    conn = None
    try:
        pending = list(range(info.n_shards)) if staged else [int(k) for k in np.flatnonzero(~_flags(opts.out))]
        kind = info.generator.get("kind", "?")
        where = info.space.describe()
        what = f"built-in phantom, {where}" if spec.model == "phantom" else f"{kind}, {where}"
        echo(
            f"model: {spec.model} ({what}); "
            f"{info.n} samples in {info.n_shards} shards of {info.shard_size}; {len(pending)} shard(s) to run"
        )
        conn = _connect(opts, echo, device) if pending else None
        if staged is not None:
            writer.install_store(staged, opts.out, overwrite=opts.overwrite)
    except BaseException as e:
        writer.discard_staged(staged)
        if conn is not None:
            _close(conn)
        if isinstance(e, StoreError) and staged is not None:
            raise UsageError(str(e)) from None
        raise
    ran = _run_pending(conn, opts, info, spec, device, pending, progress) if conn else (0, 0.0, 0)
    failed_qc, gen_seconds, written = ran
    if not _flags(opts.out).all():
        raise StoreError(f"{opts.out}: some shards are still unwritten; continue with --resume")
    claims.clear(opts.out)
    writer.consolidate(opts.out)
    root, _ = open_store(opts.out)
    extrap = int(read_whole(root, "meta/extrapolated").sum())
    return GenerateResult(
        store=opts.out,
        n=info.n,
        shards_run=len(pending),
        shards_total=info.n_shards,
        seconds=time.perf_counter() - t0,
        failed_qc=failed_qc,
        generator=kind,
        extrapolated=extrap,
        generation_seconds=gen_seconds,
        shards_written=written,
    )


def _flags(store: Path) -> np.ndarray:
    root, _ = open_store(store)
    return shard_done(root)


def _connect(opts: GenerateOptions, echo: Callable[[str], None], device: str) -> tuple[Any, Any]:
    from synthkit.generate.cluster import connect

    client, cluster, where = connect(opts.cluster, workers=opts.workers, cluster_config=opts.cluster_config)
    echo(f"running on {where}, device {device}")
    return client, cluster


def _close(conn: tuple[Any, Any]) -> None:
    client, cluster = conn
    client.close()
    if cluster is not None:
        cluster.close()


def _run_pending(
    conn: tuple[Any, Any],
    opts: GenerateOptions,
    info: StoreInfo,
    spec: ModelSpec,
    device: str,
    pending: list[int],
    progress: bool,
) -> tuple[int, float, int]:
    """Run the pending shards on the cluster, then wait for those another run has claimed (taking over any
    whose claim goes stale). Returns (samples that failed QC, seconds of generation, shards this run wrote)."""
    client, _ = conn
    futures: list[Any] = []
    stats = {"failed_qc": 0, "written": 0}
    try:
        client.wait_for_workers(1, timeout=600)
        client.run(warm_worker, spec, device)  # workers that join later load the model on first use
        job = ShardJob(str(opts.out), spec, opts.batch_size, device, opts.qc)
        t_submit = time.perf_counter()
        futures = client.map(run_shard_reporting, pending, job=job, pure=False)
        done_samples = info.n - sum(b - a for a, b in map(info.shard_range, pending))
        with Progress(progress) as bar:
            task = bar.add_task("generating", total=info.n, completed=done_samples, start=done_samples)
            claimed = _collect(futures, opts, stats, lambda n: bar.update(task, advance=n))
            while claimed:  # shards another live run is writing
                time.sleep(0.5)
                done = _flags(opts.out)
                for k in [k for k in claimed if done[k]]:
                    claimed.remove(k)
                    a, b = info.shard_range(k)
                    bar.update(task, advance=b - a)
                stale = [k for k in claimed if not claims.is_live(claims.owner(opts.out, k))]
                if stale:
                    claimed -= set(stale)
                    futures = client.map(run_shard_reporting, stale, job=job, pure=False)
                    claimed |= _collect(futures, opts, stats, lambda n: bar.update(task, advance=n))
        return stats["failed_qc"], time.perf_counter() - t_submit, stats["written"]
    except KeyboardInterrupt:
        client.cancel(futures)
        raise SynthkitError(
            f"interrupted; finished shards are kept — continue with: synthkit generate --out {opts.out} --resume"
        ) from None
    except Exception as e:
        client.cancel(futures)
        if isinstance(e, SynthkitError):
            raise
        raise SynthkitError(
            f"a generation task failed ({type(e).__name__}: {e}); finished shards are kept, continue with --resume"
        ) from None
    finally:
        _close(conn)


def _collect(futures: list[Any], opts: GenerateOptions, stats: dict[str, int], advance: Callable[[int], Any]) -> set:
    """Wait for shard tasks; the first failure stops the run with one line. Returns the shards claimed by
    another run."""
    from dask.distributed import as_completed

    claimed = set()
    for fut in as_completed(futures):
        result = fut.result()
        fut.release()  # else the worker keeps every finished task (its arguments, state and result) to the end
        if "error" in result:
            raise SynthkitError(
                f"shard {result['shard']} failed ({result['error']}); finished shards are kept, "
                f"continue with: synthkit generate --out {opts.out} --resume"
            )
        if "claimed_by" in result:
            claimed.add(result["shard"])
            continue
        stats["failed_qc"] += result["failed_qc"]
        stats["written"] += 0 if result["skipped"] else 1
        advance(result["n"])
    return claimed
