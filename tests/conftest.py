"""Shared fixtures: tiny phantom data built in tmp_path; a session-wide cache for the phantom template."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# One cache for the whole session (and the subprocesses it starts): the phantom template is built once.
_CACHE = Path(os.environ.get("SYNTHKIT_TEST_CACHE", Path(__file__).resolve().parents[1] / ".pytest_cache" / "synthkit"))
os.environ["SYNTHKIT_CACHE"] = str(_CACHE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_space():
    """A 20×28×20 grid at 8 mm: the phantom in milliseconds."""
    from synthkit.data.phantom import default_space

    return default_space(8.0)


@pytest.fixture(scope="session")
def phantom_cohort(tmp_path_factory, tiny_space) -> Path:
    """12 phantom subjects at 8 mm on disk, with manifest.csv."""
    from synthkit.data.phantom import write_cohort

    out = tmp_path_factory.mktemp("phantoms")
    return write_cohort(out, 12, space=tiny_space, seed=3, progress=False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
