"""Weight-free segmenter against the phantom's exact volumes (JSON): 50 phantoms at 2 mm (``--spacing``).

Reports Pearson r between measured and true ventricular / brain volumes, the mean ratio measured/true, and
seconds per subject. Usage: ``python benchmarks/bench_segmentation.py [--n 50] [--spacing 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from scipy.stats import pearsonr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--spacing", type=float, default=2.0)
    args = ap.parse_args()
    from synthkit.data import phantom as ph
    from synthkit.metrics.segmentation import WeightFreeSegmenter

    space = ph.default_space(args.spacing)
    seg = WeightFreeSegmenter()
    true, meas, secs = [], [], []
    for s in range(args.n):
        subj = ph.render(ph.draw_params(10_000 + s), space)
        t = time.perf_counter()
        v = seg.segment(subj.image, space.affine_array).volumes
        secs.append(time.perf_counter() - t)
        true.append((subj.ventricular_volume, subj.brain_volume))
        meas.append((v["ventricles"], v["brain"]))
    t_, m_ = np.array(true), np.array(meas)
    print(
        json.dumps(
            {
                "bench": "weight_free_segmenter",
                "space": space.describe(),
                "phantoms": args.n,
                "ventricles_pearson_r": float(pearsonr(t_[:, 0], m_[:, 0])[0]),
                "brain_pearson_r": float(pearsonr(t_[:, 1], m_[:, 1])[0]),
                "ventricles_measured_over_true": float(np.mean(m_[:, 0] / t_[:, 0])),
                "brain_measured_over_true": float(np.mean(m_[:, 1] / t_[:, 1])),
                "seconds_per_subject": float(np.mean(secs)),
                "target_r": "> 0.9",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            }
        )
    )


if __name__ == "__main__":
    main()
