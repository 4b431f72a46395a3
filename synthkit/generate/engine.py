"""``synthkit generate``: plan → store → one dask task per shard → QC → write shard → mark done.

Determinism: sample ``i`` depends only on ``(root_seed, i)`` (its seed, plus derived retry seeds), so worker
count, batch size and interruptions never change a byte (on CPU). ``resume`` runs only the shards whose
``shard_done`` flag is false. Each worker loads the model once (a per-process cache).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthkit.errors import StoreError, SynthkitError, UsageError
from synthkit.generate.plan import ConditionSpec, make_plan, read_conditions_csv
from synthkit.models.base import Generator, Samples
from synthkit.models.registry import load_generator
from synthkit.seeding import retry_seed
from synthkit.store import writer
from synthkit.store.format import StoreInfo
from synthkit.store.reader import open_store, shard_done


@dataclass(frozen=True)
class QCConfig:
    """What makes a sample implausible; failing ones are regenerated from derived retry seeds."""

    max_retries: int = 3
    foreground_threshold: float = 0.05  # a voxel above this intensity is foreground
    min_foreground: float = 0.02  # fraction of the volume
    max_foreground: float = 0.95
    min_std: float = 1e-3  # a constant image is implausible

    def check(self, image: np.ndarray) -> str | None:
        """None if plausible, else the reason."""
        if not np.all(np.isfinite(image)):
            return "non-finite voxels"
        if image.min() < -0.01 or image.max() > 1.01:
            return f"intensities outside [0, 1] ({image.min():.3g}..{image.max():.3g})"
        fg = float(np.mean(image > self.foreground_threshold))
        if not self.min_foreground <= fg <= self.max_foreground:
            return f"foreground fraction {fg:.3f} outside [{self.min_foreground}, {self.max_foreground}]"
        if float(image.std()) < self.min_std:
            return "nearly constant image"
        return None


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the model: picklable and small."""

    model: str
    spacing: float | None = None

    def key(self) -> tuple[str, float | None]:
        return (self.model, self.spacing)


_MODELS: dict[tuple[Any, ...], Generator] = {}


def _worker_model(spec: ModelSpec, device: str) -> Generator:
    """The model, loaded once per worker process."""
    key = (*spec.key(), device)
    if key not in _MODELS:
        _MODELS[key] = load_generator(spec.model, spacing=spec.spacing, device=device)
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
    for i in range(n):
        attempt = 0
        while qc.check(images[i]) is not None:
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


def run_shard(shard: int, job: ShardJob) -> dict[str, Any]:
    """One dask task: generate, QC and write one whole shard, then mark it done (skipped if already done)."""
    t0 = time.perf_counter()
    store, spec, device = job.store, job.spec, job.device
    root, info = open_store(store)
    if shard_done(root)[shard]:
        return {"shard": shard, "n": 0, "skipped": True, "seconds": 0.0, "failed_qc": 0}
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
    return {
        "shard": shard,
        "n": b - a,
        "skipped": False,
        "seconds": time.perf_counter() - t0,
        "failed_qc": int((~passed).sum()),
        "pid": os.getpid(),
    }


@dataclass
class GenerateOptions:
    out: Path
    model: str | None = None
    n: int | None = None
    shard_size: int = 32
    batch_size: int = 8
    seed: int = 0
    workers: int = 1
    device: str = "auto"
    cluster: str = "local"
    cluster_config: Path | None = None
    resume: bool = False
    overwrite: bool = False
    dtype: str = "float16"
    codec: str = "zstd"
    spacing: float | None = None
    conditions_csv: Path | None = None
    condition_specs: list[str] = field(default_factory=list)
    qc: QCConfig = field(default_factory=QCConfig)


@dataclass
class GenerateResult:
    store: Path
    n: int
    shards_run: int
    shards_total: int
    seconds: float
    failed_qc: int
    generator: str
    extrapolated: int
    #: seconds from the first task's submission to the last one's completion (no planning, no cluster start)
    generation_seconds: float = 0.0


