"""The Generator protocol, the Samples it returns, and safe checkpoint files.

A checkpoint is one ``.safetensors`` file: tensors are the weights, and the header's ``synthkit`` metadata
entry is JSON (kind, recipe, ImageSpace, conditioning statistics, training covariate distribution, versions).
Loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from synthkit.errors import CheckpointError
from synthkit.safefile import META_KEY, read_meta, stamp
from synthkit.space import ImageSpace


@dataclass
class Samples:
    """What a generator returns for ``n`` samples.

    Attributes:
        images: float32 (n, D, H, W) in [0, 1].
        labels: uint8 (n, D, H, W) label maps, or None when the generator makes none.
        measures: per-sample values the generator knows exactly (e.g. the phantom's ventricular volume),
            each an array of length n; stored as ``meta/<name>`` next to the conditions.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    measures: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"Samples.images must be (n, D, H, W), got shape {self.images.shape}")
        if self.labels is not None and self.labels.shape != self.images.shape:
            raise ValueError("Samples.labels must have the images' shape")

    def __len__(self) -> int:
        return int(self.images.shape[0])


@runtime_checkable
class Generator(Protocol):
    """Anything that turns seeds (and conditions) into images of a fixed ImageSpace.

    Sample ``i`` draws all its randomness from ``seeds[i]``: batch size, order and worker never change a
    sample. Conditions are in the user's units (years, mm³).
    """

    kind: str
    space: ImageSpace
    condition_names: tuple[str, ...]

    def sample(
        self,
        n: int,
        *,
        seeds: Sequence[int],
        conditions: Mapping[str, np.ndarray] | None = None,
        device: str = "cpu",
    ) -> Samples: ...

    def describe(self) -> dict[str, Any]:
        """Provenance for a store: kind, checkpoint sha256, recipe, space."""
        ...


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_seeds(n: int, seeds: Sequence[int]) -> list[int]:
    if len(seeds) != n:
        raise ValueError(f"need one seed per sample: n={n}, got {len(seeds)} seeds")
    return [int(s) for s in seeds]


# --------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write weights and JSON metadata to one ``.safetensors`` file (atomically)."""
    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    tmp = p.with_suffix(p.suffix + ".tmp")
    save_file(contiguous, str(tmp), metadata={META_KEY: stamp(meta)})
    tmp.replace(p)
    return p


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint (reads only the header)."""
    return _open(path)[1]


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``(tensors, meta)`` from a synthkit checkpoint; never unpickles.

    Raises:
        CheckpointError: missing, truncated or not-safetensors file (a pickle is refused), or no synthkit
            metadata.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p, meta = _open(path)
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{p}: damaged checkpoint ({str(e).splitlines()[0]})") from None
    return tensors, meta


def _open(path: str | Path) -> tuple[Path, dict[str, Any]]:
    return read_meta(path, "checkpoint")
