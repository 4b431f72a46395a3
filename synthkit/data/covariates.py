"""The covariate distribution a model was trained on: default conditions are drawn from it, and requested
conditions in a region without training subjects are flagged (``meta/extrapolated``).

Design — micro-aggregation (Domingo-Ferrer & Mateo-Sanz 2002), chosen because it keeps the joint shape of
the training set and holds no individual's value:

* within each combination of binary covariates (e.g. sex), the training rows are partitioned into groups of
  ``k`` ≥ 5 to ``2k - 1`` neighbours (recursive splits at the widest empty interval, in covariates scaled by
  their SD); each group stores its share of the rows, its mean and its covariance (plus a small jitter,
  ``(step / 4)²``), and its range **rounded outward** to a step (a 1-2-5 number ≥ SD / 10, e.g. 5 years for
  ages spread over decades), so the extremes stored are never a subject's exact value;
* a draw picks a group by share and samples its Gaussian truncated to the group's rounded range: the
  correlations between covariates are kept (each group is local), and a gap in the training set stays empty
  (for ages 23–51 and 68–96, no group's range crosses 55–64);
* a requested value is *supported* when some group of the same binary values has a range containing the
  whole row; anything else is flagged as extrapolated, like out-of-range values;
* when some conditions are requested and the rest drawn, a group is picked with probability ∝ share ×
  likelihood of the requested values, so the drawn covariates fit the requested ones (an age of 80 comes with
  an 80-year-old's ventricles).

Alternatives rejected: resampling training rows with jitter keeps every subject's covariates in the
checkpoint up to the jitter; a per-sex Gaussian (the format before this one) fills gaps with invented
subjects and stores exact per-sex minima and maxima. A binary combination with fewer than ``k`` rows gets no
group of its own: its rows are pooled with the other small ones (a group then stores the share of each binary
value, e.g. 40 % male), so no group describes fewer than ``k`` rows unless the whole training set has fewer.
Repeated scans of one subject count as several rows: give each subject one row to keep the guarantee.
``from_dict`` still reads the older format (one group per binary combination, no ``method``): it draws and
flags as it always did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

K_DEFAULT = 5
#: an empty interval this wide (in SDs of a covariate) among the central rows is always a group boundary
_GAP_SD = 0.25
_CHUNK = 2048


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
    method: str = "per-group-gaussian"  # the format before micro-aggregation
    k: int | None = None
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def continuous(self) -> list[str]:
        return [n for n in self.names if n not in self.binary]

    @classmethod
    def fit(cls, table: Mapping[str, Sequence[float] | np.ndarray], k: int = K_DEFAULT) -> CovariateDistribution:
        """Micro-aggregate training covariates (columns of equal length, no missing values)."""
        if k < 2:
            raise ValueError("k must be at least 2")
        names = list(table)
        cols = {n: np.asarray(table[n], dtype=np.float64) for n in names}
        n_rows = len(next(iter(cols.values()))) if cols else 0
        binary = [n for n in names if n_rows and set(np.unique(cols[n])) <= {0.0, 1.0}]
        cont = [n for n in names if n not in binary]
        x = np.stack([cols[c] for c in cont], axis=1) if cont else np.zeros((n_rows, 0))
        sd = x.std(axis=0) if n_rows else np.zeros(len(cont))
        steps = {c: _nice_step(s / 10.0) for c, s in zip(cont, sd, strict=True)}
        step = np.array([steps[c] for c in cont])
        keys = np.stack([cols[b] for b in binary], axis=1) if binary else np.zeros((n_rows, 0))
        members = _groups_of_rows(x / np.where(sd > 0, sd, 1.0), keys, k)
        groups = [
            _group(x[g], len(g) / n_rows, step, {b: float(cols[b][g].mean()) for b in binary}) for g in members
        ]
        return cls(names, binary, groups, "microaggregation", k, steps)

    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        max_tries: int = 50,
        given: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Draw ``n`` rows; ``given`` values (requested conditions) steer which group each row comes from."""
        out = {name: np.empty(n) for name in self.names}
        if not self.groups or n == 0:
            return out
        which = self._choose_groups(n, rng, given or {})
        cont = self.continuous
        for gi, g in enumerate(self.groups):
            idx = np.flatnonzero(which == gi)
            for b, v in g.binary_values.items():  # v: the share of 1s in the group (0 or 1 in a pure group)
                out[b][idx] = (rng.random(idx.size) < v).astype(np.float64) if 0.0 < v < 1.0 else v
            if cont and idx.size:
                got = _truncated_normal(g, idx.size, rng, max_tries)
                for j, c in enumerate(cont):
                    out[c][idx] = got[:, j]
        return out

    def _choose_groups(self, n: int, rng: np.random.Generator, given: Mapping[str, np.ndarray]) -> np.ndarray:
        """Group of each row: by share, times the likelihood of the row's requested values (in chunks of rows,
        so that 100,000 rows against thousands of groups stay small in memory)."""
        weights = np.array([g.weight for g in self.groups], dtype=np.float64)
        known = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in given.items() if k in self.names}
        if not known:
            return rng.choice(len(self.groups), size=n, p=weights / weights.sum())
        cont = self.continuous
        shares = {b: np.array([g.binary_values[b] for g in self.groups]) for b in known if b in self.binary}
        stats = {}
        for name in (c for c in known if c in cont):
            j = cont.index(name)
            var = np.array([g.cov[j][j] for g in self.groups]) + (self.steps.get(name, 0.0) / 2) ** 2 + 1e-12
            bounds = np.array([[g.mean[j], g.low[j], g.high[j]] for g in self.groups]).T
            stats[name] = (bounds[0], var, bounds[1], bounds[2])
        u = rng.random(n)
        out = np.empty(n, dtype=np.int64)
        for start in range(0, n, _CHUNK):
            rows = slice(start, min(n, start + _CHUNK))
            logp = np.tile(np.log(weights), (rows.stop - rows.start, 1))
            with np.errstate(divide="ignore"):
                for b, share in shares.items():
                    logp += np.log(_binary_probability(known[b][rows, None], share[None]))
            for name, (mean, var, low, high) in stats.items():
                v = known[name][rows, None]
                logp += -0.5 * (v - mean) ** 2 / var - 0.5 * np.log(var)
                logp -= np.where((v >= low) & (v <= high), 0.0, 1e3)  # groups whose range holds the value first
            bad = ~np.isfinite(logp.max(axis=1))
            logp[bad] = np.log(weights)  # no group has the requested binary values: fall back to the shares
            p = np.exp(logp - logp.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out[rows] = np.minimum((np.cumsum(p, axis=1) < u[rows, None]).sum(axis=1), len(self.groups) - 1)
        return out

    def supported(self, conditions: Mapping[str, np.ndarray]) -> np.ndarray:
        """True for rows inside the (rounded) range of some group with the same binary values."""
        names = [c for c in self.names if c in conditions]
        n = len(next(iter(conditions.values()))) if conditions else 0
        ok = np.zeros(n, dtype=bool)
        if not names or not self.groups:
            return np.ones(n, dtype=bool)
        cont = self.continuous
        for g in self.groups:
            inside = np.ones(n, dtype=bool)
            for name in names:
                v = np.asarray(conditions[name], dtype=np.float64)
                if name in g.binary_values:
                    inside &= _binary_probability(v, g.binary_values[name]) > 0
                else:
                    j = cont.index(name)
                    tol = 1e-9 * max(1.0, abs(g.low[j]), abs(g.high[j]))
                    inside &= (v >= g.low[j] - tol) & (v <= g.high[j] + tol)
            ok |= inside
        return ok

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The training range of every covariate (over all groups; rounded outward for micro-aggregates)."""
        r: dict[str, tuple[float, float]] = {}
        for g in self.groups:
            for b, v in g.binary_values.items():
                seen = ([0.0] if v < 1 else []) + ([1.0] if v > 0 else [])
                lo, hi = r.get(b, (seen[0], seen[-1]))
                r[b] = (min(lo, seen[0]), max(hi, seen[-1]))
            for j, c in enumerate(self.continuous):
                lo, hi = r.get(c, (g.low[j], g.high[j]))
                r[c] = (min(lo, g.low[j]), max(hi, g.high[j]))
        return r

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"names": self.names, "binary": self.binary, "groups": [g.__dict__ for g in self.groups]}
        if self.method != "per-group-gaussian":
            d.update(method=self.method, k=self.k, steps=self.steps)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CovariateDistribution:
        """Read either format (``method: microaggregation``, or the older per-sex Gaussians without it)."""
        return cls(
            names=list(d["names"]),
            binary=list(d.get("binary", [])),
            groups=[CovariateGroup(**g) for g in d.get("groups", [])],
            method=str(d.get("method", "per-group-gaussian")),
            k=d.get("k"),
            steps={str(k): float(v) for k, v in (d.get("steps") or {}).items()},
        )


def _nice_step(x: float) -> float:
    """The smallest 1, 2 or 5 × 10^m that is ≥ x (1e-6 for a constant covariate)."""
    if not x > 0:
        return 1e-6
    m = 10.0 ** math.floor(math.log10(x))
    return next(f * m for f in (1.0, 2.0, 5.0, 10.0) if f * m >= x * (1 - 1e-12))


def _binary_probability(v: np.ndarray, share: float) -> np.ndarray:
    """Probability of the value ``v`` (0 or 1) in a group where ``share`` of the rows are 1."""
    return np.where(v == 1.0, share, np.where(v == 0.0, 1.0 - share, 0.0))


def _groups_of_rows(z: np.ndarray, keys: np.ndarray, k: int) -> list[np.ndarray]:
    """Row indices of each group: partitions within binary combinations of ``k`` rows or more; the rows of
    smaller combinations pooled and partitioned together (or, fewer than ``k`` of them, each added to the
    nearest group), so that no group describes fewer than ``k`` rows unless the whole table has fewer."""
    out: list[np.ndarray] = []
    small: list[np.ndarray] = []
    for key in np.unique(keys, axis=0) if len(z) else []:
        rows = np.flatnonzero(np.all(keys == key, axis=1))
        if len(rows) >= k:
            out += [rows[m] for m in _partition(z[rows], k)]
        else:
            small.append(rows)
    pool = np.concatenate(small) if small else np.zeros(0, dtype=int)
    if len(pool) >= k or (len(pool) and not out):
        out += [pool[m] for m in _partition(z[pool], k)]
    elif len(pool):
        centres = np.stack([z[g].mean(0) for g in out])
        largest = int(np.argmax([len(g) for g in out]))
        for r in pool:
            j = int(np.argmin(np.sum((centres - z[r]) ** 2, axis=1))) if z.shape[1] else largest
            out[j] = np.sort(np.append(out[j], r))
    return out


def _partition(z: np.ndarray, k: int) -> list[np.ndarray]:
    """Groups of ``k`` to ``2k - 1`` neighbouring rows (all rows when fewer than ``2k``).

    Recursive splits at the widest empty interval among the split positions that leave ``k`` rows or more on
    both sides and lie in the central half. The covariate split along is the one with an empty interval of at
    least :data:`_GAP_SD` (in SDs of the training set) if any — the widest such — so that a gap in one
    covariate is a boundary between groups even when another covariate has the wider spread (ages 23–51 and
    68–96 with a ventricular volume that grows with age but overlaps across the gap put ages 50 and 70 in one
    group when the split followed the widest spread); else the covariate of widest (scaled) spread, which keeps
    the groups compact. (MDAV, tried first, forms its last groups from the leftovers in the middle of the data —
    across the gap.)
    """
    groups: list[np.ndarray] = []
    stack = [np.arange(len(z))]
    while stack:
        rows = stack.pop()
        n = len(rows)
        if n < 2 * k or z.shape[1] == 0:
            if n:
                groups.append(np.sort(rows))
            continue
        lo, hi = max(k, n // 4), min(n - k, n - n // 4)
        best = None  # (gap, dim, order, cut) of the widest empty interval over all covariates
        for dim in range(z.shape[1]):
            order = rows[np.argsort(z[rows, dim], kind="stable")]
            v = z[order, dim]
            gaps = v[lo : hi + 1] - v[lo - 1 : hi]
            j = int(np.argmax(gaps))
            if best is None or gaps[j] > best[0]:
                best = (float(gaps[j]), dim, order, lo + j)
        assert best is not None
        if best[0] < _GAP_SD:  # no real empty region: split the widest spread for compact groups
            dim = int(np.argmax(np.ptp(z[rows], axis=0)))
            order = rows[np.argsort(z[rows, dim], kind="stable")]
            v = z[order, dim]
            cut = lo + int(np.argmax(v[lo : hi + 1] - v[lo - 1 : hi]))
        else:
            order, cut = best[2], best[3]
        stack += [order[:cut], order[cut:]]
    return sorted(groups, key=lambda g: int(g[0]))


def _group(x: np.ndarray, weight: float, step: np.ndarray, binary: dict[str, float]) -> CovariateGroup:
    d = x.shape[1]
    cov = np.cov(x, rowvar=False).reshape(d, d) if len(x) > 1 else np.zeros((d, d))
    cov = np.nan_to_num(cov) + np.diag((step / 4.0) ** 2)
    low = np.floor(x.min(0) / step) * step
    high = np.ceil(x.max(0) / step) * step
    low = np.where(low >= x.min(0), low - step, low)  # strictly outward: never a subject's value
    high = np.where(high <= x.max(0), high + step, high)
    return CovariateGroup(
        binary_values={b: float(v) for b, v in binary.items()},
        weight=float(weight),
        mean=x.mean(0).tolist(),
        cov=cov.tolist(),
        low=low.tolist(),
        high=high.tolist(),
    )


def _truncated_normal(g: CovariateGroup, size: int, rng: np.random.Generator, max_tries: int) -> np.ndarray:
    """Rejection sampling inside the group's range; clipping after ``max_tries`` (a degenerate group)."""
    mean, cov = np.asarray(g.mean), np.asarray(g.cov)
    low, high = np.asarray(g.low), np.asarray(g.high)
    got = np.empty((0, len(mean)))
    for _ in range(max_tries):
        draw = rng.multivariate_normal(mean, cov, size=2 * (size - len(got)) + 8, method="eigh")
        ok = np.all((draw >= low) & (draw <= high), axis=1)
        got = np.concatenate([got, draw[ok]])[:size]
        if len(got) == size:
            return got
    extra = rng.multivariate_normal(mean, cov, size=size - len(got), method="eigh")
    return np.concatenate([got, np.clip(extra, low, high)])
