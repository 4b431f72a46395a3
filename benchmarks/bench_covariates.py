"""Default conditions on a bimodal training set (JSON lines): do drawn ages stay out of the gap, are gap values
flagged, are correlations kept?

Training sets as in issue 13: ages uniform on 23–51 and 68–96 (nobody in between), sex 0/1, and a ventricular
volume that grows with age (r ≈ 0.9). For each of ``--repeats`` training sets, ``--n`` default rows are drawn
from the checkpoint's covariate model (:class:`synthkit.data.covariates.CovariateDistribution`, micro-aggregates)
and from the per-sex Gaussian that synthkit used before (the same model's older format, fitted here the way it
was: per-sex mean, covariance, min and max), and a plan of ``--n`` requested ages evenly spaced on 20–100 is
made with :func:`synthkit.generate.plan.make_plan` to count which are flagged as extrapolated.

Usage: ``python benchmarks/bench_covariates.py [--n 100000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from synthkit.data.covariates import CovariateDistribution
from synthkit.generate.plan import ConditionSpec, make_plan

GAP = (55.0, 64.0)


def training_set(seed: int, n_per_mode: int = 150) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = np.concatenate([rng.uniform(23, 51, n_per_mode), rng.uniform(68, 96, n_per_mode)])
    sex = rng.integers(0, 2, 2 * n_per_mode).astype(float)
    vent = 10_000 + 600 * (age - 20) + rng.normal(0, 2_000, 2 * n_per_mode)
    return {"age": age, "sex": sex, "ventricular_volume": vent}


def per_sex_gaussian(t: dict[str, np.ndarray]) -> CovariateDistribution:
    """The format before micro-aggregation: one Gaussian per sex, truncated to that sex's min and max."""
    cont = ["age", "ventricular_volume"]
    groups = []
    for s in (0.0, 1.0):
        rows = t["sex"] == s
        x = np.stack([t[c][rows] for c in cont], axis=1)
        groups.append(
            {
                "binary_values": {"sex": s},
                "weight": float(rows.mean()),
                "mean": x.mean(0).tolist(),
                "cov": np.cov(x, rowvar=False).tolist(),
                "low": x.min(0).tolist(),
                "high": x.max(0).tolist(),
            }
        )
    return CovariateDistribution.from_dict(
        {"names": ["age", "sex", "ventricular_volume"], "binary": ["sex"], "groups": groups}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    names = ["age", "sex", "ventricular_volume"]
    for rep in range(args.repeats):
        t = training_set(rep)
        r_train = float(np.corrcoef(t["age"], t["ventricular_volume"])[0, 1])
        for method, dist in (
            ("microaggregation", CovariateDistribution.fit(t)),
            ("per-sex-gaussian", per_sex_gaussian(t)),
        ):
            d = dist.sample(args.n, np.random.default_rng(100 + rep))
            in_gap = (d["age"] >= GAP[0]) & (d["age"] <= GAP[1])
            plan = make_plan(
                args.n,
                rep,
                condition_names=names,
                distribution=dist,
                specs=[ConditionSpec.parse("age=linspace(20,100)")],
            )
            age, flagged = plan.conditions["age"], plan.extrapolated
            req_gap = (age >= GAP[0]) & (age <= GAP[1])
            row = {
                "bench": "covariates-bimodal",
                "training_set": rep,
                "method": method,
                "n_drawn": args.n,
                "drawn_ages_in_55_64": round(float(in_gap.mean()), 5),
                "drawn_ages_in_51_68": round(float(((d["age"] > 51) & (d["age"] < 68)).mean()), 5),
                "r_age_ventricles_train": round(r_train, 3),
                "r_age_ventricles_drawn": round(float(np.corrcoef(d["age"], d["ventricular_volume"])[0, 1]), 3),
                "requested_in_55_64_flagged": round(float(flagged[req_gap].mean()), 4),
                "requested_in_25_50_or_70_95_flagged": round(
                    float(flagged[((age >= 25) & (age <= 50)) | ((age >= 70) & (age <= 95))].mean()), 4
                ),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
