"""Conditioning: covariates in user units → the network's context vector.

Each condition is min–max normalised with the training set's range (as Pinaya et al.: e.g. age ↦
(age − 44)/(82 − 44)); values outside [0, 1] are extrapolation, allowed. When the model is trained with
condition dropout (for classifier-free guidance), a last "present" entry is appended: 1 with conditions,
0 in the null context (all zeros), so that "no condition" is distinguishable from "every condition at its
minimum".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class ConditionCodec:
    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    null_flag: bool = False

    @classmethod
    def fit(cls, table: Mapping[str, np.ndarray], names: Sequence[str], null_flag: bool) -> ConditionCodec:
        lows = tuple(float(np.min(table[n])) for n in names)
        highs = tuple(float(np.max(table[n])) for n in names)
        return cls(tuple(names), lows, highs, null_flag)

    @property
    def dim(self) -> int:
        """Length of the context vector (0 for an unconditional model)."""
        return len(self.names) + (1 if self.null_flag and self.names else 0)

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
            v = np.asarray(conditions[name], dtype=np.float64).reshape(-1)
            if v.size != n:
                raise ValueError(f"condition {name!r} has {v.size} values for {n} samples")
            cols.append((v - lo) / (hi - lo) if hi > lo else v - lo)
        if self.null_flag:
            cols.append(np.ones(n))
        return torch.as_tensor(np.stack(cols, axis=1), dtype=torch.float32, device=device)

    def null(self, n: int, device: str | torch.device) -> torch.Tensor | None:
        if not self.names or not self.null_flag:
            return None
        return torch.zeros((n, self.dim), device=device)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "low": list(self.low), "high": list(self.high), "null_flag": self.null_flag}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConditionCodec:
        return cls(tuple(d["names"]), tuple(d["low"]), tuple(d["high"]), bool(d.get("null_flag", False)))
