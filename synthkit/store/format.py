"""The cohort store format, version 2 (``docs/store-format.md`` is the full specification).

A zarr v3 group::

    attrs["synthkit"]   StoreInfo as JSON (format_version, space, dtype, n, shard_size, generator, ...)
    images      (N, X, Y, Z)  float16 in [0, 1] (or uint8 = round(255·x)); chunks (1, X, Y, Z), shards (S, X, Y, Z)
    labels      (N, X, Y, Z)  uint8, when the generator makes label maps; same chunking
    meta/<name> (N,)          float64 conditions and measures; seed uint64; qc_attempts uint8; qc_pass bool;
                              extrapolated bool; chunks (S,)
    shard_done  (N_shards,)   bool, chunks (1,): written last by the one task that wrote that shard
    checksums/  (version 2) CRC-32C of every chunk written: images, labels (N,), meta (N_shards, M),
                plan (N_shards, P); -1 = no chunk on disk (it equals the fill value)
    plan_copy/<name>          (version 2) a second copy of each plan array, so a damaged plan chunk can be repaired
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from zarr.codecs import BloscCodec, BloscShuffle

from synthkit.errors import StoreError
from synthkit.space import ImageSpace

FORMAT_VERSION = 2
#: versions this synthkit reads (version 1 has no checksums and no plan copy)
READABLE_VERSIONS = (1, 2)
ATTRS_KEY = "synthkit"
IMAGES = "images"
LABELS = "labels"
META = "meta"
SHARD_DONE = "shard_done"
SEED = "seed"
QC_ATTEMPTS = "qc_attempts"
QC_PASS = "qc_pass"
EXTRAPOLATED = "extrapolated"
CHECKSUMS = "checksums"
PLAN_COPY = "plan_copy"
#: checksum values: CRC-32C (0 … 2³²−1), or one of these
CRC_ABSENT = -1  # no chunk on disk: it equals the fill value
CRC_UNRECORDED = -2  # the fill value of the checksum arrays: nothing recorded yet
#: meta arrays every store has, besides the conditions and measures
BOOKKEEPING = (SEED, QC_ATTEMPTS, QC_PASS, EXTRAPOLATED)
IMAGE_DTYPES = ("float16", "uint8")
#: Blosc compressors for images: zstd (default; smaller) or lz4 (~2× faster random reads, ~40 % larger)
CODECS = ("zstd", "lz4")


@dataclass
class StoreInfo:
    """Everything in ``attrs["synthkit"]``; written once, at creation."""

    space: ImageSpace
    n: int
    shard_size: int
    dtype: str
    root_seed: int
    condition_names: list[str]
    measure_names: list[str]
    has_labels: bool
    generator: dict[str, Any]
    qc: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    codec: str = "zstd"
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.n < 1:
            raise StoreError("a store needs at least one sample")
        if self.shard_size < 1:
            raise StoreError("shard size must be at least 1")
        if self.dtype not in IMAGE_DTYPES:
            raise StoreError(f"image dtype must be one of {', '.join(IMAGE_DTYPES)}, got {self.dtype!r}")
        if self.codec not in CODECS:
            raise StoreError(f"image codec must be one of {', '.join(CODECS)}, got {self.codec!r}")

    @property
    def n_shards(self) -> int:
        return -(-self.n // self.shard_size)

    def shard_range(self, shard: int) -> tuple[int, int]:
        if not 0 <= shard < self.n_shards:
            raise StoreError(f"shard {shard} out of range (0..{self.n_shards - 1})")
        a = shard * self.shard_size
        return a, min(a + self.shard_size, self.n)

    def plan_arrays(self) -> list[str]:
        """meta arrays written at creation (the plan): their checksums are in ``checksums/plan``."""
        return [*self.condition_names, SEED, EXTRAPOLATED]

    def task_meta_arrays(self) -> list[str]:
        """meta arrays a shard's task writes: their checksums are in ``checksums/meta``."""
        return [QC_ATTEMPTS, QC_PASS, *self.measure_names]

    @property
    def has_checksums(self) -> bool:
        return self.format_version >= 2

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["space"] = self.space.to_dict()
        d["n_shards"] = self.n_shards
        d["intensity_range"] = [0.0, 1.0]
        d["uint8_scale"] = 255 if self.dtype == "uint8" else None
        if self.has_checksums:
            d["checksum_columns"] = {"meta": self.task_meta_arrays(), "plan": self.plan_arrays()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StoreInfo:
        version = d.get("format_version")
        if version not in READABLE_VERSIONS:
            readable = ", ".join(map(str, READABLE_VERSIONS))
            raise StoreError(f"store format version {version} is not supported (this synthkit reads {readable})")
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        kw["space"] = ImageSpace.from_dict(d["space"])
        return cls(**kw)


def image_codec(dtype: str, codec: str = "zstd") -> BloscCodec:
    """Blosc zstd (clevel 3) or lz4 (clevel 5); byte shuffle for float16, bit shuffle for uint8."""
    shuffle = BloscShuffle.shuffle if dtype == "float16" else BloscShuffle.bitshuffle
    return BloscCodec(cname=codec, clevel=3 if codec == "zstd" else 5, shuffle=shuffle)


def encode_images(images: np.ndarray, dtype: str) -> np.ndarray:
    """float32 in [0, 1] → the stored dtype (values outside [0, 1] are clipped; NaN becomes 0)."""
    x = np.clip(np.nan_to_num(np.asarray(images, dtype=np.float32), nan=0.0), 0.0, 1.0)
    if dtype == "uint8":
        return np.rint(x * 255.0).astype(np.uint8)
    return x.astype(np.float16)


def decode_images(stored: np.ndarray) -> np.ndarray:
    """Stored images → float32 in [0, 1]."""
    out = stored.astype(np.float32)
    if stored.dtype == np.uint8:
        out /= 255.0  # in place: one allocation per image
    return out
