"""The phantom: procedural brain T1 volumes with exact ground truth (DESIGN §6).

Built from nilearn's bundled MNI152 2009a templates (T1, grey and white matter at 1 mm; no downloads):

* tissue = GM + WM probability > 0.5; the interior holes of the filled tissue mask are the ventricles (the
  large central component and the two inferior horns); the intracranial mask is T1 > 0; the rest is CSF;
* signed distance fields (mm) of the ventricles and of the filled brain let a subject's anatomy change by
  thresholding: ventricles grow by ``ventricle_dilation_mm``, the cortex is thinned from outside by
  ``atrophy_mm`` (grey matter becomes CSF);
* covariates drive those parameters: age widens ventricles and thins the cortex, male heads are larger; a
  random similarity transform and a smooth random displacement field make every subject different;
* intensities are the template T1 with CSF where tissue was lost, then a contrast (gamma) change, a smooth
  multiplicative bias field and Gaussian noise inside the head; the background stays exactly 0.

Randomness is recorded, as in TorchIO: :func:`draw_params` turns (seed, covariates) into an explicit
:class:`PhantomParams`, and :func:`render` applies it deterministically. The label map uses
0 background, 1 CSF, 2 GM, 3 WM, 4 ventricles; volumes are voxel counts × voxel volume, exactly.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from synthkit.data.covariates import CovariateDistribution, CovariateGroup
from synthkit.space import ImageSpace

LABELS = {"background": 0, "csf": 1, "gm": 2, "wm": 3, "ventricles": 4}

#: UK Biobank imaging cohort (Pinaya et al. 2022): age 44–82, mean 63.6, SD 7.5; 47 % male.
AGE_RANGE = (44.0, 82.0)
AGE_MEAN, AGE_SD = 63.6, 7.5
P_MALE = 0.47
# the untruncated normal whose truncation to AGE_RANGE has mean 63.6 and SD 7.5 (scipy truncnorm, solved)
_AGE_LOC, _AGE_SCALE = 63.677, 7.968

#: Bump when the template derivation or the rendering changes what a seed produces.
PHANTOM_VERSION = 1

_SDF_CLIP_MM = 24.0
_CSF_INTENSITY = 0.30  # the template's CSF intensity in the ventricles (median ~0.32)
_EDGE_MM = 0.6  # width of the partial-volume blend at a tissue/CSF edge

# Covariate → anatomy. The age effects are stronger than in real cohorts on purpose (ventricles about triple
# and brain volume falls by ~15 % over 44–82 years) so that audits can measure them on a few dozen subjects.
_VENT_DILATION_AT_44 = 0.2
_VENT_DILATION_PER_YEAR = 0.09
_ATROPHY_PER_YEAR = 0.06
# MNI152 is larger than a typical head: scale by ~0.86 for adult brain volumes of ~1.1–1.3 L.
_HEAD_SCALE_MALE, _HEAD_SCALE_FEMALE, _HEAD_SCALE_SD = 0.885, 0.865, 0.006


@dataclass(frozen=True)
class PhantomTemplate:
    """1 mm template fields, cropped to the head's bounding box."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    icv: np.ndarray  # intracranial mask as float (1 inside), for linear interpolation
    sdf_ventricles: np.ndarray  # mm, negative inside
    sdf_brain: np.ndarray  # mm, negative inside the filled GM ∪ WM mask
    affine: np.ndarray  # voxel → RAS world of the cropped arrays
    center: np.ndarray  # world centre of the head's bounding box


@dataclass(frozen=True)
class PhantomParams:
    """Every random choice behind one phantom subject; :func:`render` is a pure function of it."""

    age: float
    sex: int  # 0 female, 1 male
    head_scale: float
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    displacement_seed: int
    displacement_mm: float
    ventricle_dilation_mm: float
    atrophy_mm: float
    gamma: float
    bias_coefficients: tuple[float, ...]
    noise_sd: float
    noise_seed: int
    target_ventricular_volume: float | None = None
    target_brain_volume: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PhantomSubject:
    image: np.ndarray  # float32 in [0, 1]
    labels: np.ndarray  # uint8
    ventricular_volume: float  # mm³
    brain_volume: float  # mm³ (GM + WM)
    params: PhantomParams
    volumes: dict[str, float] = field(default_factory=dict)


