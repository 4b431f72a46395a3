"""Bring a NIfTI volume into an ImageSpace: register real scans to MNI152, resample images already there.

Two pipelines; ``PreprocessParams.mode`` chooses (``auto``, the default, decides per image):

``register`` — real head scans (any orientation, field of view, site):
  1. a head mask (Otsu) and N4 bias-field correction (SimpleITK), fitted at ~6 mm;
  2. affine (or ``rigid``) registration to nilearn's MNI152 2009a T1, initialised from the top of the head
     so that a neck in the field of view does not pull it down (:mod:`synthkit.data.register`);
  3. the output grid (the space's shape and spacing, RAS) is centred on the template brain's bounding box, so
     voxel ``(i, j, k)`` is at MNI ``brain_center + ((i, j, k) - (shape - 1) / 2) * spacing``;
  4. one anti-aliased resampling from the scan (Gaussian pre-filter with σ = (f − 1) / 2 input voxels for a
     downsampling factor f, then trilinear);
  5. brain extraction with the template's brain mask brought to the subject by the registration;
  6. site-harmonising intensity standardisation inside the brain (:mod:`synthkit.data.intensity`).

``resample`` — images already in the template's space and skull-stripped (the phantom; UK Biobank's
``T1_brain_to_MNI``): MONAI ``Orientation("RAS")``, an anti-aliasing ``GaussianSmooth`` when downsampling,
``Spacing``, ``CropForeground`` + ``ResizeWithPadOrCrop`` (the foreground's box centred in the grid) and
``ScaleIntensityRangePercentiles`` to [0, 1].

``signed`` (``intensity: signed``) — signed statistical maps already in MNI space (ICA components, z-maps):
one anti-aliased linear resampling onto the grid centred as the phantom's (on the MNI152 head's centre),
background removal with the MNI152 brain mask, and a sign-preserving normalisation: division by the largest
|value| inside the mask, so maps lie in [-1, 1] with 0 kept at 0 (the ICN DDPM paper's "normalization and
background removal"; a percentile scaling would move zero and lose the sign).

``auto`` uses ``resample`` for images whose NIfTI header says they are in a template space (``sform_code``,
or ``qform_code`` when the sform is unset, equal to 4 = MNI152 or 5 = another template; FSL, UK Biobank and
``synthkit phantom`` write it) and ``register`` for every other image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy import ndimage as ndi

from synthkit.data.io import load_nifti, template_space_code
from synthkit.errors import NiftiError
from synthkit.space import ImageSpace

#: Bump when the preprocessing changes what it outputs, so caches are invalidated.
PREPROCESS_VERSION = 2
Mode = Literal["auto", "register", "resample"]


@dataclass(frozen=True)
class PreprocessParams:
    """Settings of the preprocessing (the recipe's ``data.preprocess`` block; part of the cache key)."""

    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    #: foreground = voxels above this fraction of the 99th intensity percentile (``resample``: centring)
    foreground_fraction: float = 0.1
    mode: Mode = "auto"
    #: ``affine`` (12 parameters, brains of every size brought to the template's) or ``rigid`` (head size kept)
    registration: Literal["affine", "rigid"] = "affine"
    bias_correction: bool = True
    #: ``resample``: centre each image's foreground in the grid (off: keep the image where its header puts it,
    #: so that label maps on the same grid stay aligned, as the ``deformation`` family's Dice needs)
    centre: bool = True
    #: ``percentile``: intensities scaled to [0, 1]; ``signed``: the signed-map pipeline (see module docstring)
    intensity: Literal["percentile", "signed"] = "percentile"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "version": PREPROCESS_VERSION}

    @classmethod
    def from_config(cls, cfg: Any) -> PreprocessParams:
        """From a recipe's ``PreprocessConfig`` (or any object with the same attributes)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: getattr(cfg, k) for k in fields if hasattr(cfg, k)})


@dataclass
class Preprocessed:
    """A preprocessed volume and how it was made."""

    image: np.ndarray  # float32, space.shape, [0, 1]
    mode: str  # the pipeline used: register | resample
    brain_mask: np.ndarray | None = None  # bool, space.shape (register)
    grid_affine: np.ndarray | None = None  # output voxel → template world (MNI mm) (register)
    template_to_subject: np.ndarray | None = None  # 4×4, template world → subject world (register)
    metric: float | None = None  # final registration metric (Mattes MI, lower is better)

    def grid_to_native(self, native_affine: np.ndarray) -> np.ndarray:
        """4×4 map from output voxel indices to the scan's voxel indices (register mode)."""
        if self.grid_affine is None or self.template_to_subject is None:
            raise ValueError("only a registered volume has a map to its scan")
        return np.linalg.inv(native_affine) @ self.template_to_subject @ self.grid_affine

    def to_output_grid(self, native: np.ndarray, native_affine: np.ndarray, order: int = 1) -> np.ndarray:
        """Bring another array of the scan's grid (a label map, a truth mask) onto the output grid."""
        g = self.grid_to_native(native_affine)
        idx = np.indices(self.image.shape, dtype=np.float64).reshape(3, -1)
        vox = g[:3, :3] @ idx + g[:3, 3:4]
        out = ndi.map_coordinates(np.asarray(native, dtype=np.float32), vox, order=order, mode="constant")
        return out.reshape(self.image.shape)

    def native_brain_mask(self, shape: tuple[int, ...], native_affine: np.ndarray) -> np.ndarray:
        """The template's brain mask brought back to the scan's grid (bool)."""
        from synthkit.data.register import template

        if self.template_to_subject is None:
            raise ValueError("only a registered volume has a brain mask in its scan's grid")
        tpl = template()
        m = np.linalg.inv(tpl.affine_1mm) @ np.linalg.inv(self.template_to_subject) @ native_affine
        idx = np.indices(shape, dtype=np.float64).reshape(3, -1)
        vox = m[:3, :3] @ idx + m[:3, 3:4]
        out = ndi.map_coordinates(tpl.mask_1mm.astype(np.float32), vox, order=1, mode="constant")
        return out.reshape(shape) > 0.5


