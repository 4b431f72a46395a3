"""The quality ladder: what a generator reaches after 5, 15 and 45 minutes of training on phantoms (JSON lines).

For each kind (``ldm``, ``ddpm``, ``deformation``; recipes ``recipes/quality-<kind>-4mm.yaml``) and budget:

1. a short probe measures seconds per step of every stage on this machine, and the recipe's steps are set so
   that training fills the budget (an LDM gives its autoencoder ``--ae-share`` of it; a deformation model
   first registers every subject, and its diffusion stage gets what the registration left of the budget);
2. the model is trained from scratch (``synthkit.training.run.train``);
3. ``synthkit generate`` makes two samples per held-out phantom (the val and test splits), each at that
   phantom's own covariates (age, sex, ventricular and brain volume) — requests that occur together in real
   subjects, so the measure's ceiling is the segmenter's own accuracy;
4. ``synthkit audit`` against every phantom of the cohort gives FID and MMD (fallback feature extractor, as
   multiples of the real-vs-real row of the same run), MS-SSIM diversity beside the real one, and
   r(requested, measured ventricles) with the weight-free segmenter beside its ceiling on real phantoms;
5. from ``metrics.csv``: the autoencoder's held-out reconstruction PSNR (LDM) and the last conditioning gap.

A figure per kind puts four samples of every rung beside four real phantoms.

Usage: ``python benchmarks/bench_quality.py [--kinds ldm ddpm] [--minutes 5 15 45] [--n 200] [--out DIR]``
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBE_STEPS = 12
STAGE_SECTIONS = (("autoencoder", "autoencoder_training"), ("diffusion", "training"))


def stage_seconds_per_step(
    recipe: dict, workdir: Path, threads: int, stage: str | None = None, fields: Path | None = None
) -> dict[str, float]:
    """Seconds per training step of each stage (or of ``stage``), from a probe that trains ``PROBE_STEPS``
    steps of each; ``fields``: a deformation run's registered fields, which its diffusion stage starts from."""
    from synthkit.training.run import train

    probe = json.loads(json.dumps(recipe))
    for section in ("training", "autoencoder_training"):
        if section in probe:
            probe[section].update(
                steps=PROBE_STEPS, val_every=10**6, preview_every=10**6, checkpoint_every=10**6, log_every=1
            )
    path = workdir / "probe.yaml"
    path.write_text(yaml.safe_dump(probe, sort_keys=False))
    out = workdir / "probe"
    shutil.rmtree(out, ignore_errors=True)
    if fields is not None:
        out.mkdir(parents=True)
        shutil.copy(fields, out / fields.name)
    train(path, out=out, device="cpu", progress=False, echo=lambda m: None, threads=threads, stage=stage)
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss") and 1 < int(r["step"]) < PROBE_STEPS]
    # a stage's last step also validates, checkpoints and previews, and its first warms up: time those between
    rates: dict[str, float] = {}
    for stage in dict.fromkeys(r["stage"] for r in rows):
        s = [r for r in rows if r["stage"] == stage]
        rates[stage] = (float(s[-1]["seconds"]) - float(s[0]["seconds"])) / (int(s[-1]["step"]) - int(s[0]["step"]))
    return rates


