import nibabel as nib
import numpy as np
import pytest

from synthkit.data import cache as cache_mod
from synthkit.data.cache import PreprocessedCache
from synthkit.data.preprocess import PreprocessParams, preprocess_array
from synthkit.errors import NiftiError
from synthkit.space import ImageSpace


@pytest.fixture(scope="module")
def head():
    """An off-centre ellipsoid 'head' with an asymmetric blob, in a RAS grid at 2 mm."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in (30, 36, 28)), indexing="ij")
    d = ((x - 17) / 9) ** 2 + ((y - 20) / 12) ** 2 + ((z - 12) / 8) ** 2
    img = np.where(d < 1, 100.0 + 20 * (x > 17), 0.0).astype(np.float32)
    img[15:18, 25:28, 10:13] = 250.0  # a bright asymmetric landmark
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-30, -40, -20]
    return img, aff


SPACE = ImageSpace.centered((24, 28, 20), 3.0)
RESAMPLE = PreprocessParams(mode="resample")


def to_lps(img, aff):
    flipped = img[::-1, ::-1, :].copy()
    f = np.diag([-1.0, -1.0, 1.0, 1.0])
    f[:3, 3] = [img.shape[0] - 1, img.shape[1] - 1, 0]
    return flipped, aff @ f


def to_psr(img, aff):
    """Voxel axes (A→P, I→S, L→R): a permuted and flipped layout."""
    out = np.transpose(img, (1, 2, 0))[::-1].copy()
    m = np.zeros((4, 4))
    m[1, 0] = -1
    m[1, 3] = img.shape[1] - 1
    m[2, 1] = 1
    m[0, 2] = 1
    m[3, 3] = 1
    return out, aff @ m


def test_output_is_in_the_space_and_scaled(head):
    out = preprocess_array(*head, SPACE)
    assert out.shape == SPACE.shape and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0


@pytest.mark.parametrize("reorient", [to_lps, to_psr])
def test_orientation_does_not_change_the_result(head, reorient):
    ras = preprocess_array(*head, SPACE)
    other = preprocess_array(*reorient(*head), SPACE)
    assert np.abs(ras - other).max() < 1e-4


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float64])
def test_dtypes_are_handled(head, dtype):
    img, aff = head
    ref = preprocess_array(img, aff, SPACE)
    out = preprocess_array((img / 2).astype(dtype), aff, SPACE)
    assert np.abs(out - ref).max() < 0.02


def test_head_is_centred(head):
    out = preprocess_array(*head, SPACE)
    com = np.array(np.nonzero(out > 0.1)).mean(axis=1)
    assert np.allclose(com, (np.array(SPACE.shape) - 1) / 2, atol=1.5)


def test_constant_and_empty_images_are_refused(head):
    _, aff = head
    with pytest.raises(NiftiError):
        preprocess_array(np.zeros((10, 10, 10), np.float32), aff, SPACE)


@pytest.mark.parametrize(
    ("volume", "message"),
    [(np.zeros((40, 40, 40)), "no foreground"), (np.ones((40, 40, 40)), "constant"),
     (np.pad(np.full((4, 4, 4), 5.0), 18), "too little foreground")],
)
def test_what_is_not_a_head_is_one_clear_error_when_registering(volume, message):
    with pytest.raises(NiftiError, match=message):
        preprocess_array(volume.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), SPACE, PreprocessParams(mode="register"))


def test_cache_returns_the_same_volume_without_recomputing(tmp_path, head, monkeypatch):
    p = tmp_path / "h.nii.gz"
    nib.save(nib.Nifti1Image(*head), str(p))
    cache = PreprocessedCache(SPACE, RESAMPLE, cache_dir=tmp_path / "cache")
    first = cache.get(p)
    calls = []
    monkeypatch.setattr(cache_mod, "preprocess_file", lambda *a, **k: calls.append(a))
    second = cache.get(p)
    assert calls == [] and np.array_equal(first, second)
    stacked = cache.get_many([p, p])
    assert stacked.shape == (2, *SPACE.shape) and np.array_equal(stacked[1], first)
    # a different space is a different entry
    assert PreprocessedCache(ImageSpace.centered((8, 8, 8), 6.0), RESAMPLE, cache_dir=tmp_path / "cache").key(p) != cache.key(p)
    # so are other preprocessing settings (mode, registration): they are part of the key
    assert PreprocessedCache(SPACE, cache_dir=tmp_path / "cache").key(p) != cache.key(p)
    rigid = PreprocessParams(mode="register", registration="rigid")
    assert PreprocessedCache(SPACE, rigid, cache_dir=tmp_path / "cache").key(p) != cache.key(p)


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(NiftiError, match="file not found"):
        PreprocessedCache(SPACE, cache_dir=tmp_path / "cache").get(tmp_path / "typo.nii.gz")


def test_downsampling_is_anti_aliased():
    """A 1-voxel checkerboard at 1 mm has no content at 3 mm: anti-aliased resampling gives a flat grey."""
    x, y, z = np.indices((48, 48, 48))
    img = np.where((x + y + z) % 2 == 0, 1.0, 0.0).astype(np.float32)
    img[:2] = img[-2:] = 0  # a frame so that the foreground box is the whole volume
    out = preprocess_array(img * 100 + 50, np.eye(4), ImageSpace.centered((16, 16, 16), 3.0))
    inner = out[3:-3, 3:-3, 3:-3]
    assert inner.std() < 0.05 * (out.max() - out.min())
