"""The plan of a run: N condition rows and N seeds, fixed before any sample is generated.

Conditions come from, in order of precedence: a conditions CSV (one row per sample); ``--condition`` specs
(``NAME=VALUE``, ``NAME=uniform(a,b)``, ``NAME=normal(m,s)``, ``NAME=linspace(a,b)``; a categorical condition
such as an ``icn`` model's network by name, ``network=DefaultMode`` or ``network=Visual,DefaultMode`` cycled,
and when not given, every category in turn, so each gets the same number of samples); and for every other
covariate of the model's training distribution, a joint draw from that distribution given the requested
values. A sample is flagged ``extrapolated`` when a value is outside the training range or the row lies where
the training set has no subjects (``CovariateDistribution.supported``). Every random draw comes
from the run's plan stream (``seeding.plan_rng(root_seed)``), so a plan is reproducible from its seed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synthkit.data.covariates import CovariateDistribution
from synthkit.errors import UsageError
from synthkit.seeding import plan_rng, sample_seeds

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.+?)\s*$")
_FUNC = re.compile(rf"^(?P<fn>uniform|normal|linspace)\(\s*(?P<a>{_NUM})\s*,\s*(?P<b>{_NUM})\s*\)$")
_CONST = re.compile(rf"^{_NUM}$")


@dataclass(frozen=True)
class ConditionSpec:
    """One ``--condition``: a constant or a distribution for one condition."""

    name: str
    kind: str  # const | uniform | normal | linspace | category
    a: float
    b: float = 0.0
    #: ``category``: the indices of the named categories, cycled over the samples
    codes: tuple[int, ...] = field(default=())

    @classmethod
    def parse(cls, text: str, categories: Mapping[str, Sequence[str]] | None = None) -> ConditionSpec:
        """Parse ``NAME=…``; ``categories`` names the model's categorical conditions and their categories."""
        m = _SPEC.match(text)
        if m is None:
            raise UsageError(
                f"--condition {text!r}: expected NAME=VALUE, NAME=uniform(a,b), NAME=normal(m,s) or NAME=linspace(a,b)"
            )
        name, value = m["name"], m["value"].replace(" ", "")
        if categories and name in categories:
            known = [str(c) for c in categories[name]]
            asked = [v for v in value.split(",") if v]
            unknown = [v for v in asked if v not in known]
            if unknown or not asked:
                raise UsageError(
                    f"--condition {text!r}: unknown {name} {', '.join(map(repr, unknown)) or '(none given)'}; "
                    f"the model knows: {', '.join(known)}"
                )
            return cls(name, "category", 0.0, codes=tuple(known.index(v) for v in asked))
        if _CONST.match(value):
            if not np.isfinite(float(value)):
                raise UsageError(f"--condition {text!r}: {value} is not a finite number")
            return cls(name, "const", float(value))
        f = _FUNC.match(value)
        if f is None:
            raise UsageError(
                f"--condition {text!r}: {value!r} is not a number, uniform(a,b), normal(m,s) or linspace(a,b)"
            )
        a, b = float(f["a"]), float(f["b"])
        if not (np.isfinite(a) and np.isfinite(b)):
            raise UsageError(f"--condition {text!r}: every parameter must be a finite number")
        if f["fn"] == "uniform" and not a < b:
            raise UsageError(f"--condition {text!r}: uniform(a,b) needs a < b")
        if f["fn"] == "normal" and b <= 0:
            raise UsageError(f"--condition {text!r}: normal(m,s) needs s > 0")
        return cls(name, f["fn"], a, b)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "category":
            return np.resize(np.asarray(self.codes, dtype=np.float64), n)
        if self.kind == "const":
            return np.full(n, self.a)
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b, n)
        if self.kind == "normal":
            return rng.normal(self.a, self.b, n)
        return np.linspace(self.a, self.b, n)


@dataclass
class Plan:
    n: int
    root_seed: int
    conditions: dict[str, np.ndarray]
    seeds: np.ndarray
    extrapolated: np.ndarray

    @property
    def condition_names(self) -> list[str]:
        return list(self.conditions)


