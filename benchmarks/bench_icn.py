"""ICN benchmark: one model for all 13 networks of the ICN phantom, trained within a time budget (JSON lines).

1. ``synthkit phantom --kind icn``: ``--n`` subjects × 13 Seitzman et al. 2018 networks at ``--spacing`` mm;
2. a short probe measures seconds per training step on this machine and ``recipes/demo-icn.yaml`` (3D) or its
   2D form (``--dims 2``: axial slices, ``slice_z`` a condition) gets the steps that fill ``--minutes``;
3. ``synthkit generate``: ``--per-network`` samples of every network (every network in turn);
4. ``synthkit audit`` against every phantom map: the ICN section's network-identity top-1 accuracy (templates:
   mean real maps of reference half A) beside real half B's, and the paper's MS-SSIM / MSE / PSNR of each
   generated map against real maps of its network beside real-vs-real (papers/ddpm-fmri-icn.txt: 0.74 /
   0.001 / 26.37 dB on UK Biobank); variance heatmaps and the confusion matrix as figures in the audit folder.

Usage: ``python benchmarks/bench_icn.py [--minutes 30 | --steps N] [--dims 3 2] [--n 40] [--threads 1] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBE_STEPS = 6


def seconds_per_step(recipe: dict, workdir: Path, threads: int) -> float:
    """Seconds per training step, from a probe of PROBE_STEPS steps between a warm-up step and the last one."""
    from synthkit.training.run import train

    probe = json.loads(json.dumps(recipe))
    # the last step validates, previews and saves a checkpoint: it is run but not timed
    probe["training"].update(
        steps=PROBE_STEPS + 2, val_every=10**6, preview_every=10**6, checkpoint_every=10**6, log_every=1
    )
    path = workdir / "probe.yaml"
    path.write_text(yaml.safe_dump(probe, sort_keys=False))
    out = workdir / "probe"
    shutil.rmtree(out, ignore_errors=True)
    train(path, out=out, device="cpu", progress=False, echo=lambda m: None, threads=threads)
    import csv

    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("seconds") not in (None, "")]
    t = {int(r["step"]): float(r["seconds"]) for r in rows}
    shutil.rmtree(out, ignore_errors=True)
    return (t[PROBE_STEPS + 1] - t[1]) / PROBE_STEPS


def make_recipe(
    dims: int,
    manifest: Path,
    sampling_steps: int,
    guidance: float = 1.0,
    base: Path = ROOT / "recipes" / "demo-icn.yaml",
) -> dict:
    recipe = yaml.safe_load(base.read_text())
    recipe["data"]["manifest"] = str(manifest.resolve())
    recipe["training"].update(val_every=10**6, preview_every=10**6, checkpoint_every=10**6, log_every=20)
    recipe["sampling"]["steps"] = sampling_steps
    recipe["sampling"]["guidance_scale"] = guidance
    if dims == 2:
        x, y, z = recipe["space"]["shape"]
        recipe.update(name="bench-icn-2d", icn={"depth": z})
        recipe["space"]["shape"] = [x, y, 1]
        recipe["data"]["conditions"] = ["network", "slice_z"]
        recipe["unet"]["spatial_dims"] = 2
    return recipe


def run_one(dims: int, manifest: Path, out: Path, args) -> dict:
    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe
    from synthkit.generate.engine import GenerateOptions, run
    from synthkit.training.run import train

    work = out / f"{dims}d"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    recipe = make_recipe(dims, manifest, args.sampling_steps, args.guidance, args.recipe)
    rate = seconds_per_step(recipe, work, args.threads)
    # a probe on a loaded machine overestimates the time per step: --steps fixes the count instead
    recipe["training"]["steps"] = args.steps or max(10, int(args.minutes * 60 / rate))
    path = work / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    t0 = time.perf_counter()
    res = train(path, out=work / "run", device="cpu", progress=False, echo=lambda m: None, threads=args.threads)
    t_train = time.perf_counter() - t0
    n = 13 * args.per_network
    t1 = time.perf_counter()
    run(
        GenerateOptions(out=work / "samples.zarr", model=str(res.checkpoint), n=n, shard_size=26, device="cpu"),
        echo=lambda m: None,
    )
    t_gen = time.perf_counter() - t1
    audit_recipe = AuditRecipe(metrics=["variance"], conditioning=False, extrapolation=False, n_synthetic=n)
    t2 = time.perf_counter()
    m = run_audit(
        work / "samples.zarr", manifest, work / "audit", audit_recipe, progress=False, echo=lambda s: None
    ).report["metrics"]["icn"]
    ident = m["identity"]
    return {
        "bench": "icn",
        "dims": dims,
        "budget_minutes": args.minutes,
        "train_seconds": round(t_train, 1),
        "steps": recipe["training"]["steps"],
        "seconds_per_step": round(rate, 3),
        "generate_seconds": round(t_gen, 1),
        "audit_seconds": round(time.perf_counter() - t2, 1),
        "samples_per_network": args.per_network,
        "sampling_steps": args.sampling_steps,
        "guidance_scale": args.guidance,
        "top1_accuracy": ident["top1_accuracy"],
        "real_top1_accuracy": ident["real_top1_accuracy"],
        "worst_network_accuracy": min(ident["per_network_accuracy"].values()),
        "synthetic_vs_real": m["mean"]["synthetic_vs_real"],
        "real_vs_real": m["mean"]["real_vs_real"],
        "paper_ukb": {"ms_ssim": 0.74, "mse": 0.001, "psnr_db": 26.37},
        "figures": [str(work / "audit" / f) for f in ("icn_confusion.png", "icn_variance.png")],
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget per model")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: what fills --minutes)")
    ap.add_argument("--dims", nargs="+", type=int, default=[3, 2], choices=[2, 3])
    ap.add_argument("--n", type=int, default=40, help="phantom subjects (10 %% val, 10 %% test)")
    ap.add_argument("--spacing", type=float, default=6.0)
    ap.add_argument("--per-network", type=int, default=20, help="samples of every network")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sampling-steps", type=int, default=10, help="DDIM steps (the demo recipe has 25)")
    ap.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale at sampling")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "icn")
    ap.add_argument(
        "--recipe", type=Path, default=ROOT / "recipes" / "demo-icn.yaml", help="the 3D recipe to start from"
    )
    args = ap.parse_args()

    import torch

    from synthkit.data.icn_phantom import write_icn_cohort

    torch.set_num_threads(args.threads)
    manifest = write_icn_cohort(args.out / "phantoms", args.n, spacing=args.spacing, seed=42, progress=False)
    for dims in args.dims:
        print(json.dumps(run_one(dims, manifest, args.out, args)), flush=True)


if __name__ == "__main__":
    main()
