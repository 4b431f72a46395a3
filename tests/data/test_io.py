import gzip

import nibabel as nib
import numpy as np
import pytest

from synthkit.data.io import load_nifti, save_nifti
from synthkit.errors import NiftiError


def make(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def test_round_trip_keeps_data_and_affine(tmp_path, rng):
    data = rng.random((5, 6, 7)).astype(np.float32)
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    aff[:3, 3] = [1, 2, 3]
    p = save_nifti(data.astype(np.float16), aff, tmp_path / "a.nii.gz")  # float16 is written as float32
    back, back_aff = load_nifti(p)
    assert back.dtype == np.float32
    assert np.allclose(back, data.astype(np.float16).astype(np.float32))
    assert np.allclose(back_aff, aff)


def test_integer_images_are_read_as_float(tmp_path):
    p = make(tmp_path / "i.nii.gz", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    data, _ = load_nifti(p)
    assert data.dtype == np.float32 and data[1, 2, 3] == 23


def test_truncated_gzip_is_reported(tmp_path, rng):
    p = make(tmp_path / "t.nii.gz", rng.random((20, 20, 20)).astype(np.float32))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(NiftiError, match="t.nii.gz: truncated or corrupt"):
        load_nifti(p)


def test_garbage_file_is_reported(tmp_path):
    p = tmp_path / "g.nii.gz"
    p.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(NiftiError, match="g.nii.gz: not a readable NIfTI"):
        load_nifti(p)


def test_missing_file(tmp_path):
    with pytest.raises(NiftiError, match="file not found"):
        load_nifti(tmp_path / "none.nii.gz")


def test_4d_needs_a_volume_index(tmp_path, rng):
    data = rng.random((4, 4, 4, 3)).astype(np.float32)
    p = make(tmp_path / "4d.nii.gz", data)
    with pytest.raises(NiftiError, match="4D image"):
        load_nifti(p)
    vol, _ = load_nifti(p, volume=2)
    assert np.allclose(vol, data[..., 2])
    with pytest.raises(NiftiError, match="out of range"):
        load_nifti(p, volume=3)


def test_trailing_singleton_dimension_is_3d(tmp_path, rng):
    p = make(tmp_path / "s.nii.gz", rng.random((4, 4, 4, 1)).astype(np.float32))
    assert load_nifti(p)[0].shape == (4, 4, 4)


def test_nan_voxels_are_reported(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    data[1, 1, 1] = np.nan
    data[2, 2, 2] = np.inf
    p = make(tmp_path / "n.nii.gz", data)
    with pytest.raises(NiftiError, match="2 voxels are NaN or infinite"):
        load_nifti(p)
    assert load_nifti(p, check_finite=False)[0].shape == (4, 4, 4)
