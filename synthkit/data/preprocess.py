"""Bring a NIfTI volume into an ImageSpace with MONAI transforms.

Steps (each a MONAI transform on a MetaTensor that carries the affine):
1. ``Orientation("RAS")`` — real cohorts mix RAS, LPS, PSR and oblique-ish headers;
2. ``Spacing(space.spacing)`` — trilinear resampling to the target voxel size;
3. ``CropForeground`` then ``ResizeWithPadOrCrop(space.shape)`` — the head's bounding box is centred in the
   target grid, then cropped or zero-padded to the target shape;
4. ``ScaleIntensityRangePercentiles`` — robust scaling of [p_low, p_high] percentiles to [0, 1], clipped.

The result is a float32 array in the space's grid; the space's affine describes the grid (the head is
centred in it, so the world translation is the space's, not the scanner's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    CropForeground,
    Orientation,
    ResizeWithPadOrCrop,
    ScaleIntensityRangePercentiles,
    Spacing,
)

from synthkit.data.io import load_nifti
from synthkit.errors import NiftiError
from synthkit.space import ImageSpace

#: Bump when the preprocessing changes what it outputs, so caches are invalidated.
PREPROCESS_VERSION = 1


@dataclass(frozen=True)
class PreprocessParams:
    """Intensity and foreground settings of the preprocessing."""

    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    #: foreground = voxels above this fraction of the 99th intensity percentile (finds the head for centring)
    foreground_fraction: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "version": PREPROCESS_VERSION}


def preprocess_array(
    data: np.ndarray, affine: np.ndarray, space: ImageSpace, params: PreprocessParams | None = None
) -> np.ndarray:
    """Reorient, resample, centre, crop/pad and scale one volume into ``space`` (float32, [0, 1])."""
    p = params or PreprocessParams()
    if data.ndim != 3:
        raise NiftiError(f"expected a 3D volume, got shape {list(data.shape)}")
    img = MetaTensor(torch.as_tensor(np.asarray(data, dtype=np.float32))[None], affine=torch.as_tensor(affine))
    img = Orientation(axcodes="RAS", labels=None)(img)
    img = Spacing(pixdim=space.spacing, mode="bilinear", padding_mode="zeros")(img)
    ref = float(torch.quantile(img.flatten()[:: max(1, img.numel() // 2_000_000)].float(), 0.99))
    threshold = p.foreground_fraction * ref
    if ref <= 0:
        raise NiftiError("the image has no foreground (its 99th intensity percentile is not positive)")
    img = CropForeground(select_fn=_Above(threshold), margin=0, allow_smaller=True)(img)
    img = ResizeWithPadOrCrop(spatial_size=space.shape)(img)
    arr = img.as_tensor()
    lo = float(torch.quantile(arr.flatten().float(), p.lower_percentile / 100))
    hi = float(torch.quantile(arr.flatten().float(), p.upper_percentile / 100))
    if hi <= lo:
        raise NiftiError("the image is constant inside the target space; nothing to scale")
    out = ScaleIntensityRangePercentiles(
        lower=p.lower_percentile, upper=p.upper_percentile, b_min=0.0, b_max=1.0, clip=True
    )(arr)
    return np.ascontiguousarray(torch.as_tensor(out)[0].numpy(), dtype=np.float32)


def preprocess_file(
    path: str | Path, space: ImageSpace, params: PreprocessParams | None = None, *, volume: int | None = None
) -> np.ndarray:
    """Load a NIfTI file and preprocess it into ``space``."""
    data, affine = load_nifti(path, volume=volume)
    try:
        return preprocess_array(data, affine, space, params)
    except NiftiError as e:
        raise NiftiError(f"{path}: {e}") from None


class _Above:
    """A picklable foreground selector (MONAI calls it on the image)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x > self.threshold
