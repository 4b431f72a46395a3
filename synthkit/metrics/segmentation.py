"""Segmenters that measure volumes in synthetic brains: SynthSeg (TensorFlow, user-supplied weights) and a
weight-free segmenter.

**SynthSeg** (Billot et al. 2023; facts from the public SynthSeg code, re-implemented here): a 5-level 3D
U-Net (two 3³ convolutions per level, ELU, batch norm after each level, 24 features doubling per level,
max-pooling down, nearest upsampling and skip concatenation up, a 1×1×1 "likelihood" convolution and a softmax),
in tf.keras with SynthSeg's layer names (``unet_conv_downarm_0_0`` …) so that ``synthseg_1.0.h5`` /
``synthseg_2.0.h5`` load by name. Output channels are the sorted unique FreeSurfer labels (32 for 1.0, 33 with
label 24, CSF, for 2.0). Preprocessing: reorient to an identity-aligned (RAS) grid, resample to 1 mm, crop to
at most 192³ around the centre, rescale the 0.5–99.5th percentiles to [0, 1], zero-pad to a multiple of 32.
Post-processing: keep the largest connected component of the non-background posteriors (> 0.25), zero
posteriors below 0.2, renormalise, argmax → FreeSurfer labels; volumes are soft (posterior sums × voxel volume)
as SynthSeg reports them. Ventricles = labels 4, 5, 43, 44 (lateral and inferior lateral ventricles).
If FreeSurfer's ``mri_synthseg`` is on PATH it can be used instead (:class:`FreeSurferSynthSeg`).

**Weight-free** (:class:`WeightFreeSegmenter`): brain mask → a 3-class Gaussian mixture (CSF, GM, WM) of the
intensities inside it → ventricles = CSF inside a ventricle prior, the MNI152 template's ventricles dilated
by 6 mm, brought to the subject by an affine registration (matching the first and second moments of the
brain masks). Needs no weights; validated against the phantom's exact label maps.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import ndimage as ndi

from synthkit.errors import CheckpointError

SYNTHSEG_LABELS = {
    "1.0": (
        0,
        2,
        3,
        4,
        5,
        7,
        8,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        26,
        28,
        41,
        42,
        43,
        44,
        46,
        47,
        49,
        50,
        51,
        52,
        53,
        54,
        58,
        60,
    ),
}
SYNTHSEG_LABELS["2.0"] = tuple(sorted((*SYNTHSEG_LABELS["1.0"], 24)))
VENTRICLES = (4, 5, 43, 44)
CSF_LABELS = (4, 5, 14, 15, 24, 43, 44)
WM_LABELS = (2, 7, 16, 41, 46)  # cerebral and cerebellar white matter, brain stem
GM_LABELS = (3, 8, 10, 11, 12, 13, 17, 18, 26, 28, 42, 47, 49, 50, 51, 52, 53, 54, 58, 60)
N_LEVELS = 5


@dataclass
class Segmentation:
    """Labels (FreeSurfer values for SynthSeg; 0 bg, 1 CSF, 2 GM, 3 WM, 4 ventricles for the weight-free one)
    and volumes in mm³: ``ventricles``, ``brain`` (GM + WM), ``gm``, ``wm``, ``csf`` and, for SynthSeg, one
    entry per label (``label_<n>``)."""

    labels: np.ndarray
    volumes: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


class Segmenter(Protocol):
    name: str

    def segment(self, image: np.ndarray, affine: np.ndarray) -> Segmentation: ...


# ----------------------------------------------------------------------------------------------- weight-free


def _moments(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(mask).astype(np.float64)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    return world.mean(0), np.cov(world, rowvar=False)


def _sqrtm_psd(c: np.ndarray, inverse: bool = False) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.clip(w, 1e-9, None)
    return (v * (w ** (-0.5 if inverse else 0.5))) @ v.T


def moment_affine(
    fixed_mask: np.ndarray, fixed_affine: np.ndarray, moving_mask: np.ndarray, moving_affine: np.ndarray
) -> np.ndarray:
    """A world-to-world affine taking the fixed mask's frame onto the moving one by matching centroids and
    second moments — a closed-form affine registration of two roughly aligned masks:
    x_m = c_m + S_m S_f⁻¹ (x_f − c_f), S being the square roots of the coordinate covariances."""
    return _affine_from_moments(_moments(fixed_mask, fixed_affine), _moments(moving_mask, moving_affine))


def _affine_from_moments(fixed: tuple[np.ndarray, np.ndarray], moving: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    (cf, sf), (cm, sm) = fixed, moving
    a = _sqrtm_psd(sm) @ _sqrtm_psd(sf, inverse=True)
    out = np.eye(4)
    out[:3, :3] = a
    out[:3, 3] = cm - a @ cf
    return out


def brain_mask(image: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Foreground of a skull-stripped T1: above ``threshold`` of the 99th percentile, largest component, filled."""
    ref = float(np.percentile(image, 99)) or 1.0
    m = image > threshold * ref
    lab, n = ndi.label(m)
    if n > 1:
        m = lab == (1 + int(np.argmax(ndi.sum_labels(m, lab, range(1, n + 1)))))
    return ndi.binary_fill_holes(m)