def preprocess(
    data: np.ndarray,
    affine: np.ndarray,
    space: ImageSpace,
    params: PreprocessParams | None = None,
    *,
    in_template_space: bool = False,
) -> Preprocessed:
    """Preprocess one volume into ``space`` (see the module docstring for the two pipelines)."""
    p = params or PreprocessParams()
    if data.ndim != 3:
        raise NiftiError(f"expected a 3D volume, got shape {list(data.shape)}")
    if p.intensity == "signed":
        return _signed(data, affine, space)
    mode = p.mode if p.mode != "auto" else ("resample" if in_template_space else "register")
    if mode == "resample":
        return Preprocessed(_resample(data, affine, space, p), "resample")
    return _register(data, affine, space, p)


def preprocess_array(
    data: np.ndarray, affine: np.ndarray, space: ImageSpace, params: PreprocessParams | None = None
) -> np.ndarray:
    """The ``resample`` pipeline unless ``params.mode`` is ``register`` (float32, [0, 1])."""
    return preprocess(data, affine, space, params, in_template_space=True).image


def preprocess_file(
    path: str | Path, space: ImageSpace, params: PreprocessParams | None = None, *, volume: int | None = None
) -> np.ndarray:
    """Load a NIfTI file and preprocess it into ``space``."""
    return preprocess_file_full(path, space, params, volume=volume).image


def preprocess_file_full(
    path: str | Path, space: ImageSpace, params: PreprocessParams | None = None, *, volume: int | None = None
) -> Preprocessed:
    """Like :func:`preprocess_file`, with the brain mask and the transforms."""
    data, affine = load_nifti(path, volume=volume)
    try:
        return preprocess(data, affine, space, params, in_template_space=template_space_code(path) > 0)
    except NiftiError as e:
        raise NiftiError(f"{path}: {e}") from None


def _register(data: np.ndarray, affine: np.ndarray, space: ImageSpace, p: PreprocessParams) -> Preprocessed:
    from synthkit.data import register as reg
    from synthkit.data.intensity import standardise

    data = np.clip(np.asarray(data, dtype=np.float32), 0, None)
    small, small_aff = reg.downsample(data, affine, reg.MOVING_SPACING)
    head = reg.head_mask(small)
    if head.sum() < 1000:
        raise NiftiError("too little foreground to be a head scan")
    if p.bias_correction:
        grids = [(small.shape, small_aff), (data.shape, affine)]
        field_small, field = reg.bias_field(small, small_aff, head, grids=grids)
        small, data = small / field_small, data / field
    m, metric = reg.register(small, small_aff, reg.initial_translation(head, small_aff), p.registration)
    tpl = reg.template()
    grid = ImageSpace.centered(space.shape, space.spacing, center=tuple(tpl.brain_center)).affine_array
    result = Preprocessed(np.empty(0), "register", None, grid, m, metric)
    g = result.grid_to_native(affine)
    # anti-aliasing: σ = (f - 1) / 2 scan voxels along each scan axis, f = scan voxels per output voxel
    footprint = np.abs(g[:3, :3]).max(axis=1)
    sigma = np.maximum(0.0, (footprint - 1.0) / 2.0)
    src = ndi.gaussian_filter(data, sigma) if np.any(sigma > 0) else data
    idx = np.indices(space.shape, dtype=np.float64).reshape(3, -1)
    image = ndi.map_coordinates(src, g[:3, :3] @ idx + g[:3, 3:4], order=1, mode="constant").reshape(space.shape)
    to_tpl = np.linalg.inv(tpl.affine_1mm) @ grid
    mask = ndi.map_coordinates(tpl.mask_1mm.astype(np.float32), to_tpl[:3, :3] @ idx + to_tpl[:3, 3:4], order=1)
    mask = mask.reshape(space.shape) > 0.5
    if mask.sum() < 30 or not np.any(image[mask] > 0):
        raise NiftiError("the registered brain is empty (the scan may not be a head)")
    try:
        result.image = standardise(image, mask)
    except ValueError as e:
        raise NiftiError(f"intensity standardisation failed ({e}): is it a T1 head scan?") from None
    result.brain_mask = mask
    return result


