"""Seed derivation: sample *i* of a run draws all its randomness from ``sample_seed(root_seed, i)``.

Seeds come from numpy's ``SeedSequence`` (well-mixed, independent streams), so a sample does not depend on
batch size, worker, order or whether the run was interrupted. Seeds are kept below 2**63 so that they fit
int64 columns in tables as well as uint64 arrays.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_MASK63 = (1 << 63) - 1
_PLAN_STREAM = 0x706C616E  # "plan": the condition-drawing stream, apart from every sample's stream
_RETRY_STREAM = 0x7265747279  # "retry"


def _derive(*key: int) -> int:
    state = np.random.SeedSequence(entropy=[int(k) for k in key]).generate_state(2, np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) & _MASK63


def sample_seed(root_seed: int, index: int) -> int:
    """The seed of sample ``index`` in a run with ``root_seed``."""
    if root_seed < 0 or index < 0:
        raise ValueError("seeds and indices must be non-negative")
    return _derive(root_seed, index)


def sample_seeds(root_seed: int, indices: Iterable[int]) -> np.ndarray:
    """Seeds of many samples, as uint64."""
    return np.array([sample_seed(root_seed, int(i)) for i in indices], dtype=np.uint64)


def retry_seed(seed: int, attempt: int) -> int:
    """The seed of the ``attempt``-th retry of a sample (attempt 0 is the sample's own seed)."""
    if attempt == 0:
        return int(seed)
    return _derive(_RETRY_STREAM, int(seed), attempt)


def plan_rng(root_seed: int) -> np.random.Generator:
    """The generator used to draw a run's conditions (independent of every sample's stream)."""
    return np.random.default_rng(_derive(_PLAN_STREAM, root_seed))


def numpy_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed))