def prepare_store(opts: GenerateOptions, echo: Callable[[str], None] = print) -> tuple[StoreInfo, ModelSpec]:
    """Create the store with its plan (or check it for ``--resume``); returns its info and the model spec."""
    if opts.resume and opts.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if opts.resume:
        if not writer.is_store(opts.out):
            raise UsageError(f"--resume: {opts.out} is not a synthkit store")
        _, info = open_store(opts.out)
        stored = info.generator
        spec = ModelSpec(model=stored["model"], spacing=stored.get("spacing"))
        _check_resume(opts, info, spec)
        if stored.get("checkpoint_sha256"):
            from synthkit.models.base import file_sha256

            if not Path(spec.model).exists() or file_sha256(spec.model) != stored["checkpoint_sha256"]:
                raise StoreError(f"--resume: checkpoint {spec.model} is missing or changed since the store was created")
        return info, spec

    model = opts.model or "phantom"
    if opts.shard_size < 1 or opts.batch_size < 1 or opts.workers < 1:
        raise UsageError("--shard-size, --batch-size and --workers must be at least 1")
    if opts.dtype not in ("float16", "uint8"):
        raise UsageError(f"--dtype {opts.dtype!r}: expected float16 or uint8")
    if opts.codec not in ("zstd", "lz4"):
        raise UsageError(f"--codec {opts.codec!r}: expected zstd or lz4")
    if opts.out.exists() and not opts.overwrite:
        raise UsageError(f"{opts.out} already exists; use --resume to finish it or --overwrite to replace it")
    spec = ModelSpec(model=str(Path(model).resolve()) if model != "phantom" else "phantom", spacing=opts.spacing)
    gen = load_generator(spec.model, spacing=spec.spacing, device="cpu")
    specs = [ConditionSpec.parse(s) for s in opts.condition_specs]
    if opts.conditions_csv is not None and specs:
        raise UsageError("--conditions and --condition exclude each other")
    table = read_conditions_csv(opts.conditions_csv, gen.condition_names, opts.n) if opts.conditions_csv else None
    n = opts.n if opts.n is not None else (len(next(iter(table.values()))) if table else None)
    if n is None:
        raise UsageError("--n is required (or give --conditions CSV, one row per sample)")
    plan = make_plan(
        n,
        opts.seed,
        condition_names=gen.condition_names,
        distribution=getattr(gen, "covariates", None),
        specs=specs,
        table=table,
    )
    probe = gen.sample(1, seeds=[int(plan.seeds[0])], conditions={k: v[:1] for k, v in plan.conditions.items()})
    info = StoreInfo(
        space=gen.space,
        n=n,
        shard_size=min(opts.shard_size, n),
        dtype=opts.dtype,
        codec=opts.codec,
        root_seed=opts.seed,
        condition_names=plan.condition_names,
        measure_names=sorted(probe.measures),
        has_labels=probe.labels is not None,
        generator={**gen.describe(), "model": spec.model, "spacing": spec.spacing},
        qc=asdict(opts.qc),
        versions=_versions(),
    )
    try:
        writer.create_store(
            opts.out,
            info,
            conditions=plan.conditions,
            seeds=plan.seeds,
            extrapolated=plan.extrapolated,
            overwrite=opts.overwrite,
        )
    except StoreError as e:
        raise UsageError(str(e)) from None
    if plan.extrapolated.any():
        echo(
            f"note: {int(plan.extrapolated.sum())} samples request conditions outside the model's training range "
            "(meta/extrapolated)"
        )
    return info, spec


def _check_resume(opts: GenerateOptions, info: StoreInfo, spec: ModelSpec) -> None:
    clashes = []
    if opts.n is not None and opts.n != info.n:
        clashes.append(f"--n {opts.n} (store: {info.n})")
    if opts.model is not None and opts.model != "phantom" and str(Path(opts.model).resolve()) != spec.model:
        clashes.append(f"--model {opts.model} (store: {spec.model})")
    if opts.model == "phantom" and spec.model != "phantom":
        clashes.append(f"--model phantom (store: {spec.model})")
    if opts.spacing is not None and opts.spacing != spec.spacing:
        clashes.append(f"--spacing {opts.spacing} (store: {spec.spacing})")
    if opts.condition_specs or opts.conditions_csv:
        clashes.append("conditions (a store's plan is fixed at creation)")
    if clashes:
        raise UsageError("--resume continues the store as it was planned; these differ: " + "; ".join(clashes))


