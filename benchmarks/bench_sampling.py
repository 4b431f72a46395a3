"""Sampling speed and peak memory: synthkit's loop vs MONAI's ``LatentDiffusionInferer.sample`` (JSON lines).

Both run DDIM on the same LDM (random weights; speed does not depend on them), the same steps and batch, in
the same process order, each in a fresh subprocess so that peak RSS (CPU) or peak CUDA memory is its own.
The model uses cross-attention conditioning only, because MONAI's inferer takes either cross-attention or
concatenation, not both. Configurations:

* ``demo``: ``recipes/demo-ldm.yaml`` (40×56×40 images, 3×10×14×10 latents);
* ``paper``: ``recipes/ldm-ukb-t1.yaml`` (Pinaya et al.: 160×224×160 images, 3×20×28×20 latents). On a CPU it
  runs with fewer steps (``--paper-steps``); seconds per sample are reported as measured and scaled to 50.

Usage: ``python benchmarks/bench_sampling.py [--config demo|paper|both] [--batch 8] [--steps 50]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(config: str, device: str):
    import torch

    from synthkit.config import SamplingConfig, load_recipe
    from synthkit.models.conditioning import ConditionCodec
    from synthkit.models.diffusion import DiffusionCore
    from synthkit.models.ldm import LDMGenerator, latent_shape
    from synthkit.models.networks import build_autoencoder, build_unet

    recipe = load_recipe(ROOT / "recipes" / ("demo-ldm.yaml" if config == "demo" else "ldm-ukb-t1.yaml"))
    recipe.conditioning.concat = False
    torch.manual_seed(0)
    names = list(recipe.data.conditions)
    codec = ConditionCodec(tuple(names), (0.0,) * len(names), (1.0,) * len(names))
    lat = latent_shape(recipe)
    unet = build_unet(recipe.unet, lat[0], lat[0], codec.dim, concat=False, crossattn=True).eval().to(device)
    ae = build_autoencoder(recipe.autoencoder).eval().to(device)
    core = DiffusionCore(unet, codec, recipe.scheduler, concat=False, crossattn=True)
    meta = {"recipe": {"sampling": SamplingConfig().model_dump()}, "space": recipe.space.to_space().to_dict()}
    gen = LDMGenerator(core, ae, 1.0, recipe, recipe.space.to_space(), meta, None, device)
    return gen, recipe, lat, names


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from monai.inferers import LatentDiffusionInferer
    from monai.networks.schedulers import DDIMScheduler

    device = args.device
    gen, recipe, lat, names = build(args.config, device)
    n, steps = args.batch, args.steps
    gen.sampling = gen.sampling.model_copy(update={"sampler": "ddim", "steps": steps})
    cond = {k: np.full(n, 0.5) for k in names}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if args.impl == "synthkit":
        gen.sample(n, seeds=list(range(n)), conditions=cond, device=device)
    else:
        s = recipe.scheduler
        sched = DDIMScheduler(
            num_train_timesteps=s.num_train_timesteps,
            schedule=s.schedule,
            beta_start=s.beta_start,
            beta_end=s.beta_end,
            clip_sample=False,
        )
        sched.set_timesteps(steps)
        inferer = LatentDiffusionInferer(sched, scale_factor=1.0)
        noise = torch.randn((n, *lat), device=device)
        ctx = torch.full((n, 1, len(names)), 0.5, device=device)
        # the same bf16 autocast synthkit uses on a GPU, so that only the loops differ
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
        with torch.inference_mode(), amp:
            inferer.sample(
                noise, gen.autoencoder, gen.core.unet, sched, conditioning=ctx, mode="crossattn", verbose=False
            )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (
        (torch.cuda.max_memory_allocated() / 2**20)
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(json.dumps({"seconds": dt, "peak_mb": peak}))


def measure(args: argparse.Namespace, config: str, impl: str, steps: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--config",
        config,
        "--impl",
        impl,
        "--steps",
        str(steps),
        "--batch",
        str(args.batch if config == "demo" or args.device != "cpu" else 1),
        "--device",
        args.device,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=["demo", "paper", "both"], default="both")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--paper-steps", type=int, default=5, help="DDIM steps for the paper configuration on a CPU")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", default="synthkit", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.steps, args.batch, args.config = 5, 4, "demo"
    configs = ["demo", "paper"] if args.config == "both" else [args.config]
    for config in configs:
        steps = args.steps if (config == "demo" or args.device.startswith("cuda")) else args.paper_steps
        batch = args.batch if config == "demo" else 1
        res = {impl: measure(args, config, impl, steps) for impl in ("monai", "synthkit")}
        per = {k: v["seconds"] / batch for k, v in res.items()}
        print(
            json.dumps(
                {
                    "bench": "sampling_ddim",
                    "config": config,
                    "device": args.device,
                    "batch": batch,
                    "steps": steps,
                    "synthkit_samples_per_s": 1 / per["synthkit"],
                    "monai_samples_per_s": 1 / per["monai"],
                    "ratio_synthkit_vs_monai": per["monai"] / per["synthkit"],
                    "synthkit_s_per_sample_at_50_steps": per["synthkit"] * 50 / steps,
                    "synthkit_peak_mb": res["synthkit"]["peak_mb"],
                    "monai_peak_mb": res["monai"]["peak_mb"],
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                    "target_cpu": ">= 1",
                    "target_gpu": ">= 2",
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