def signed_grid(space: ImageSpace) -> ImageSpace:
    """The grid signed maps are resampled onto: ``space``'s shape and spacing centred on the MNI152 head's
    centre (as the phantom's grid), so that voxel (i, j, k) is at a fixed MNI coordinate."""
    from synthkit.data.phantom import template

    return ImageSpace.centered(space.shape, space.spacing, center=tuple(template().center))


def brain_slices(space: ImageSpace, min_fraction: float = 0.25) -> dict[int, float]:
    """Axial slices of the signed grid whose brain area is at least ``min_fraction`` of the largest slice's:
    slice index → its z position (MNI mm)."""
    from synthkit.data.icn_phantom import tissue_on_grid

    grid = signed_grid(space)
    _, mask = tissue_on_grid(grid)
    area = mask.sum(axis=(0, 1))
    a = grid.affine_array
    return {int(k): float(a[2, 2] * k + a[2, 3]) for k in np.flatnonzero(area >= min_fraction * area.max())}


def _signed(data: np.ndarray, affine: np.ndarray, space: ImageSpace) -> Preprocessed:
    from synthkit.data.icn_phantom import tissue_on_grid

    grid = signed_grid(space)
    g = np.linalg.inv(affine) @ grid.affine_array
    footprint = np.abs(g[:3, :3]).max(axis=1)  # scan voxels per output voxel, along each scan axis
    sigma = np.maximum(0.0, (footprint - 1.0) / 2.0)
    src = ndi.gaussian_filter(np.asarray(data, np.float32), sigma) if np.any(sigma > 0) else data
    idx = np.indices(space.shape, dtype=np.float64).reshape(3, -1)
    image = ndi.map_coordinates(src, g[:3, :3] @ idx + g[:3, 3:4], order=1, mode="constant").reshape(space.shape)
    _, mask = tissue_on_grid(grid)
    image = np.where(mask, image, 0.0)
    scale = float(np.abs(image).max())
    if not scale > 0:
        raise NiftiError("the map is zero inside the MNI152 brain mask (is it in MNI space?)")
    return Preprocessed((image / scale).astype(np.float32), "signed", mask, grid.affine_array)


def _resample(data: np.ndarray, affine: np.ndarray, space: ImageSpace, p: PreprocessParams) -> np.ndarray:
    from monai.data import MetaTensor
    from monai.transforms import (
        CropForeground,
        GaussianSmooth,
        Orientation,
        ResizeWithPadOrCrop,
        ScaleIntensityRangePercentiles,
        Spacing,
    )

    img = MetaTensor(torch.as_tensor(np.asarray(data, dtype=np.float32))[None], affine=torch.as_tensor(affine))
    img = Orientation(axcodes="RAS", labels=None)(img)
    factor = np.asarray(space.spacing) / np.asarray(img.pixdim[:3], dtype=np.float64)
    if np.any(factor > 1.0 + 1e-6):  # anti-aliasing before downsampling
        img = GaussianSmooth(sigma=tuple(float(s) for s in np.maximum(0.0, (factor - 1.0) / 2.0)))(img)
    img = Spacing(pixdim=space.spacing, mode="bilinear", padding_mode="zeros")(img)
    ref = float(torch.quantile(img.flatten()[:: max(1, img.numel() // 2_000_000)].float(), 0.99))
    threshold = p.foreground_fraction * ref
    if ref <= 0:
        raise NiftiError("the image has no foreground (its 99th intensity percentile is not positive)")
    if p.centre:
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


class _Above:
    """A picklable foreground selector (MONAI calls it on the image)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x > self.threshold