def budget_recipe(recipe: dict, minutes: float, rates: dict[str, float], ae_share: float) -> dict:
    r = json.loads(json.dumps(recipe))
    seconds = minutes * 60
    if "autoencoder_training" in r:
        ae = max(50, int(seconds * ae_share / rates["autoencoder"]))
        r["autoencoder_training"].update(steps=ae, adv_start=ae // 2, warmup_steps=max(1, ae // 50))
        seconds *= 1 - ae_share
    steps = max(50, int(seconds / rates["diffusion"]))
    r["training"].update(steps=steps, warmup_steps=max(1, steps // 20))
    for section in ("training", "autoencoder_training"):
        if section in r:
            s = r[section]["steps"]
            r[section].update(val_every=max(1, s // 4), checkpoint_every=s, preview_every=s, log_every=max(1, s // 40))
    return r


def train_deformation(base: dict, minutes: float, rung: Path, threads: int):
    """Register (its time counts against the budget), probe the diffusion stage on the cached fields, then
    train the diffusion stage for what is left of the budget."""
    from synthkit.training.run import train

    quiet = {"device": "cpu", "progress": False, "echo": lambda m: None, "threads": threads}
    path = rung / "recipe.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    t0 = time.perf_counter()
    train(path, out=rung / "run", stage="registration", **quiet)
    t_reg = time.perf_counter() - t0
    probe = stage_seconds_per_step(base, rung, threads, stage="diffusion", fields=rung / "run" / "fields.safetensors")
    rates = {"registration_seconds": t_reg, "diffusion": probe["diffusion"]}
    recipe = budget_recipe(base, max(0.5, minutes - t_reg / 60), rates, 0.0)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    res = train(path, out=rung / "run", stage="diffusion", **quiet)
    return recipe, res, time.perf_counter() - t0, rates


def held_out_conditions(manifest: Path, names: list[str], per_subject: int, out: Path) -> Path:
    table = pd.read_csv(manifest)
    held = table[table["split"] != "train"]
    rows = pd.concat([held[names]] * per_subject, ignore_index=True)
    rows.to_csv(out, index=False)
    return out


def delivered_r(store: Path, name: str) -> float | None:
    from synthkit.store.reader import open_cohort

    table = open_cohort(store).conditions
    col = f"delivered_{name}"
    if col not in table.columns:
        return None
    return float(np.corrcoef(table[name], table[col])[0, 1])


def mmd_ratio(m: dict) -> float | None:
    return m["synthetic_vs_real"] / m["real_vs_real"] if m["real_vs_real"] > 1e-6 else None


def last(rows: list[dict], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return vals[-1] if vals else None


def run_rung(kind: str, minutes: float, manifest: Path, out: Path, args) -> dict:
    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe
    from synthkit.generate.engine import GenerateOptions, run
    from synthkit.training.run import train

    rung = out / kind / f"{minutes:g}min"
    shutil.rmtree(rung, ignore_errors=True)
    rung.mkdir(parents=True)
    base = yaml.safe_load((ROOT / "recipes" / f"quality-{kind}-4mm.yaml").read_text())
    base["data"]["manifest"] = str(manifest.resolve())
    if kind == "deformation":
        recipe, res, t_train, rates = train_deformation(base, minutes, rung, args.threads)
    else:
        rates = stage_seconds_per_step(base, rung, args.threads)
        recipe = budget_recipe(base, minutes, rates, args.ae_share)
        recipe_path = rung / "recipe.yaml"
        recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        t0 = time.perf_counter()
        res = train(
            recipe_path, out=rung / "run", device="cpu", progress=False, echo=lambda m: None, threads=args.threads
        )
        t_train = time.perf_counter() - t0
    names = list(recipe["data"]["conditions"])
    conds = held_out_conditions(manifest, names, args.per_subject, rung / "conditions.csv")
    store = rung / "samples.zarr"
    t1 = time.perf_counter()
    gen = run(
        GenerateOptions(out=store, model=str(res.checkpoint), conditions_csv=conds, shard_size=16, device="cpu"),
        echo=lambda m: None,
    )
    t_gen = time.perf_counter() - t1
    audit = run_audit(
        store,
        manifest,
        rung / "audit",
        AuditRecipe(n_pairs=300, bootstrap=20, n_segment=gen.n, extrapolation=False),
        progress=False,
        echo=lambda m: None,
    ).report["metrics"]
    with open(res.out / "metrics.csv") as f:
        log = list(csv.DictReader(f))
    diffusion_rows = [r for r in log if r["stage"] == "diffusion"]
    vent = audit["conditioning"]["conditions"]["ventricular_volume"]
    return {
        "bench": "quality_ladder",
        "kind": kind,
        "budget_minutes": minutes,
        "train_seconds": round(t_train, 1),
        "steps": {s: recipe[sec]["steps"] for s, sec in STAGE_SECTIONS if sec in recipe},
        "seconds_per_step": {k: round(v, 3) for k, v in rates.items()},
        "recon_psnr_db": last([r for r in log if r["stage"] == "autoencoder"], "val_psnr"),
        "cond_gap_perm": last(diffusion_rows, "cond_gap_perm"),
        "cond_gap_null": last(diffusion_rows, "cond_gap_null"),
        "val_loss": last(diffusion_rows, "val_loss"),
        "fid_ratio": audit["fid"]["synthetic_vs_real"] / audit["fid"]["real_vs_real"],
        "fid": audit["fid"]["synthetic_vs_real"],
        "fid_real": audit["fid"]["real_vs_real"],
        "mmd": audit["mmd"]["synthetic_vs_real"],
        "mmd_real": audit["mmd"]["real_vs_real"],
        # the unbiased MMD² of two real halves is ~0 and can be negative: a ratio only where it is clearly positive
        "mmd_ratio": mmd_ratio(audit["mmd"]),
        "ms_ssim_synthetic": audit["ms_ssim"]["synthetic"]["mean"],
        "ms_ssim_real": audit["ms_ssim"]["real"]["mean"],
        "r_ventricles": vent["synthetic_requested_vs_measured"]["pearson_r"],
        "r_ventricles_ceiling": vent.get("reference_recorded_vs_measured", {}).get("pearson_r"),
        # deformation: the volume counted in each sample's own warped label map (no segmenter)
        "r_ventricles_delivered": delivered_r(store, "ventricular_volume"),
        "samples": gen.n,
        "generate_seconds": round(t_gen, 1),
        "samples_per_second": round(gen.n / max(t_gen, 1e-9), 3),
        "store": str(store),
        "machine": f"{platform.machine()}, {args.threads} CPU threads",
    }


def figure(kind: str, rungs: list[float], manifest: Path, out: Path, per_row: int = 6) -> Path:
    """Axial and coronal mid-slices: one row per rung (its first samples), the last row real phantoms."""
    from synthkit import open_cohort
    from synthkit.data.io import load_nifti
    from synthkit.viz import pyplot, save

    rows: list[tuple[str, list[np.ndarray]]] = []
    for minutes in rungs:
        cohort = open_cohort(out / kind / f"{minutes:g}min" / "samples.zarr")
        rows.append((f"{minutes:g} min", [np.asarray(cohort[i]["image"]) for i in range(min(per_row, len(cohort)))]))
    table = pd.read_csv(manifest)
    rows.append(("real", [load_nifti(manifest.parent / p)[0] for p in table["image"][:per_row]]))
    plt = pyplot()
    fig, axes = plt.subplots(2 * len(rows), per_row, figsize=(1.6 * per_row, 2.0 * 2 * len(rows)), squeeze=False)
    for r, (label, vols) in enumerate(rows):
        for c in range(per_row):
            for k, view in enumerate((lambda v: v[:, :, v.shape[2] // 2], lambda v: v[:, v.shape[1] // 2, :])):
                ax = axes[2 * r + k, c]
                ax.axis("off")
                if c < len(vols):
                    ax.imshow(np.rot90(view(vols[c])), cmap="gray", vmin=0, vmax=1)
            axes[2 * r, 0].set_title(label, loc="left", fontsize=9)
    fig.suptitle(f"{kind}: samples by training budget (axial, coronal)")
    fig.tight_layout()
    return save(fig, out / f"quality_{kind}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="+", default=["deformation", "ldm", "ddpm"])
    ap.add_argument("--minutes", nargs="+", type=float, default=[5, 15, 45])
    ap.add_argument("--n", type=int, default=200, help="phantoms in the cohort (10 %% val, 10 %% test)")
    ap.add_argument("--per-subject", type=int, default=2, help="samples per held-out phantom's conditions")
    ap.add_argument("--ae-share", type=float, default=0.6, help="LDM: share of the budget for the autoencoder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "quality")
    args = ap.parse_args()

    import torch

    from synthkit.data import phantom as ph

    torch.set_num_threads(args.threads)
    manifest = ph.write_cohort(args.out / "phantoms", args.n, space=ph.default_space(4.0), seed=42, progress=False)
    for kind in args.kinds:
        for minutes in args.minutes:
            print(json.dumps(run_rung(kind, minutes, manifest, args.out, args)), flush=True)
        fig = figure(kind, args.minutes, manifest, args.out)
        print(json.dumps({"bench": "quality_ladder_figure", "kind": kind, "figure": str(fig)}), flush=True)


if __name__ == "__main__":
    main()
