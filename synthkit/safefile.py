"""Model files that cannot run code: one ``.safetensors`` file, tensors plus JSON metadata under "synthkit".

Used by generator checkpoints (torch tensors) and brain-age models (numpy arrays). Reading checks the file
before trusting it: a pickle (PyTorch's zip or a raw pickle) is refused, a truncated file is detected from its
header, and the metadata must be JSON naming a ``kind``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from synthkit.errors import CheckpointError
from synthkit.version import __version__

META_KEY = "synthkit"


def stamp(meta: Mapping[str, Any]) -> str:
    full = {"synthkit_version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"), **meta}
    return json.dumps(full, sort_keys=True)


def read_meta(path: str | Path, what: str = "checkpoint") -> tuple[Path, dict[str, Any]]:
    """Validate a synthkit safetensors file and return its path and metadata (reads the header only)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: {what} not found")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a folder, not a {what} file (.safetensors)")
    with open(p, "rb") as f:
        head = f.read(9)
    # A safetensors file starts with its header length (u64, little-endian) and then "{"; its first byte can be
    # 0x80 like a pickle's (a header of 128 + 256·k bytes), so look at the header's brace before calling it one.
    if (head[:2] == b"PK" or head[:1] == b"\x80") and head[8:9] != b"{":
        raise CheckpointError(
            f"{p}: this is a pickled file; synthkit only loads .safetensors files (pickles can run arbitrary code)"
        )
    size = p.stat().st_size
    if len(head) < 9 or int.from_bytes(head[:8], "little") + 8 > size:
        raise CheckpointError(f"{p}: truncated or not a safetensors file")
    try:
        with safe_open(str(p), framework="numpy") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            for name in f.keys():  # noqa: SIM118 - safe_open is not a dict; a truncated payload fails here rather than later
                f.get_slice(name)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p}: not a valid safetensors file ({str(e).splitlines()[0]})") from None
    if raw is None:
        raise CheckpointError(f"{p}: a safetensors file without synthkit metadata (not a synthkit {what})")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{p}: its synthkit metadata is not valid JSON") from None
    if not isinstance(meta, dict) or "kind" not in meta:
        raise CheckpointError(f"{p}: its synthkit metadata names no kind")
    return p, meta


def save_numpy(path: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write numpy arrays and JSON metadata atomically."""
    from safetensors.numpy import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata={META_KEY: stamp(meta)})
    tmp.replace(p)
    return p


def load_numpy(path: str | Path, what: str = "model") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from safetensors.numpy import load_file

    p, meta = read_meta(path, what)
    return load_file(str(p)), meta