def default_space(spacing: float = 2.0, shape: tuple[int, int, int] | None = None) -> ImageSpace:
    """The phantom's grid: 160×224×160 mm around the head's centre (40×56×40 at 4 mm, 80×112×80 at 2 mm)."""
    if spacing <= 0:
        raise ValueError("spacing must be positive")
    if shape is None:
        shape = tuple(round(extent / spacing) for extent in (160, 224, 160))  # type: ignore[assignment]
    return ImageSpace.centered(shape, spacing, center=tuple(template().center))


def _cache_file() -> Path:
    root = os.environ.get("SYNTHKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    root = Path(root) if os.environ.get("SYNTHKIT_CACHE") else Path(root) / "synthkit"
    import nilearn

    return root / f"phantom-template-v{PHANTOM_VERSION}-nilearn{nilearn.__version__}.npz"


@lru_cache(maxsize=1)
def template() -> PhantomTemplate:
    """The template fields (built once from nilearn's MNI152 files, then read from the user cache)."""
    f = _cache_file()
    if f.exists():
        try:
            with np.load(f) as z:
                return _from_arrays({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError):
            f.unlink(missing_ok=True)
    arrays = _build_template_arrays()
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, f)
    except OSError:
        pass  # a read-only home still works, only slower
    return _from_arrays(arrays)


def _from_arrays(a: dict[str, np.ndarray]) -> PhantomTemplate:
    f32 = {k: a[k].astype(np.float32) for k in ("t1", "gm", "wm", "icv", "sdf_ventricles", "sdf_brain")}
    return PhantomTemplate(**f32, affine=a["affine"].astype(np.float64), center=a["center"].astype(np.float64))


def _build_template_arrays() -> dict[str, np.ndarray]:
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    t1 = t1_img.get_fdata(dtype=np.float32)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    icv = (t1 > 0) | ((gm + wm) > 0.5)
    pad = 12
    lo = np.maximum(np.argwhere(icv).min(0) - pad, 0)
    hi = np.minimum(np.argwhere(icv).max(0) + pad + 1, icv.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    t1, gm, wm, icv = (x[crop] for x in (t1, gm, wm, icv))
    affine = t1_img.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ lo

    tissue = (gm + wm) > 0.5
    filled = ndi.binary_fill_holes(tissue)
    holes = filled & ~tissue
    lab, n = ndi.label(holes)
    sizes = ndi.sum_labels(holes, lab, index=np.arange(1, n + 1))
    ventricles = np.isin(lab, 1 + np.flatnonzero(sizes >= 100))

    bbox = np.argwhere(icv)
    center_vox = (bbox.min(0) + bbox.max(0)) / 2.0
    center = affine[:3, :3] @ center_vox + affine[:3, 3]
    f16 = np.float16  # stored at half precision; the built and the cached template are then identical
    return {
        "t1": t1.astype(f16),
        "gm": gm.astype(f16),
        "wm": wm.astype(f16),
        "icv": icv.astype(f16),
        "sdf_ventricles": _signed_distance(ventricles).astype(f16),
        "sdf_brain": _signed_distance(filled).astype(f16),
        "affine": affine,
        "center": center,
    }


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    d = ndi.distance_transform_edt(~mask) - ndi.distance_transform_edt(mask)
    return np.clip(d, -_SDF_CLIP_MM, _SDF_CLIP_MM)


#: The phantom's covariate distribution: age a normal truncated to UK Biobank's range, sex 47 % male.
COVARIATES = CovariateDistribution(
    names=["age", "sex"],
    binary=["sex"],
    groups=[
        CovariateGroup({"sex": float(s)}, w, [_AGE_LOC], [[_AGE_SCALE**2]], [AGE_RANGE[0]], [AGE_RANGE[1]])
        for s, w in ((0, 1 - P_MALE), (1, P_MALE))
    ],
)


def sample_covariates(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` (age, sex) rows from :data:`COVARIATES`."""
    return COVARIATES.sample(n, rng)


def draw_params(
    seed: int,
    age: float | None = None,
    sex: float | None = None,
    ventricular_volume: float | None = None,
    brain_volume: float | None = None,
) -> PhantomParams:
    """Draw one subject's parameters from ``seed``; given covariates are used as they are.

    A requested ``ventricular_volume`` / ``brain_volume`` (mm³) is met at render time by solving for the
    ventricle dilation / cortical atrophy instead of deriving them from age.
    """
    rng = np.random.default_rng(int(seed))
    cov = sample_covariates(rng, 1)
    a = float(cov["age"][0] if age is None else age)
    s = round(float(cov["sex"][0] if sex is None else sex))
    if s not in (0, 1):
        raise ValueError(f"sex must be 0 (female) or 1 (male), got {sex}")
    base_scale = _HEAD_SCALE_MALE if s == 1 else _HEAD_SCALE_FEMALE
    years = a - AGE_RANGE[0]
    return PhantomParams(
        age=a,
        sex=s,
        head_scale=float(base_scale + rng.normal(0, _HEAD_SCALE_SD)),
        rotation_deg=tuple(float(v) for v in rng.normal(0, 2.0, 3)),  # type: ignore[arg-type]
        translation_mm=tuple(float(v) for v in rng.normal(0, 1.5, 3)),  # type: ignore[arg-type]
        displacement_seed=int(rng.integers(0, 2**31 - 1)),
        displacement_mm=float(rng.uniform(0.8, 2.0)),
        ventricle_dilation_mm=float(_VENT_DILATION_AT_44 + _VENT_DILATION_PER_YEAR * years + rng.normal(0, 0.25)),
        atrophy_mm=float(_ATROPHY_PER_YEAR * years + rng.normal(0, 0.06)),
        gamma=float(rng.uniform(0.85, 1.15)),
        bias_coefficients=tuple(float(v) for v in rng.normal(0, 0.06, 9)),
        noise_sd=float(rng.uniform(0.01, 0.03)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
        target_ventricular_volume=None if ventricular_volume is None else float(ventricular_volume),
        target_brain_volume=None if brain_volume is None else float(brain_volume),
    )


def template_params() -> PhantomParams:
    """The population-average phantom subject: no pose, no random displacement, mean head size, anatomy at the
    mean age, the template's own contrast, no bias field and no noise (the ``deformation`` family's template)."""
    years = AGE_MEAN - AGE_RANGE[0]
    return PhantomParams(
        age=AGE_MEAN,
        sex=0,
        head_scale=P_MALE * _HEAD_SCALE_MALE + (1 - P_MALE) * _HEAD_SCALE_FEMALE,
        rotation_deg=(0.0, 0.0, 0.0),
        translation_mm=(0.0, 0.0, 0.0),
        displacement_seed=0,
        displacement_mm=0.0,
        ventricle_dilation_mm=_VENT_DILATION_AT_44 + _VENT_DILATION_PER_YEAR * years,
        atrophy_mm=_ATROPHY_PER_YEAR * years,
        gamma=1.0,
        bias_coefficients=(0.0,) * 9,
        noise_sd=0.0,
        noise_seed=0,
    )


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    rx, ry, rz = np.deg2rad(deg)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    r_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return r_z @ r_y @ r_x


def _displacement(space: ImageSpace, seed: int, amplitude_mm: float) -> np.ndarray:
    """A smooth random displacement field (3, *shape) in mm: 5³ random control vectors, cubic upsampling."""
    rng = np.random.default_rng(seed)
    ctrl = rng.normal(0, amplitude_mm, size=(3, 5, 5, 5))
    # cubic B-spline upsampling is separable: one (size × 5) matrix per axis
    mi, mj, mk = (_upsampling_matrix(s) for s in space.shape)
    return np.einsum("ia,jb,kc,nabc->nijk", mi, mj, mk, ctrl, optimize=True)


@lru_cache(maxsize=16)
def _upsampling_matrix(size: int, n_ctrl: int = 5) -> np.ndarray:
    return ndi.zoom(np.eye(n_ctrl), (size / n_ctrl, 1), order=3, mode="nearest", grid_mode=True)[:size]


def template_coordinates(params: PhantomParams, space: ImageSpace) -> np.ndarray:
    """Template world coordinates (mm, shape (3, n_voxels)) of every voxel of ``space`` for this subject."""
    tpl = template()
    world = space.world_coordinates().reshape(3, -1)
    rot = _rotation(params.rotation_deg)
    c = tpl.center[:, None]
    # subject world → template world: undo translation, rotation and head scale about the head's centre
    src = rot.T @ (world - c - np.asarray(params.translation_mm)[:, None]) / params.head_scale + c
    return src + _displacement(space, params.displacement_seed, params.displacement_mm).reshape(3, -1)


def _sample_fields(params: PhantomParams, space: ImageSpace) -> dict[str, np.ndarray]:
    tpl = template()
    src = template_coordinates(params, space)
    inv = np.linalg.inv(tpl.affine)
    vox = inv[:3, :3] @ src + inv[:3, 3:4]
    out = {}
    for name in ("t1", "gm", "wm", "icv", "sdf_ventricles", "sdf_brain"):
        arr = getattr(tpl, name)
        fill = _SDF_CLIP_MM if name.startswith("sdf") else 0.0
        out[name] = ndi.map_coordinates(arr, vox, order=1, mode="constant", cval=fill).reshape(space.shape)
    # distances were measured in template mm; the subject's anatomy is scaled by head_scale
    out["sdf_ventricles"] *= params.head_scale
    out["sdf_brain"] *= params.head_scale
    return out


def _labels(f: dict[str, np.ndarray], dilation: float, atrophy: float) -> np.ndarray:
    inside = f["icv"] > 0.5
    brain = (f["sdf_brain"] < -atrophy) & inside
    vent = (f["sdf_ventricles"] < dilation) & brain
    tissue = (f["gm"] + f["wm"]) > 0.5
    labels = np.zeros(f["icv"].shape, dtype=np.uint8)
    labels[inside] = LABELS["csf"]
    labels[brain & tissue & (f["gm"] >= f["wm"])] = LABELS["gm"]
    labels[brain & tissue & (f["gm"] < f["wm"])] = LABELS["wm"]
    labels[vent] = LABELS["ventricles"]
    return labels


def _solve(count, target: float, lo: float, hi: float, increasing: bool) -> float:
    """Bisection for the threshold at which ``count(x)`` (monotone) meets ``target``."""
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if (count(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def render(params: PhantomParams, space: ImageSpace) -> PhantomSubject:
    """Render one subject into ``space``; a pure function of ``params`` and ``space``."""
    f = _sample_fields(params, space)
    vv = space.voxel_volume
    dilation, atrophy = params.ventricle_dilation_mm, params.atrophy_mm
    if params.target_ventricular_volume is not None:
        dilation = _solve(
            lambda d: np.count_nonzero(_labels(f, d, atrophy) == LABELS["ventricles"]) * vv,
            params.target_ventricular_volume,
            -6.0,
            15.0,
            increasing=True,
        )
    if params.target_brain_volume is not None:

        def brain(a: float) -> float:
            lab = _labels(f, dilation, a)
            return np.count_nonzero((lab == LABELS["gm"]) | (lab == LABELS["wm"])) * vv

        atrophy = _solve(brain, params.target_brain_volume, -4.0, 8.0, increasing=False)
    labels = _labels(f, dilation, atrophy)

    # Intensities: template T1, with CSF where ventricles grew or cortex was lost (soft edges).
    w_vent = _sigmoid((dilation - f["sdf_ventricles"]) / _EDGE_MM)
    w_atrophy = _sigmoid((f["sdf_brain"] + atrophy) / _EDGE_MM) * (f["sdf_brain"] < 0)
    w_csf = np.maximum(w_vent, w_atrophy) * (f["icv"] > 0.5)
    img = f["t1"] * (1 - w_csf) + _CSF_INTENSITY * f["icv"] * w_csf
    img = np.clip(img, 0, None) ** params.gamma
    img = img * _bias_field(space, params.bias_coefficients)
    head = f["icv"] > 0.5
    noise = np.random.default_rng(params.noise_seed).normal(0, params.noise_sd, size=space.shape)
    img = np.where(head, img + noise, 0.0)
    img = np.clip(img * f["icv"].clip(0, 1), 0, 1).astype(np.float32)

    counts = np.bincount(labels.ravel(), minlength=5)
    volumes = {name: float(counts[v] * vv) for name, v in LABELS.items() if v > 0}
    return PhantomSubject(
        image=img,
        labels=labels,
        ventricular_volume=volumes["ventricles"],
        brain_volume=volumes["gm"] + volumes["wm"],
        params=params,
        volumes=volumes,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


def _bias_field(space: ImageSpace, coeffs: tuple[float, ...]) -> np.ndarray:
    """exp of a second-order polynomial over normalised coordinates: a smooth multiplicative field."""
    axes = [np.linspace(-1, 1, s) for s in space.shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = (x, y, z, x * y, x * z, y * z, x * x - 1 / 3, y * y - 1 / 3, z * z - 1 / 3)
    log_field = sum(c * t for c, t in zip(coeffs, terms, strict=True))
    return np.exp(log_field)


def brain_volume_from_labels(labels: np.ndarray, voxel_volume: float) -> float:
    return float(np.count_nonzero((labels == LABELS["gm"]) | (labels == LABELS["wm"])) * voxel_volume)


def ventricular_volume_from_labels(labels: np.ndarray, voxel_volume: float) -> float:
    return float(np.count_nonzero(labels == LABELS["ventricles"]) * voxel_volume)


def write_cohort(
    out: str | Path,
    n: int,
    *,
    space: ImageSpace,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Write ``n`` phantom subjects as T1 and label NIfTIs plus ``manifest.csv`` and ``params.jsonl``.

    Subject ``i`` is rendered from ``sample_seed(seed, i)``; its covariates are drawn from the phantom's
    distribution. The manifest has ``subject_id, image, label, split, age, sex, ventricular_volume,
    brain_volume`` (volumes in mm³, counted in the label maps); ``split`` holds out 10 % for validation and
    10 % for testing. Returns the manifest's path.
    """
    import json
    from concurrent.futures import ProcessPoolExecutor

    import pandas as pd

    from synthkit.seeding import plan_rng, sample_seed

    out_p = Path(out)
    (out_p / "images").mkdir(parents=True, exist_ok=True)
    (out_p / "labels").mkdir(parents=True, exist_ok=True)
    jobs = [(out_p, space.to_dict(), i, sample_seed(seed, i)) for i in range(n)]
    rows: list[dict] = []
    if workers > 1:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(_write_subject, jobs, chunksize=4)
    else:
        pool = None
        results = map(_write_subject, jobs)
    if progress:
        from synthkit.progress import track

        results = track(results, total=n, description=f"writing {n} phantoms")
    try:
        rows = list(results)
    finally:
        if pool is not None:
            pool.shutdown()
    split = np.array(["train"] * n, dtype=object)
    order = plan_rng(seed).permutation(n)
    n_hold = round(0.1 * n)
    split[order[:n_hold]] = "val"
    split[order[n_hold : 2 * n_hold]] = "test"
    table = pd.DataFrame([r["row"] for r in rows])
    table.insert(3, "split", split)
    manifest = out_p / "manifest.csv"
    table.to_csv(manifest, index=False)
    with open(out_p / "params.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({"subject_id": r["row"]["subject_id"], **r["params"]}) + "\n")
    return manifest


def _write_subject(job: tuple[Path, dict, int, int]) -> dict:
    from synthkit.data.io import save_nifti

    out_p, space_d, i, seed = job
    space = ImageSpace.from_dict(space_d)
    s = render(draw_params(seed), space)
    sid = f"phantom{i:05d}"
    # xform code 4 (MNI152): the phantom lives in the template's world, so preprocessing only resamples it
    save_nifti(s.image, space.affine_array, out_p / "images" / f"{sid}_T1w.nii.gz", xform_code=4)
    save_nifti(s.labels, space.affine_array, out_p / "labels" / f"{sid}_labels.nii.gz", dtype=np.uint8, xform_code=4)
    row = {
        "subject_id": sid,
        "image": f"images/{sid}_T1w.nii.gz",
        "label": f"labels/{sid}_labels.nii.gz",
        "age": round(s.params.age, 3),
        "sex": s.params.sex,
        "ventricular_volume": s.ventricular_volume,
        "brain_volume": s.brain_volume,
    }
    return {"row": row, "params": {"seed": seed, **s.params.to_dict()}}
