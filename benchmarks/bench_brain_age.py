"""Brain age on phantoms (JSON): held-out r/MAE of the PCA + ridge model at 2 mm (and the CNN at 4 mm), and
r(requested, predicted) on a phantom-generator store with requested ages.

Usage: ``python benchmarks/bench_brain_age.py [--n 200] [--spacing 2] [--cnn-spacing 4]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--spacing", type=float, default=2.0)
    ap.add_argument("--cnn-spacing", type=float, default=4.0)
    ap.add_argument("--store-n", type=int, default=100)
    args = ap.parse_args()
    from synthkit.data import phantom as ph
    from synthkit.generate.engine import GenerateOptions, run
    from synthkit.metrics.brain_age import load_brain_age, regression_stats
    from synthkit.store.reader import open_cohort
    from synthkit.training.brain_age import train_brain_age

    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind, spacing in (("sklearn", args.spacing), ("cnn", args.cnn_spacing)):
            space = ph.default_space(spacing)
            manifest = ph.write_cohort(tmp / f"c{spacing}", args.n, space=space, seed=21, progress=False)
            t = time.perf_counter()
            res = train_brain_age(
                manifest, tmp / f"{kind}.safetensors", space, kind=kind, progress=False, echo=lambda m: None
            )
            fit_s = time.perf_counter() - t
            row = {
                "bench": "brain_age_held_out",
                "kind": kind,
                "space": space.describe(),
                "subjects": args.n,
                **{f"held_out_{k}": v for k, v in res.held_out.items()},
                "fit_seconds": round(fit_s, 1),
                "target_r": "> 0.8",
            }
            if kind == "sklearn":
                store = tmp / "ages.zarr"
                run(
                    GenerateOptions(
                        out=store,
                        n=args.store_n,
                        shard_size=25,
                        spacing=spacing,
                        device="cpu",
                        workers=2,
                        condition_specs=["age=uniform(45,82)"],
                    ),
                    progress=False,
                    echo=lambda m: None,
                )
                cohort = open_cohort(store)
                model, _ = load_brain_age(res.path)
                pred = model.predict(cohort.images(list(range(len(cohort)))))
                stats = regression_stats(cohort.conditions["age"].to_numpy(float), pred)
                row.update({f"store_requested_vs_predicted_{k}": v for k, v in stats.items()})
            print(json.dumps({**row, "machine": machine}), flush=True)


if __name__ == "__main__":
    main()