def read_conditions_csv(
    path: str | Path, allowed: Sequence[str], n: int | None, categories: Mapping[str, Sequence[str]] | None = None
) -> dict[str, np.ndarray]:
    """Read a conditions table (one row per sample; columns are condition names; a categorical one by name)."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"--conditions {p}: file not found")
    if p.is_dir():
        raise UsageError(f"--conditions {p}: is a folder, not a CSV file")
    try:
        table = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UsageError(f"--conditions {p}: not a readable CSV ({str(e).splitlines()[0]})") from None
    cols = [c for c in table.columns if c not in ("subject_id", "index")]
    unknown = [c for c in cols if c not in allowed]
    if unknown:
        raise UsageError(
            f"--conditions {p}: unknown condition(s) {', '.join(unknown)} (the model takes: {', '.join(allowed)})"
        )
    if not cols:
        raise UsageError(f"--conditions {p}: no condition columns")
    if n is not None and len(table) != n:
        raise UsageError(f"--conditions {p}: has {len(table)} rows but --n is {n}")
    out = {}
    for c in cols:
        if categories and c in categories:
            known = [str(k) for k in categories[c]]
            names = table[c].astype(str).str.strip()
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise UsageError(
                    f"--conditions {p}: column {c!r} has unknown value(s) {', '.join(map(repr, unknown[:5]))}; "
                    f"the model knows: {', '.join(known)}"
                )
            out[c] = np.array([known.index(v) for v in names], dtype=np.float64)
            continue
        values = pd.to_numeric(table[c], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float)))
        if bad.size:
            rows = ", ".join(str(r + 1) for r in bad[:5]) + (" …" if bad.size > 5 else "")
            raise UsageError(f"--conditions {p}: column {c!r} has missing or non-numeric values in row(s) {rows}")
        out[c] = values.to_numpy(dtype=np.float64)
    return out


#: the most samples one store plans: the plan (conditions, seeds) is drawn and written in one go at creation,
#: ~40 bytes a sample in memory (4 GB here), and each shard of 32 is a few files
MAX_SAMPLES = 100_000_000


def check_n(n: int) -> None:
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    if n > MAX_SAMPLES:
        raise UsageError(
            f"--n {n}: a store plans at most {MAX_SAMPLES:,} samples (its plan is written in one go at creation); "
            "split the cohort into several stores with different --seed"
        )


def make_plan(
    n: int,
    root_seed: int,
    *,
    condition_names: Sequence[str],
    distribution: CovariateDistribution | None,
    specs: Sequence[ConditionSpec] = (),
    table: Mapping[str, np.ndarray] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Draw the plan of a run (see module docstring); a categorical condition is held as category indices."""
    check_n(n)
    allowed = list(condition_names)
    for s in specs:
        if s.name not in allowed:
            raise UsageError(
                f"--condition {s.name}: unknown condition (the model takes: {', '.join(allowed) or 'none'})"
            )
    if len({s.name for s in specs}) != len(specs):
        raise UsageError("--condition names a condition twice")
    rng = plan_rng(root_seed)
    conditions: dict[str, np.ndarray] = {}
    for s in specs:
        conditions[s.name] = s.draw(n, rng)
    for k, v in (table or {}).items():
        conditions[k] = np.asarray(v, dtype=np.float64)
    for k, cats in (categories or {}).items():
        if k in allowed and k not in conditions:
            conditions[k] = (np.arange(n) % len(cats)).astype(np.float64)  # every category in turn
    if distribution is not None and distribution.names:
        # the rest is drawn jointly, from training groups that fit the requested values (data/covariates.py)
        drawn = distribution.sample(n, rng, given=conditions)
        conditions.update({k: v for k, v in drawn.items() if k in allowed and k not in conditions})
    for k, v in conditions.items():
        if not np.isfinite(v).all():
            raise UsageError(f"--condition {k}: the values drawn are not all finite (parameters too large)")
    if "sex" in conditions and not np.isin(conditions["sex"], (0.0, 1.0)).all():
        raise UsageError("sex must be 0 (female) or 1 (male) for every sample")
    ordered = {k: conditions[k] for k in allowed if k in conditions}
    return Plan(
        n=n,
        root_seed=root_seed,
        conditions=ordered,
        seeds=sample_seeds(root_seed, range(n)),
        extrapolated=extrapolation_flags(ordered, distribution),
    )


def extrapolation_flags(conditions: Mapping[str, np.ndarray], distribution: CovariateDistribution | None) -> np.ndarray:
    """True for samples with any condition outside the model's training range, or in a region of the
    covariate space with no training subjects (a gap, or an unseen combination: ``supported``)."""
    n = len(next(iter(conditions.values()))) if conditions else 0
    flags = np.zeros(n, dtype=bool)
    if distribution is None:
        return flags
    if conditions:
        flags |= ~distribution.supported(conditions)
    for name, (lo, hi) in distribution.ranges().items():
        if name in conditions:
            v = conditions[name]
            tol = 1e-9 * max(1.0, abs(lo), abs(hi))
            flags |= (v < lo - tol) | (v > hi + tol)
    return flags
