"""Conditioning: covariates in user units → the network's context vector.

Each numeric condition is min–max normalised with the training set's range (as Pinaya et al.: e.g. age ↦
(age − 44)/(82 − 44)); values outside [0, 1] are extrapolation, allowed. A categorical condition (e.g. which
functional network to draw) is one-hot over the categories seen in training; through the condition embedding
(:class:`synthkit.models.networks.ConditionEmbedding`) a one-hot input is a learned embedding per category.
When the model is trained with condition dropout (for classifier-free guidance), a last "present" entry is
appended: 1 with conditions, 0 in the null context (all zeros), so that "no condition" is distinguishable
from "every condition at its minimum".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class ConditionCodec:
    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    null_flag: bool = False
    #: categorical condition → its categories, in the order of the one-hot entries
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        table: Mapping[str, np.ndarray],
        names: Sequence[str],
        null_flag: bool,
        categorical: Sequence[str] = (),
        ranges: Mapping[str, tuple[float, float]] | None = None,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> ConditionCodec:
        """Ranges of the numeric conditions and categories of the ``categorical`` ones, from the training table.

        ``ranges`` gives the normalisation ranges instead of the table's exact minima and maxima: a checkpoint
        must not hold an individual's exact value, so training passes the privacy-preserving, outward-rounded
        ranges of :class:`synthkit.data.covariates.CovariateDistribution`. ``categories`` gives a categorical
        condition's categories (then its table column may hold their indices)."""
        given = categories or {}
        cats = {
            n: tuple(str(c) for c in given[n])
            if n in given
            else tuple(sorted({str(v) for v in np.asarray(table[n]).reshape(-1)}))
            for n in categorical
        }
        numeric = [n for n in names if n not in cats]
        ranges = ranges or {}
        lows = {n: float(ranges[n][0]) if n in ranges else float(np.min(table[n])) for n in numeric}
        highs = {n: float(ranges[n][1]) if n in ranges else float(np.max(table[n])) for n in numeric}
        return cls(
            tuple(names),
            tuple(lows.get(n, 0.0) for n in names),
            tuple(highs.get(n, 1.0) for n in names),
            null_flag,
            cats,
        )

    def width(self, name: str) -> int:
        return len(self.categories[name]) if name in self.categories else 1

    @property
    def dim(self) -> int:
        """Length of the context vector (0 for an unconditional model)."""
        if not self.names:
            return 0
        return sum(self.width(n) for n in self.names) + (1 if self.null_flag else 0)

    def encode(
        self, conditions: Mapping[str, np.ndarray] | None, n: int, device: str | torch.device
    ) -> torch.Tensor | None:
        """``(n, dim)`` context for the given conditions (all must be present)."""
        if not self.names:
            return None
        conditions = conditions or {}
        missing = [k for k in self.names if k not in conditions]
        if missing:
            raise ValueError(f"the model needs condition(s) {', '.join(missing)}")
        cols = []
        for name, lo, hi in zip(self.names, self.low, self.high, strict=True):
            raw = np.asarray(conditions[name]).reshape(-1)
            if raw.size != n:
                raise ValueError(f"condition {name!r} has {raw.size} values for {n} samples")
            if name in self.categories:
                cols.extend(self._one_hot(name, raw).T)
                continue
            v = raw.astype(np.float64)
            cols.append((v - lo) / (hi - lo) if hi > lo else v - lo)
        if self.null_flag:
            cols.append(np.ones(n))
        return torch.as_tensor(np.stack(cols, axis=1), dtype=torch.float32, device=device)

    def codes(self, name: str, raw: np.ndarray) -> np.ndarray:
        """A categorical condition's values, given by name or by index into its categories, as indices; an
        unknown name or index is one error naming the known categories."""
        cats = self.categories[name]
        raw = np.asarray(raw).reshape(-1)
        if raw.dtype.kind in "fiu":
            v = raw.astype(np.float64)
            bad = sorted({float(x) for x in v if not (x == round(x) and 0 <= x < len(cats))})
            if bad:
                raise ValueError(
                    f"condition {name!r}: no category with index {', '.join(f'{b:g}' for b in bad[:5])}; "
                    f"the model knows {', '.join(cats)}"
                )
            return v.astype(np.int64)
        index = {c: i for i, c in enumerate(cats)}
        unknown = sorted({str(v) for v in raw} - set(index))
        if unknown:
            raise ValueError(
                f"condition {name!r}: unknown value(s) {', '.join(map(repr, unknown[:5]))}; "
                f"the model knows {', '.join(cats)}"
            )
        return np.array([index[str(v)] for v in raw], dtype=np.int64)

    def _one_hot(self, name: str, raw: np.ndarray) -> np.ndarray:
        codes = self.codes(name, raw)
        out = np.zeros((codes.size, len(self.categories[name])))
        out[np.arange(codes.size), codes] = 1.0
        return out

    def null(self, n: int, device: str | torch.device) -> torch.Tensor | None:
        if not self.names or not self.null_flag:
            return None
        return torch.zeros((n, self.dim), device=device)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "names": list(self.names),
            "low": list(self.low),
            "high": list(self.high),
            "null_flag": self.null_flag,
        }
        if self.categories:
            d["categories"] = {k: list(v) for k, v in self.categories.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConditionCodec:
        cats = {k: tuple(str(c) for c in v) for k, v in (d.get("categories") or {}).items()}
        return cls(tuple(d["names"]), tuple(d["low"]), tuple(d["high"]), bool(d.get("null_flag", False)), cats)
