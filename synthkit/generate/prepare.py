"""Before any shard runs: check a store for ``--resume``, or plan a new one and write it aside."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from synthkit.config import sampling_flag
from synthkit.errors import StoreError, UsageError
from synthkit.generate.checkpoint import load_checked, probe_sample
from synthkit.generate.options import GenerateOptions, ModelSpec
from synthkit.generate.plan import ConditionSpec, check_n, make_plan, read_conditions_csv
from synthkit.models.registry import with_sampling
from synthkit.store import writer
from synthkit.store.format import StoreInfo
from synthkit.store.reader import open_store


def prepare_store(
    opts: GenerateOptions, echo: Callable[[str], None] = print
) -> tuple[StoreInfo, ModelSpec, Path | None]:
    """Check the store for ``--resume``, or write a new one with its plan aside (not yet at ``opts.out``: see
    :func:`synthkit.store.writer.install_store`). Returns its info, the model spec and the staged folder (None
    when resuming). ``--resume`` where no store exists yet creates it."""
    if opts.resume and opts.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if opts.resume and (opts.out.exists() or opts.out.is_symlink()):
        return (*_resume_store(opts), None)
    if opts.resume and opts.n is None and opts.conditions_csv is None:
        raise UsageError(
            f"--resume: there is no store at {opts.out} (to start it, give the --n and options it was planned with)"
        )
    if opts.resume:
        echo(f"note: no store at {opts.out} yet; creating it")
    try:
        writer.check_target(opts.out, overwrite=opts.overwrite)
    except StoreError as e:
        raise UsageError(str(e)) from None
    model = opts.model or "phantom"
    if opts.n is not None:
        check_n(opts.n)
    if opts.spacing is not None and not (math.isfinite(opts.spacing) and 0.25 <= opts.spacing <= 16):
        raise UsageError(f"--spacing {opts.spacing}: expected a voxel size from 0.25 to 16 mm")
    if opts.shard_size < 1 or opts.batch_size < 1 or opts.workers < 1:
        raise UsageError("--shard-size, --batch-size and --workers must be at least 1")
    if opts.dtype not in ("float16", "uint8"):
        raise UsageError(f"--dtype {opts.dtype!r}: expected float16 or uint8")
    if opts.codec not in ("zstd", "lz4"):
        raise UsageError(f"--codec {opts.codec!r}: expected zstd or lz4")
    given = opts.sampling_overrides()
    spec = ModelSpec(
        model=str(Path(model).resolve()) if model != "phantom" else "phantom",
        spacing=opts.spacing,
        sampling=tuple(sorted(given.items())),
    )
    gen = with_sampling(load_checked(spec.model, spacing=spec.spacing, device="cpu"), given, spec.model)
    categories = dict(getattr(gen, "categories", None) or {})
    specs = [ConditionSpec.parse(s, categories) for s in opts.condition_specs]
    if opts.conditions_csv is not None and specs:
        raise UsageError("--conditions and --condition exclude each other")
    table = (
        read_conditions_csv(opts.conditions_csv, gen.condition_names, opts.n, categories)
        if opts.conditions_csv
        else None
    )
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
        categories=categories,
    )
    probe = probe_sample(gen, spec.model, int(plan.seeds[0]), {k: v[:1] for k, v in plan.conditions.items()})
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
        generator={**gen.describe(), "model": spec.model, "spacing": spec.spacing, "sampling_given": given},
        qc=asdict(opts.qc),
        versions=_versions(),
    )
    try:
        staged = writer.stage_store(
            opts.out, info, conditions=plan.conditions, seeds=plan.seeds, extrapolated=plan.extrapolated
        )
    except StoreError as e:
        raise UsageError(str(e)) from None
    if plan.extrapolated.any():
        echo(
            f"note: {int(plan.extrapolated.sum())} samples request conditions outside the model's training range "
            "(meta/extrapolated)"
        )
    return info, spec, staged


def _resume_store(opts: GenerateOptions) -> tuple[StoreInfo, ModelSpec]:
    if not writer.is_store(opts.out):
        raise UsageError(f"--resume: {opts.out} is not a synthkit store")
    _, info = open_store(opts.out)
    stored = info.generator
    given = dict(stored.get("sampling_given") or {})
    spec = ModelSpec(model=stored["model"], spacing=stored.get("spacing"), sampling=tuple(sorted(given.items())))
    _check_resume(opts, info, spec)
    if stored.get("checkpoint_sha256"):
        from synthkit.models.base import file_sha256

        if not Path(spec.model).exists() or file_sha256(spec.model) != stored["checkpoint_sha256"]:
            raise StoreError(f"--resume: checkpoint {spec.model} is missing or changed since the store was created")
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
    used = info.generator.get("sampling") or {}
    for name, value in opts.sampling_overrides().items():
        if used.get(name) != value:
            clashes.append(f"{sampling_flag(name)} {value} (store: {used.get(name, 'none')})")
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
