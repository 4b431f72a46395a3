"""The distribution of conditioning covariates a model was trained on, to draw default conditions from.

It is stored in a checkpoint instead of the training table (no subject-level rows, IDs or paths): per
combination of binary covariates (e.g. sex) its share, and a Gaussian over the continuous covariates with
their observed range. Drawing truncates to that range (rejection, then clipping after a bounded number of
tries), so default conditions never leave the training support.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class CovariateGroup:
    binary_values: dict[str, float]
    weight: float
    mean: list[float]
    cov: list[list[float]]
    low: list[float]
    high: list[float]


@dataclass
class CovariateDistribution:
    names: list[str]
    binary: list[str] = field(default_factory=list)
    groups: list[CovariateGroup] = field(default_factory=list)

    @property
    def continuous(self) -> list[str]:
        return [n for n in self.names if n not in self.binary]

    @classmethod
    def fit(cls, table: Mapping[str, Sequence[float] | np.ndarray]) -> CovariateDistribution:
        """Fit from training covariates (columns of equal length, no missing values)."""
        names = list(table)
        cols = {n: np.asarray(table[n], dtype=np.float64) for n in names}
        n_rows = len(next(iter(cols.values()))) if cols else 0
        binary = [n for n in names if set(np.unique(cols[n])) <= {0.0, 1.0}]
        cont = [n for n in names if n not in binary]
        keys = np.stack([cols[b] for b in binary], axis=1) if binary else np.zeros((n_rows, 0))
        groups = []
        for key in np.unique(keys, axis=0) if n_rows else []:
            sel = np.all(keys == key, axis=1) if binary else np.ones(n_rows, bool)
            x = np.stack([cols[c][sel] for c in cont], axis=1) if cont else np.zeros((int(sel.sum()), 0))
            cov = np.cov(x, rowvar=False).reshape(len(cont), len(cont)) if len(x) > 1 else np.zeros((len(cont),) * 2)
            groups.append(
                CovariateGroup(
                    binary_values={b: float(v) for b, v in zip(binary, key, strict=True)},
                    weight=float(sel.mean()),
                    mean=x.mean(0).tolist() if len(x) else [0.0] * len(cont),
                    cov=np.nan_to_num(cov).tolist(),
                    low=x.min(0).tolist() if len(x) else [0.0] * len(cont),
                    high=x.max(0).tolist() if len(x) else [0.0] * len(cont),
                )
            )
        return cls(names=names, binary=binary, groups=groups)

    def sample(self, n: int, rng: np.random.Generator, max_tries: int = 50) -> dict[str, np.ndarray]:
        """Draw ``n`` covariate rows (truncated to each group's observed range)."""
        out = {name: np.empty(n) for name in self.names}
        if not self.groups or n == 0:
            return out
        weights = np.array([g.weight for g in self.groups])
        which = rng.choice(len(self.groups), size=n, p=weights / weights.sum())
        cont = self.continuous
        for gi, g in enumerate(self.groups):
            idx = np.flatnonzero(which == gi)
            for b, v in g.binary_values.items():
                out[b][idx] = v
            if not cont or idx.size == 0:
                continue
            mean, cov = np.asarray(g.mean), np.asarray(g.cov)
            low, high = np.asarray(g.low), np.asarray(g.high)
            got = np.empty((0, len(cont)))
            for _ in range(max_tries):
                draw = rng.multivariate_normal(mean, cov, size=2 * (idx.size - len(got)) + 8, method="eigh")
                ok = np.all((draw >= low) & (draw <= high), axis=1)
                got = np.concatenate([got, draw[ok]])[: idx.size]
                if len(got) == idx.size:
                    break
            if len(got) < idx.size:  # a degenerate group: clip instead
                extra = rng.multivariate_normal(mean, cov, size=idx.size - len(got), method="eigh")
                got = np.concatenate([got, np.clip(extra, low, high)])
            for j, c in enumerate(cont):
                out[c][idx] = got[:, j]
        return out

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The training range of every covariate (over all groups)."""
        r: dict[str, tuple[float, float]] = {}
        for g in self.groups:
            for b, v in g.binary_values.items():
                lo, hi = r.get(b, (v, v))
                r[b] = (min(lo, v), max(hi, v))
            for j, c in enumerate(self.continuous):
                lo, hi = r.get(c, (g.low[j], g.high[j]))
                r[c] = (min(lo, g.low[j]), max(hi, g.high[j]))
        return r

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "binary": self.binary,
            "groups": [g.__dict__ for g in self.groups],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CovariateDistribution:
        return cls(
            names=list(d["names"]),
            binary=list(d.get("binary", [])),
            groups=[CovariateGroup(**g) for g in d.get("groups", [])],
        )
