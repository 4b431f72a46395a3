"""Few-step sampling: DPM-Solver++(2M) at 10 and 15 steps against DDIM at 50 on a trained model (JSON lines).

Every sampler draws the same samples (same seeds, the held-out phantoms' conditions, as in
``bench_quality.py``) from one checkpoint; each set is packed into a store and audited against the cohort
(``synthkit audit``: FID and MMD with bootstrap 95 % intervals, MS-SSIM diversity with its interval,
r(requested, measured ventricles)). Samples per second are measured in the same run, and reported as a ratio
against DDIM-50.

Usage: ``python benchmarks/bench_samplers.py CHECKPOINT MANIFEST [--n 64] [--configs ddim:50 dpmpp_2m:10 …]``
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd


def audit_recipe():
    from synthkit.config import AuditRecipe

    return AuditRecipe(metrics=["fid", "mmd", "ms_ssim"], n_pairs=300, bootstrap=50, extrapolation=False)


def sample_all(gen, conditions: dict[str, np.ndarray], batch: int) -> np.ndarray:
    n = len(next(iter(conditions.values())))
    parts = []
    for a in range(0, n, batch):
        idx = slice(a, min(a + batch, n))
        seeds = list(range(a, min(a + batch, n)))
        parts.append(gen.sample(len(seeds), seeds=seeds, conditions={k: v[idx] for k, v in conditions.items()}).images)
    return np.concatenate(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("manifest", type=Path, help="the phantom cohort (its val/test rows give the conditions)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--configs", nargs="+", default=["ddim:50", "dpmpp_2m:10", "dpmpp_2m:15", "ddim:15"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/samplers"))
    args = ap.parse_args()

    from synthkit.audit.suite import run_audit
    from synthkit.models.registry import load_generator
    from synthkit.store.writer import write_images

    gen = load_generator(args.checkpoint)
    table = pd.read_csv(args.manifest)
    held = table[table["split"] != "train"]
    reps = -(-args.n // len(held))
    cond = {k: np.tile(held[k].to_numpy(float), reps)[: args.n] for k in gen.condition_names}
    base_rate = None
    audit = audit_recipe()
    for spec in args.configs:
        sampler, steps = spec.split(":")
        gen.sampling = gen.sampling.model_copy(update={"sampler": sampler, "steps": int(steps)})
        t0 = time.perf_counter()
        images = sample_all(gen, cond, args.batch)
        rate = len(images) / (time.perf_counter() - t0)
        base_rate = base_rate or rate
        store = args.out / f"{sampler}-{steps}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        write_images(store, images, gen.space, conditions=cond)
        m = run_audit(
            store,
            args.manifest,
            args.out / f"audit-{sampler}-{steps}",
            audit.model_copy(update={"n_segment": args.n}),
            progress=False,
            echo=lambda m: None,
        ).report["metrics"]
        vent = m.get("conditioning", {}).get("conditions", {}).get("ventricular_volume", {})
        print(
            json.dumps(
                {
                    "bench": "samplers",
                    "sampler": sampler,
                    "steps": int(steps),
                    "guidance_scale": gen.sampling.guidance_scale,
                    "samples": len(images),
                    "fid": m["fid"]["synthetic_vs_real"],
                    "fid_ci95": m["fid"]["ci95"],
                    "fid_real": m["fid"]["real_vs_real"],
                    "mmd": m["mmd"]["synthetic_vs_real"],
                    "mmd_ci95": m["mmd"]["ci95"],
                    "ms_ssim": m["ms_ssim"]["synthetic"]["mean"],
                    "ms_ssim_ci95": m["ms_ssim"]["synthetic"]["ci95"],
                    "ms_ssim_real": m["ms_ssim"]["real"]["mean"],
                    "r_ventricles": vent.get("synthetic_requested_vs_measured", {}).get("pearson_r"),
                    "samples_per_second": round(rate, 4),
                    "speed_vs_first": round(rate / base_rate, 3),
                    "checkpoint": str(args.checkpoint),
                    "machine": f"{platform.machine()}, cpu",
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