def _versions() -> dict[str, str]:
    import dask
    import numpy
    import zarr

    from synthkit.version import __version__

    v = {
        "synthkit": __version__,
        "numpy": numpy.__version__,
        "zarr": zarr.__version__,
        "dask": dask.__version__,
    }
    try:
        import torch

        v["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return v


def run(
    opts: GenerateOptions,
    *,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> GenerateResult:
    """Plan (or resume), run every unfinished shard on dask, consolidate. Ctrl-C leaves a resumable store."""
    from dask.distributed import as_completed

    from synthkit.generate.cluster import check_cluster, connect

    t0 = time.perf_counter()
    device = resolve_device(opts.device)  # every check of what the user typed comes before the store exists
    check_cluster(opts.cluster, opts.cluster_config)
    info, spec = prepare_store(opts, echo)
    root, _ = open_store(opts.out)
    pending = [int(k) for k in np.flatnonzero(~shard_done(root))]
    total = info.n_shards
    kind = info.generator.get("kind", "?")
    what = (
        f"built-in phantom, {info.space.describe()}" if spec.model == "phantom" else f"{kind}, {info.space.describe()}"
    )
    echo(
        f"model: {spec.model} ({what}); "
        f"{info.n} samples in {total} shards of {info.shard_size}; {len(pending)} shard(s) to run"
    )
    failed_qc = 0
    gen_seconds = 0.0
    if pending:
        client, cluster, where = connect(opts.cluster, workers=opts.workers, cluster_config=opts.cluster_config)
        echo(f"running on {where}, device {device}")
        futures = []
        try:
            client.wait_for_workers(1, timeout=600)
            client.run(warm_worker, spec, device)  # workers that join later load the model on first use
            job = ShardJob(str(opts.out), spec, opts.batch_size, device, opts.qc)
            t_submit = time.perf_counter()
            futures = client.map(run_shard, pending, job=job, pure=False, retries=2)
            done_samples = sum(
                info.shard_range(k)[1] - info.shard_range(k)[0] for k in range(total) if k not in pending
            )
            with _progress(progress) as bar:
                task = bar.add_task("generating", total=info.n, completed=done_samples, start=done_samples)
                for fut in as_completed(futures):
                    result = fut.result()
                    failed_qc += result["failed_qc"]
                    bar.update(task, advance=result["n"])
            gen_seconds = time.perf_counter() - t_submit
        except KeyboardInterrupt:
            client.cancel(futures)
            raise SynthkitError(
                f"interrupted; finished shards are kept — continue with: synthkit generate --out {opts.out} --resume"
            ) from None
        except Exception as e:
            if isinstance(e, SynthkitError):
                raise
            raise SynthkitError(
                f"a generation task failed ({type(e).__name__}: {e}); finished shards are kept, continue with --resume"
            ) from None
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    root, _ = open_store(opts.out)
    if not shard_done(root).all():
        raise StoreError(f"{opts.out}: some shards are still unwritten; continue with --resume")
    writer.consolidate(opts.out)
    extrap = int(np.asarray(root["meta"]["extrapolated"][:]).sum())
    return GenerateResult(
        store=opts.out,
        n=info.n,
        shards_run=len(pending),
        shards_total=total,
        seconds=time.perf_counter() - t0,
        failed_qc=failed_qc,
        generator=kind,
        extrapolated=extrap,
        generation_seconds=gen_seconds,
    )


class _progress:
    """A rich progress bar with samples/s and ETA (or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return _NoBar()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Speed(ProgressColumn):
            def render(self, task: Any) -> Text:  # average since the start: shards finish in bursts
                done = task.completed - task.fields.get("start", 0)
                speed = done / task.elapsed if task.elapsed and done > 0 else None
                return Text(f"{speed:6.2f} samples/s" if speed else "   ... samples/s")

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            Speed(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.bar.__enter__()
        return self.bar

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)


class _NoBar:
    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def update(self, *a: Any, **k: Any) -> None:
        pass
