"""Conditioning check on phantoms: does a trained LDM's ventricle volume follow the requested one? (JSON)

1. writes a phantom cohort at 4 mm (``--n`` subjects; exact ventricular and brain volumes);
2. trains ``recipes/bench-conditioning-4mm.yaml`` on it (CPU: about 45 minutes on 2 cores);
3. generates ``--per-level`` samples at each of 5 requested ventricular volumes spanning the training range
   (age 65, brain volume at the cohort median, sex 0 and 1 alternating);
4. measures ventricles in every synthetic sample with the ground-truth measure below, and reports Pearson r
   and Spearman ρ between requested and measured, next to the same measure on real phantoms against their
   true volume (the ceiling of the measure itself).

Measure: voxels darker than 45 % of the brain's 95th intensity percentile inside a ventricle prior region
(the MNI template's ventricles dilated by 10 mm, in the phantom's space), times the voxel volume.

Usage: ``python benchmarks/bench_conditioning.py [--n 240] [--per-level 10] [--max-steps N] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import yaml
from scipy import ndimage as ndi
from scipy.stats import pearsonr, spearmanr

ROOT = Path(__file__).resolve().parents[1]


def prior_mask(space) -> np.ndarray:
    from synthkit.data import phantom as ph

    tpl = ph.template()
    world = space.world_coordinates().reshape(3, -1)
    inv = np.linalg.inv(tpl.affine)
    vox = inv[:3, :3] @ world + inv[:3, 3:4]
    sdf = ndi.map_coordinates(tpl.sdf_ventricles, vox, order=1, mode="constant", cval=99).reshape(space.shape)
    return sdf < 10.0


def ventricle_measure(images: np.ndarray, prior: np.ndarray, voxel_volume: float) -> np.ndarray:
    out = []
    for img in images:
        brain = img > 0.05
        ref = np.percentile(img[brain], 95) if brain.any() else 1.0
        out.append(np.count_nonzero(prior & brain & (img < 0.45 * ref)) * voxel_volume)
    return np.asarray(out, dtype=float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--per-level", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=None, help="cap training steps (smoke runs)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "conditioning")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import pandas as pd

    from synthkit.data import phantom as ph
    from synthkit.models.registry import load_generator
    from synthkit.training.run import train
    from synthkit.viz import scatter

    t0 = time.perf_counter()
    space = ph.default_space(4.0)
    manifest = ph.write_cohort(args.out / "phantoms", args.n, space=space, seed=42, progress=False)
    table = pd.read_csv(manifest)
    recipe = yaml.safe_load((ROOT / "recipes" / "bench-conditioning-4mm.yaml").read_text())
    recipe["data"]["manifest"] = str(manifest.resolve())
    recipe_path = args.out / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    res = train(
        recipe_path,
        out=args.out / "run",
        device=args.device,
        max_steps=args.max_steps,
        progress=False,
        echo=lambda m: None,
        resume=(args.out / "run" / "state").exists(),
    )
    t_train = time.perf_counter() - t0

    prior = prior_mask(space)
    real = ventricle_measure(
        np.stack([ph.render(ph.draw_params(s), space).image for s in range(50)]), prior, space.voxel_volume
    )
    true = np.array([ph.render(ph.draw_params(s), space).ventricular_volume for s in range(50)])

    gen = load_generator(res.checkpoint, device=args.device)
    lo, hi = np.percentile(table["ventricular_volume"], [5, 95])
    levels = np.linspace(lo, hi, 5)
    requested = np.repeat(levels, args.per_level)
    n = requested.size
    cond = {
        "age": np.full(n, 65.0),
        "sex": (np.arange(n) % 2).astype(float),
        "ventricular_volume": requested,
        "brain_volume": np.full(n, float(table["brain_volume"].median())),
    }
    t1 = time.perf_counter()
    images = np.concatenate(
        [
            gen.sample(
                min(8, n - a),
                seeds=list(range(a, min(a + 8, n))),
                conditions={k: v[a : a + 8] for k, v in cond.items()},
            ).images
            for a in range(0, n, 8)
        ]
    )
    t_gen = time.perf_counter() - t1
    measured = ventricle_measure(images, prior, space.voxel_volume)
    scatter(
        requested / 1000,
        measured / 1000,
        args.out / "requested_vs_measured.png",
        xlabel="requested ventricular volume (ml)",
        ylabel="measured (ml)",
        title="LDM on phantoms, 4 mm",
        identity=False,
    )
    level_means = [float(measured[requested == v].mean() / 1000) for v in levels]
    print(
        json.dumps(
            {
                "bench": "conditioning_ventricles",
                "space": space.describe(),
                "n_train_subjects": int((table["split"] == "train").sum()),
                "training_steps": {
                    "autoencoder": recipe["autoencoder_training"]["steps"] if not args.max_steps else args.max_steps,
                    "diffusion": recipe["training"]["steps"] if not args.max_steps else args.max_steps,
                },
                "samples": int(n),
                "requested_levels_ml": [round(v / 1000, 2) for v in levels],
                "measured_mean_per_level_ml": [round(v, 2) for v in level_means],
                "pearson_r_requested_measured": float(pearsonr(requested, measured)[0]),
                "spearman_rho_requested_measured": float(spearmanr(requested, measured)[0]),
                "ceiling_pearson_r_true_measured_real_phantoms": float(pearsonr(true, real)[0]),
                "train_seconds": round(t_train, 1),
                "generate_seconds": round(t_gen, 1),
                "figure": str(args.out / "requested_vs_measured.png"),
                "machine": f"{platform.machine()}, cpu",
                "device": args.device,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
