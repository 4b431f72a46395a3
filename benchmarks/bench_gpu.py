"""The GPU check's training part (``benchmarks/gpu_check.sh``): the 2 mm phantom LDM on one GPU (JSON).

Writes 200 phantoms at 2 mm, trains ``recipes/quality-ldm-2mm.yaml`` (bf16 autocast on CUDA), generates two
samples per held-out phantom at its own conditions and audits them (as ``bench_quality.py``): the autoencoder's
held-out reconstruction PSNR, the last conditioning gap, r(requested, measured ventricles) beside its ceiling,
FID as a multiple of real-vs-real, MS-SSIM diversity, and the seconds each part took.

``--smoke`` shrinks everything (4 mm, a few steps) to check the script on a CPU.

Usage: ``python benchmarks/bench_gpu.py [--device cuda] [--smoke] [--out DIR]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import yaml
from bench_quality import held_out_conditions, last

ROOT = Path(__file__).resolve().parents[1]


def recipe_for(args, manifest: Path) -> dict:
    r = yaml.safe_load((ROOT / "recipes" / "quality-ldm-2mm.yaml").read_text())
    r["data"]["manifest"] = str(manifest.resolve())
    if args.smoke:
        r["space"] = {"shape": [40, 56, 40], "spacing": 4}
        r["autoencoder"].update(channels=[8, 16, 32], norm_num_groups=8)
        r["unet"].update(channels=[32, 64, 64], norm_num_groups=16)
        for section in ("autoencoder_training", "training"):
            r[section].update(steps=4, val_every=2, checkpoint_every=4, preview_every=4, log_every=2, batch_size=2)
        r["autoencoder_training"]["adv_start"] = 2
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("/tmp/synthkit-gpu"))
    args = ap.parse_args()

    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe
    from synthkit.data import phantom as ph
    from synthkit.generate.engine import GenerateOptions, run
    from synthkit.training.run import train

    t0 = time.perf_counter()
    n = 24 if args.smoke else args.n
    space = ph.default_space(4.0 if args.smoke else 2.0)
    manifest = ph.write_cohort(
        args.out / "phantoms", n, space=space, seed=42, workers=os.cpu_count() or 1, progress=False
    )
    t_data = time.perf_counter() - t0
    recipe_path = args.out / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe_for(args, manifest), sort_keys=False))
    t1 = time.perf_counter()
    res = train(recipe_path, out=args.out / "run", device=args.device, progress=False, echo=lambda m: None)
    t_train = time.perf_counter() - t1
    conds = held_out_conditions(manifest, ["age", "sex", "ventricular_volume", "brain_volume"], 2, args.out / "c.csv")
    t2 = time.perf_counter()
    store = args.out / "samples.zarr"
    gen = run(
        GenerateOptions(out=store, model=str(res.checkpoint), conditions_csv=conds, device=args.device, overwrite=True),
        echo=lambda m: None,
    )
    t_gen = time.perf_counter() - t2
    m = run_audit(
        store,
        manifest,
        args.out / "audit",
        AuditRecipe(n_pairs=300, bootstrap=20, n_segment=gen.n, extrapolation=False),
        device=args.device,
        progress=False,
        echo=lambda m: None,
    ).report["metrics"]
    with open(res.out / "metrics.csv") as f:
        log = list(csv.DictReader(f))
    dif = [r for r in log if r["stage"] == "diffusion"]
    vent = m["conditioning"]["conditions"]["ventricular_volume"]
    print(
        json.dumps(
            {
                "bench": "gpu_ldm_2mm" if not args.smoke else "gpu_ldm_smoke",
                "device": args.device,
                "gpu": _gpu_name(args.device),
                "recon_psnr_db": last([r for r in log if r["stage"] == "autoencoder"], "val_psnr"),
                "cond_gap_perm": last(dif, "cond_gap_perm"),
                "cond_gap_null": last(dif, "cond_gap_null"),
                "r_ventricles": vent["synthetic_requested_vs_measured"]["pearson_r"],
                "r_ventricles_ceiling": vent.get("reference_recorded_vs_measured", {}).get("pearson_r"),
                "fid_ratio": m["fid"]["synthetic_vs_real"] / m["fid"]["real_vs_real"],
                "ms_ssim_synthetic": m["ms_ssim"]["synthetic"]["mean"],
                "ms_ssim_real": m["ms_ssim"]["real"]["mean"],
                "seconds": {"phantoms": round(t_data, 1), "train": round(t_train, 1), "generate": round(t_gen, 1)},
                "samples": gen.n,
                "machine": platform.machine(),
            }
        ),
        flush=True,
    )


def _gpu_name(device: str) -> str | None:
    import torch

    return torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available() else None


if __name__ == "__main__":
    main()
