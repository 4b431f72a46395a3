"""A preprocessed-cohort cache, so training and audits do not re-decode NIfTI every epoch.

Each preprocessed volume is one ``.npy`` (float16) named by a hash of the source file's path, size and mtime,
the target ImageSpace and the preprocessing parameters (mode, registration, bias correction, percentiles and
the pipeline's version), under ``cache_dir``. Writes are atomic (temporary file
then rename), so parallel readers and writers never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from synthkit.data.preprocess import PreprocessParams, preprocess_file
from synthkit.errors import NiftiError
from synthkit.space import ImageSpace


def default_cache_dir() -> Path:
    """``$SYNTHKIT_CACHE`` or ``~/.cache/synthkit``."""
    env = os.environ.get("SYNTHKIT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "synthkit"


class PreprocessedCache:
    """Preprocessed volumes of one ImageSpace, keyed by source file identity."""

    def __init__(
        self, space: ImageSpace, params: PreprocessParams | None = None, cache_dir: str | Path | None = None
    ) -> None:
        self.space = space
        self.params = params or PreprocessParams()
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "preprocessed"
        self._settings = json.dumps({"space": space.to_dict(), "params": self.params.to_dict()}, sort_keys=True)

    def key(self, path: str | Path, volume: int | None = None) -> str:
        p = Path(path).resolve()
        try:
            st = p.stat()
        except OSError:
            raise NiftiError(f"{path}: file not found") from None
        if not p.is_file():
            raise NiftiError(f"{path}: is a folder, not a NIfTI file")
        ident = json.dumps([str(p), st.st_size, st.st_mtime_ns, volume, self._settings])
        return hashlib.sha256(ident.encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, path: str | Path, volume: int | None = None) -> np.ndarray:
        """The preprocessed volume (float32), computed and stored on first use."""
        f = self._file(self.key(path, volume))
        if f.exists():
            try:
                return np.load(f).astype(np.float32)
            except (OSError, ValueError):
                f.unlink(missing_ok=True)  # a damaged cache entry is recomputed
        arr = preprocess_file(path, self.space, self.params, volume=volume)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, arr.astype(np.float16))
        os.replace(tmp, f)
        return arr.astype(np.float16).astype(np.float32)

    def get_many(
        self,
        paths: Sequence[str | Path],
        volumes: Sequence[int | None] | None = None,
        *,
        threads: int = 2,
        progress: str | None = None,
    ) -> np.ndarray:
        """Stack many preprocessed volumes, shape (n, *space.shape), float32."""
        vols = list(volumes) if volumes is not None else [None] * len(paths)
        out = np.empty((len(paths), *self.space.shape), dtype=np.float32)

        def work(i: int) -> int:
            out[i] = self.get(paths[i], vols[i])
            return i

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            it = pool.map(work, range(len(paths)))
            if progress:
                from synthkit.progress import track

                it = track(it, total=len(paths), description=progress, transient=True)
            for _ in it:
                pass
        return out
