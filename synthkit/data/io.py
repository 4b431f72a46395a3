"""NIfTI reading and writing with errors that name the file and what is wrong with it."""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from synthkit.errors import NiftiError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(NIFTI_SUFFIXES)


def load_nifti(
    path: str | Path, *, volume: int | None = None, check_finite: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D NIfTI volume as float32 and its voxel-to-RAS affine.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        volume: for a 4D file, the index of the volume to read (e.g. one ICA component); a 4D file without it
            is an error. Trailing singleton dimensions are dropped.
        check_finite: raise if any voxel is NaN or infinite.

    Raises:
        NiftiError: missing, unreadable or truncated file; not 3D; volume index out of range; non-finite
            voxels.
    """
    p = Path(path)
    if not p.exists():
        raise NiftiError(f"{p}: file not found")
    try:
        img = nib.load(str(p))
    except Exception as e:  # nibabel raises many types for a bad header
        raise NiftiError(f"{p}: not a readable NIfTI file, truncated or damaged ({_reason(e)})") from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise NiftiError(f"{p}: not a NIfTI image ({type(img).__name__})")
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 4:
        if volume is None:
            raise NiftiError(f"{p}: 4D image (shape {list(shape)}); expected a 3D volume (pick one with 'volume')")
        if not 0 <= volume < shape[3]:
            raise NiftiError(f"{p}: volume {volume} out of range, the file has {shape[3]} volumes")
    elif len(shape) != 3:
        raise NiftiError(f"{p}: {len(shape)}D image (shape {list(shape)}); expected a 3D volume")
    elif volume not in (None, 0):
        raise NiftiError(f"{p}: 3D image has no volume {volume}")
    try:
        if len(shape) == 4:
            data = np.asarray(img.dataobj[..., volume], dtype=np.float32)
        else:
            data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except (EOFError, OSError, ValueError, zlib.error) as e:
        raise NiftiError(f"{p}: truncated or corrupt image data ({_reason(e)})") from None
    if check_finite and not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise NiftiError(f"{p}: {n_bad} voxels are NaN or infinite")
    return data, np.asarray(img.affine, dtype=np.float64)


def template_space_code(path: str | Path) -> int:
    """The header's template-space code: 4 (MNI152) or 5 (another template) in ``sform_code`` (or in
    ``qform_code`` when the sform is unset), else 0. Reads the header only."""
    try:
        header = nib.load(str(path)).header
        codes = (int(header["sform_code"]), int(header["qform_code"]))
    except Exception:  # an unreadable file fails later, with its own message, when its data is read
        return 0
    code = codes[0] if codes[0] > 0 else codes[1]
    return code if code in (4, 5) else 0


def save_nifti(
    array: np.ndarray,
    affine: np.ndarray,
    path: str | Path,
    *,
    dtype: np.dtype | type = np.float32,
    xform_code: int = 1,
) -> Path:
    """Write a 3D array (``(i, j, k)`` order) with its affine; float16 becomes float32 (NIfTI-1 has none).

    ``xform_code`` is the header's sform/qform code: 1 scanner coordinates, 4 MNI152 (the image is already in
    the template's space, so preprocessing only resamples it).
    """
    arr = np.asarray(array)
    if arr.dtype == np.float16 or np.dtype(dtype) == np.float16:
        dtype = np.float32
    img = nib.Nifti1Image(arr.astype(dtype, copy=False), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=xform_code)
    img.set_sform(img.affine, code=xform_code)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(p))
    return p


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0]}" if msg else type(e).__name__