class WeightFreeSegmenter:
    """Tissue classes by a Gaussian mixture, ventricles by a registered template prior (no weights)."""

    name = "weight-free (GMM + registered MNI152 ventricle prior)"

    def __init__(self, prior_dilation_mm: float = 6.0, seed: int = 0) -> None:
        self.prior_dilation_mm = prior_dilation_mm
        self.seed = seed

    def _template(self):
        """The MNI152 template and the centroid/covariance of its brain mask (computed once)."""
        from synthkit.data.phantom import template

        if getattr(self, "_tpl", None) is None:
            tpl = template()
            self._tpl = tpl, _moments(tpl.icv > 0.5, tpl.affine)
        return self._tpl

    def segment(self, image: np.ndarray, affine: np.ndarray) -> Segmentation:
        from sklearn.mixture import GaussianMixture

        img = np.asarray(image, np.float64)
        mask = brain_mask(img)
        vv = float(abs(np.linalg.det(affine[:3, :3])))
        labels = np.zeros(img.shape, np.uint8)
        if mask.sum() < 30:
            return Segmentation(labels, {k: 0.0 for k in ("ventricles", "brain", "gm", "wm", "csf")})
        vals = img[mask][:, None]
        sub = vals[:: max(1, len(vals) // 50_000)]
        init = np.percentile(sub, [10, 50, 90])[:, None]
        gmm = GaussianMixture(3, means_init=init, random_state=self.seed, max_iter=200).fit(sub)
        order = np.argsort(gmm.means_.ravel())  # CSF < GM < WM on T1
        cls = np.empty(3, np.uint8)
        cls[order] = (1, 2, 3)
        labels[mask] = cls[gmm.predict(vals)]
        # ventricle prior: template ventricles (SDF < dilation), mapped by the moment affine template → subject
        tpl, tpl_moments = self._template()
        fwd = _affine_from_moments(tpl_moments, _moments(mask, affine))  # template world → subject world
        vox = np.indices(img.shape).reshape(3, -1).astype(np.float64)
        world = affine[:3, :3] @ vox + affine[:3, 3:4]
        inv = np.linalg.inv(fwd)
        t_world = inv[:3, :3] @ world + inv[:3, 3:4]
        t_inv = np.linalg.inv(tpl.affine)
        t_vox = t_inv[:3, :3] @ t_world + t_inv[:3, 3:4]
        sdf = ndi.map_coordinates(tpl.sdf_ventricles, t_vox, order=1, mode="constant", cval=99.0).reshape(img.shape)
        prior = sdf < self.prior_dilation_mm
        vent = prior & (labels == 1) & mask
        labels[vent] = 4
        counts = np.bincount(labels.ravel(), minlength=5).astype(float) * vv
        volumes = {
            "csf": counts[1],
            "gm": counts[2],
            "wm": counts[3],
            "ventricles": counts[4],
            "brain": counts[2] + counts[3],
        }
        return Segmentation(labels, volumes, {"gmm_means": gmm.means_.ravel()[order].tolist()})


# ------------------------------------------------------------------------------------------------- SynthSeg


def build_synthseg_unet(
    n_labels: int,
    prefix: str = "unet",
    nb_features: int = 24,
    nb_levels: int = N_LEVELS,
    conv_per_level: int = 2,
    conv_size: int = 3,
    feat_mult: int = 2,
):
    """SynthSeg's segmentation U-Net in tf.keras, with SynthSeg's layer names (for loading weights by name)."""
    import keras
    from keras import layers as KL

    inp = KL.Input(shape=(None, None, None, 1), name=f"{prefix}_input")
    x = inp
    skips = {}
    for level in range(nb_levels):
        feats = round(nb_features * feat_mult**level)
        for c in range(conv_per_level):
            x = KL.Conv3D(
                feats, conv_size, padding="same", activation="elu", name=f"{prefix}_conv_downarm_{level}_{c}"
            )(x)
        skips[level] = x
        x = KL.BatchNormalization(axis=-1, name=f"{prefix}_bn_down_{level}")(x)
        if level < nb_levels - 1:
            x = KL.MaxPooling3D(pool_size=2, padding="same", name=f"{prefix}_maxpool_{level}")(x)
    for level in range(nb_levels - 1):
        feats = round(nb_features * feat_mult ** (nb_levels - 2 - level))
        x = KL.UpSampling3D(size=2, name=f"{prefix}_up_{nb_levels + level}")(x)
        x = KL.Concatenate(axis=-1, name=f"{prefix}_merge_{nb_levels + level}")([skips[nb_levels - 2 - level], x])
        for c in range(conv_per_level):
            x = KL.Conv3D(
                feats, conv_size, padding="same", activation="elu", name=f"{prefix}_conv_uparm_{nb_levels + level}_{c}"
            )(x)
        x = KL.BatchNormalization(axis=-1, name=f"{prefix}_bn_up_{level}")(x)
    x = KL.Conv3D(n_labels, 1, activation=None, name=f"{prefix}_likelihood")(x)
    out = KL.Softmax(axis=-1, name=f"{prefix}_prediction")(x)
    return keras.Model(inp, out, name=prefix)


def save_legacy_h5(model, path: str | Path) -> Path:
    """Write a model's weights in the legacy Keras HDF5 layout (``layer_names`` attribute, one group per
    layer) — the layout of SynthSeg's released files."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    p = Path(path)
    with h5py.File(p, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return p


def _synthseg_version(path: Path) -> str:
    """1.0 or 2.0, read from the number of output channels of ``unet_likelihood`` in the file."""
    import h5py

    if not path.exists():
        raise CheckpointError(f"{path}: SynthSeg model not found")
    if not h5py.is_hdf5(str(path)):
        raise CheckpointError(f"{path}: not an HDF5 file (expected SynthSeg's synthseg_1.0.h5 or synthseg_2.0.h5)")
    try:
        with h5py.File(path, "r") as f:
            g = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
            if "unet_likelihood" not in g:
                raise CheckpointError(f"{path}: no 'unet_likelihood' layer: not a SynthSeg segmentation model")
            shapes = []
            g["unet_likelihood"].visititems(lambda n, o: shapes.append(o.shape) if hasattr(o, "shape") else None)
    except (OSError, KeyError) as e:
        raise CheckpointError(f"{path}: truncated or damaged HDF5 file ({str(e).splitlines()[0]})") from None
    n = max((s[-1] for s in shapes if len(s) == 5), default=None)
    for version, labels in SYNTHSEG_LABELS.items():
        if n == len(labels):
            return version
    raise CheckpointError(f"{path}: its output has {n} channels; SynthSeg 1.0 has 32, 2.0 has 33")


def load_synthseg(path: str | Path):
    """Build the U-Net and load SynthSeg weights by layer name; returns ``(model, version)``."""
    p = Path(path)
    version = _synthseg_version(p)
    model = build_synthseg_unet(len(SYNTHSEG_LABELS[version]))
    try:
        model.load_weights(str(p), by_name=True)
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{p}: cannot load its weights into SynthSeg's U-Net ({str(e).splitlines()[0][:200]})"
        ) from None
    return model, version


def synthseg_preprocess(image: np.ndarray, affine: np.ndarray, crop: int = 192) -> tuple[np.ndarray, dict[str, Any]]:
    """SynthSeg's preprocessing: RAS-aligned 1 mm grid, centre crop to ≤ ``crop``, percentile rescaling to
    [0, 1], zero padding to a multiple of 32. Returns the network input (X, Y, Z) and what undoes it."""
    import nibabel as nib
    from nibabel.processing import resample_to_output

    img = nib.Nifti1Image(np.asarray(image, np.float32), affine)
    img = nib.as_closest_canonical(img)
    zooms = np.asarray(img.header.get_zooms()[:3])
    if np.any(np.abs(zooms - 1.0) > 0.05):
        img = resample_to_output(img, voxel_sizes=(1.0, 1.0, 1.0), order=1)
    data = np.asarray(img.dataobj, np.float32)
    shape = np.array(data.shape)
    start = np.maximum((shape - crop) // 2, 0)
    stop = np.minimum(start + crop, shape)
    data = data[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]
    lo, hi = np.percentile(data, [0.5, 99.5])
    data = np.clip((data - lo) / max(hi - lo, 1e-6), 0, 1)
    m = 2**N_LEVELS
    target = [-(-s // m) * m for s in data.shape]
    pad_lo = [(t - s) // 2 for s, t in zip(data.shape, target, strict=True)]
    padded = np.zeros(target, np.float32)
    sl = tuple(slice(p, p + s) for p, s in zip(pad_lo, data.shape, strict=True))
    padded[sl] = data
    return padded, {"crop_start": start.tolist(), "inner": sl, "affine": img.affine, "shape_1mm": shape.tolist()}


def synthseg_postprocess(posteriors: np.ndarray, labels: tuple[int, ...], voxel_volume: float = 1.0) -> Segmentation:
    """SynthSeg's post-processing of posteriors (X, Y, Z, C) → FreeSurfer labels and soft volumes (mm³)."""
    post = np.array(posteriors, np.float64, copy=True)
    fg = post[..., 1:].sum(-1) > 0.25
    lab, n = ndi.label(fg)
    if n > 1:
        fg = lab == (1 + int(np.argmax(ndi.sum_labels(fg, lab, range(1, n + 1)))))
    post[..., 1:] *= fg[..., None]
    post[..., 1:] *= post[..., 1:] > 0.2
    post /= np.clip(post.sum(-1, keepdims=True), 1e-12, None)
    lut = np.asarray(labels, np.int32)
    seg = lut[post.argmax(-1)]
    per_label = post.reshape(-1, post.shape[-1]).sum(0) * voxel_volume
    vol = {f"label_{lbl}": float(v) for lbl, v in zip(labels[1:], per_label[1:], strict=True)}

    def total(group: tuple[int, ...]) -> float:
        return float(sum(vol.get(f"label_{g}", 0.0) for g in group))

    vol.update(ventricles=total(VENTRICLES), csf=total(CSF_LABELS), gm=total(GM_LABELS), wm=total(WM_LABELS))
    vol["brain"] = vol["gm"] + vol["wm"]
    return Segmentation(seg, vol)


class SynthSegSegmenter:
    """SynthSeg 1.0 / 2.0 (non-robust) with user-supplied weights, run with TensorFlow on the CPU or GPU."""

    def __init__(self, model_path: str | Path) -> None:
        self.model, self.version = load_synthseg(model_path)
        self.labels = SYNTHSEG_LABELS[self.version]
        self.name = f"SynthSeg {self.version} ({Path(model_path).name})"

    def segment(self, image: np.ndarray, affine: np.ndarray) -> Segmentation:
        x, info = synthseg_preprocess(image, affine)
        post = np.asarray(self.model.predict(x[None, ..., None], verbose=0))[0]
        post = post[info["inner"]]
        return synthseg_postprocess(post, self.labels, voxel_volume=1.0)


class FreeSurferSynthSeg:
    """FreeSurfer's ``mri_synthseg`` (≥ 7.3), when it is on PATH; volumes read from its ``--vol`` CSV."""

    name = "mri_synthseg (FreeSurfer)"

    def __init__(self) -> None:
        if shutil.which("mri_synthseg") is None:
            raise CheckpointError("mri_synthseg is not on PATH")

    def segment(self, image: np.ndarray, affine: np.ndarray) -> Segmentation:
        import csv

        import nibabel as nib

        with tempfile.TemporaryDirectory() as d:
            src, seg, vol = Path(d) / "in.nii.gz", Path(d) / "seg.nii.gz", Path(d) / "vol.csv"
            nib.save(nib.Nifti1Image(np.asarray(image, np.float32), affine), str(src))
            subprocess.run(
                ["mri_synthseg", "--i", str(src), "--o", str(seg), "--vol", str(vol)], check=True, capture_output=True
            )
            labels = np.asarray(nib.load(str(seg)).dataobj, np.int32)
            with open(vol) as f:
                row = next(csv.DictReader(f))
        vols = {k.strip(): float(v) for k, v in row.items() if k.strip() and k.strip() != "subject"}
        v = {
            "ventricles": sum(
                vols.get(k, 0.0)
                for k in (
                    "left lateral ventricle",
                    "left inferior lateral ventricle",
                    "right lateral ventricle",
                    "right inferior lateral ventricle",
                )
            )
        }
        v["brain"] = vols.get("total intracranial", float("nan")) - v["ventricles"]
        return Segmentation(labels, {**vols, **v})


def make_segmenter(synthseg_model: str | Path | None = None, prefer_freesurfer: bool = False) -> Segmenter:
    """SynthSeg with the given weights; else ``mri_synthseg`` if asked for and present; else the weight-free one."""
    if synthseg_model is not None:
        return SynthSegSegmenter(synthseg_model)
    if prefer_freesurfer and shutil.which("mri_synthseg"):
        return FreeSurferSynthSeg()
    return WeightFreeSegmenter()
