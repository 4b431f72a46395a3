"""The head phantom: a phantom brain inside a head, scanned as real T1 scans are (the preprocessing test bed).

Each subject is a phantom brain (:mod:`synthkit.data.phantom`) with layers around it, defined by the distance
outside the template's intracranial mask: a CSF shell (0–3 mm), the skull (3–9 mm, dark), the scalp
(9–15 mm, bright fat) and a neck-like block below the brain (muscle with a fatty rim). The head is then

* posed: a random rigid rotation (±15° about each axis) and translation (±20 mm) of the head in the scanner;
* scanned: a field of view of 192×240×256 mm (x, y, z), centred 30 ± 8 mm below the head's centre so that
  it includes the neck, stored in RAS, LPS or PSR voxel order (the header's affine says which);
* by one of two sites: site 0 with a mild bias field and intensities up to ~1000; site 1 with another
  contrast (gamma 0.7), a strong bias field and intensities up to ~2500; Rician-like noise everywhere
  (the background too), stored as int16.

The truth comes with every subject: the brain mask in the scanner grid and the pose. The brain is the
template's intracranial mask above :data:`BRAIN_BOTTOM_Z` (MNI mm, where the brainstem is cut: the template
itself ends at z = -72 mm); below it the brainstem continues into the neck, as it does in a real scan.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from synthkit.data import phantom as ph
from synthkit.space import ImageSpace

ORIENTATIONS = ("RAS", "LPS", "PSR")
#: MNI z (mm) below which the template's intracranial mask is not counted as brain (the medulla is cut there)
BRAIN_BOTTOM_Z = -66.0
FOV_MM = (192.0, 240.0, 256.0)
_FOV_DROP_MM = 30.0  # the field of view is centred this far below the head's centre (it shows the neck)

# layer intensities on the template's T1 scale (its white matter is ~0.8–0.9)
_CSF, _SKULL, _SCALP, _MUSCLE, _NECK_FAT = 0.25, 0.06, 0.82, 0.42, 0.78
_SHELL_MM, _SKULL_MM, _SCALP_MM = 3.0, 9.0, 15.0
_SITES = (
    {"gamma": 1.0, "scale": 1000.0, "bias": 0.08, "noise": 0.012},
    {"gamma": 0.7, "scale": 2500.0, "bias": 0.35, "noise": 0.02},
)
# voxel axis → world direction (columns of the direction matrix)
_DIRECTIONS = {
    "RAS": np.eye(3),
    "LPS": np.diag([-1.0, -1.0, 1.0]),
    "PSR": np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
}


@dataclass(frozen=True)
class HeadParams:
    """Every random choice behind one head-phantom scan."""

    brain: ph.PhantomParams
    orientation: str
    site: int
    spacing: float
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    fov_shift_mm: tuple[float, float, float]
    bias_seed: int
    noise_seed: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["brain"] = self.brain.to_dict()
        return d


@dataclass
class HeadScan:
    image: np.ndarray  # int16, in the scanner grid
    affine: np.ndarray  # voxel → scanner world (RAS mm)
    brain_mask: np.ndarray  # uint8 truth, in the scanner grid
    pose: np.ndarray  # 4×4: phantom (template) world → scanner world
    params: HeadParams


def draw_head_params(seed: int, *, orientation: str = "RAS", site: int = 0, spacing: float = 2.0) -> HeadParams:
    """One subject's brain and scan parameters from ``seed`` (the same seed gives the same brain at any site)."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {', '.join(ORIENTATIONS)}")
    if site not in (0, 1):
        raise ValueError("site must be 0 or 1")
    rng = np.random.default_rng([int(seed), 7])
    return HeadParams(
        brain=ph.draw_params(int(seed)),
        orientation=orientation,
        site=int(site),
        spacing=float(spacing),
        rotation_deg=tuple(float(v) for v in rng.uniform(-15, 15, 3)),  # type: ignore[arg-type]
        translation_mm=tuple(float(v) for v in rng.uniform(-20, 20, 3)),  # type: ignore[arg-type]
        fov_shift_mm=tuple(float(v) for v in rng.uniform(-8, 8, 3)),  # type: ignore[arg-type]
        bias_seed=int(rng.integers(0, 2**31 - 1)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def pose_matrix(params: HeadParams) -> np.ndarray:
    """4×4 rigid transform from phantom (template) world to scanner world: rotation about the head's centre."""
    c = ph.template().center
    rot = ph._rotation(params.rotation_deg)
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = c + np.asarray(params.translation_mm) - rot @ c
    return m


def scanner_grid(params: HeadParams) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and voxel → scanner-world affine of the scan's field of view."""
    d = _DIRECTIONS[params.orientation]
    axis = np.argmax(np.abs(d), axis=0)  # the world axis each voxel axis runs along
    shape = tuple(round(FOV_MM[a] / params.spacing) for a in axis)
    centre = pose_matrix(params)[:3] @ np.append(ph.template().center, 1.0)
    centre = centre + np.array([0.0, 0.0, -_FOV_DROP_MM]) + np.asarray(params.fov_shift_mm)
    aff = np.eye(4)
    aff[:3, :3] = d * params.spacing
    aff[:3, 3] = centre - aff[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return shape, aff  # type: ignore[return-value]


def render_head(params: HeadParams) -> HeadScan:
    """Render one scan; a pure function of ``params``."""
    shape, aff = scanner_grid(params)
    pose = pose_matrix(params)
    # the phantom renders in its own (template) world: voxel → scanner world → phantom world
    space = ImageSpace(shape, (params.spacing,) * 3, tuple(map(tuple, np.linalg.inv(pose) @ aff)))
    brain = ph.render(params.brain, space)
    tpl_world = ph.template_coordinates(params.brain, space)
    head = _head_template()
    inv = np.linalg.inv(head["affine"])
    vox = inv[:3, :3] @ tpl_world + inv[:3, 3:4]
    layers = ndi.map_coordinates(head["intensity"], vox, order=1, mode="constant", cval=0.0).reshape(shape)
    tpl_vox = np.linalg.inv(ph.template().affine)
    icv_frac = ndi.map_coordinates(
        ph.template().icv, tpl_vox[:3, :3] @ tpl_world + tpl_vox[:3, 3:4], order=1, mode="constant"
    ).reshape(shape)
    img = brain.image + layers * (1.0 - np.clip(icv_frac, 0, 1)) * ph._bias_field(space, params.brain.bias_coefficients)
    mask = (brain.labels > 0) & (tpl_world[2].reshape(shape) >= BRAIN_BOTTOM_Z)
    world = (aff[:3, :3] @ np.indices(shape).reshape(3, -1) + aff[:3, 3:4]).reshape(3, *shape)
    return HeadScan(_site(img, world, params), aff, mask.astype(np.uint8), pose, params)


def _site(img: np.ndarray, world: np.ndarray, params: HeadParams) -> np.ndarray:
    """The site's contrast, bias field (a function of scanner position) and Rician-like noise, as int16."""
    s = _SITES[params.site]
    rng = np.random.default_rng(params.bias_seed)
    x, y, z = (world[i] / 100.0 for i in range(3))
    g = rng.normal(0, 1, 3)
    g = g / np.linalg.norm(g)
    log_bias = s["bias"] * (g[0] * x + g[1] * y + g[2] * z + 0.5 * (x * x - y * y) * rng.choice([-1, 1]))
    out = np.clip(img, 0, None) ** s["gamma"] * np.exp(log_bias)
    noise = np.random.default_rng(params.noise_seed)
    out = np.hypot(out + noise.normal(0, s["noise"], out.shape), noise.normal(0, s["noise"], out.shape))
    return np.clip(np.round(out * s["scale"]), 0, 32767).astype(np.int16)


@lru_cache(maxsize=1)
def _head_template() -> dict[str, np.ndarray]:
    """Layer intensities around the template's brain on a 2 mm grid in template world (built in ~1 s)."""
    tpl = ph.template()
    spacing = 2.0
    lo, hi = np.array([-100.0, -140.0, -230.0]), np.array([100.0, 120.0, 120.0])
    shape = tuple(int(v) for v in np.round((hi - lo) / spacing) + 1)
    aff = np.diag([spacing] * 3 + [1.0])
    aff[:3, 3] = lo
    world = (aff[:3, :3] @ np.indices(shape).reshape(3, -1) + aff[:3, 3:4]).reshape(3, *shape)
    inv = np.linalg.inv(tpl.affine)
    vox = np.tensordot(inv[:3, :3], world, axes=1) + inv[:3, 3].reshape(3, 1, 1, 1)
    icv = ndi.map_coordinates(tpl.icv, vox.reshape(3, -1), order=1, mode="constant").reshape(shape) > 0.5
    d = ndi.distance_transform_edt(~icv, sampling=spacing)
    x, y, z = world
    # the neck: an elliptic cylinder under the brain, closing into the skull base
    neck_r = np.sqrt((x / 52.0) ** 2 + ((y + 22.0) / 48.0) ** 2)
    neck = (neck_r < 1.0) & (z < -30.0)
    neck_rim = neck & (neck_r > 0.86)
    out = np.zeros(shape, np.float32)
    out[(d > _SKULL_MM) & (d <= _SCALP_MM)] = _SCALP
    out[(d > _SHELL_MM) & (d <= _SKULL_MM)] = _SKULL
    out[(d > 0) & (d <= _SHELL_MM)] = _CSF
    below = neck & (d > _SCALP_MM) | neck & (z < -60.0) & (d > 0)
    out[below] = _MUSCLE
    out[below & neck_rim] = _NECK_FAT
    out = ndi.gaussian_filter(out, 0.6)  # partial-volume edges
    out[icv] = 0.0
    return {"intensity": out, "affine": aff}


def write_head_cohort(
    out: str | Path,
    n: int,
    *,
    spacing: float = 2.0,
    seed: int = 0,
    orientations: tuple[str, ...] = ORIENTATIONS,
    sites: tuple[int, ...] = (0, 1),
    progress: bool = True,
) -> Path:
    """Write ``n`` subjects, each scanned in every orientation at every site: NIfTIs, truth masks, manifest.

    Subject ``i`` has seed ``sample_seed(seed, i)``; its scans share that brain (and pose) and differ in voxel
    order and site. The manifest has ``subject_id, image, brain_mask, age, sex, site``; ``params.jsonl`` holds
    each scan's parameters and pose (phantom world → scanner world).
    """
    import pandas as pd

    from synthkit.data.io import save_nifti
    from synthkit.seeding import sample_seed

    out_p = Path(out)
    jobs = [(i, o, s) for i in range(n) for o in orientations for s in sites]
    it = iter(jobs)
    if progress:
        from synthkit.progress import track

        it = iter(track(jobs, description=f"writing {len(jobs)} head scans"))
    rows, params = [], []
    for i, o, s in it:
        p = draw_head_params(sample_seed(seed, i), orientation=o, site=s, spacing=spacing)
        scan = render_head(p)
        sid = f"head{i:04d}_{o}_site{s}"
        save_nifti(scan.image, scan.affine, out_p / "images" / f"{sid}_T1w.nii.gz", dtype=np.int16)
        save_nifti(scan.brain_mask, scan.affine, out_p / "truth" / f"{sid}_brainmask.nii.gz", dtype=np.uint8)
        rows.append(
            {
                "subject_id": sid,
                "image": f"images/{sid}_T1w.nii.gz",
                "brain_mask": f"truth/{sid}_brainmask.nii.gz",
                "age": round(p.brain.age, 3),
                "sex": p.brain.sex,
                "site": s,
            }
        )
        params.append({"subject_id": sid, **p.to_dict(), "pose": scan.pose.tolist()})
    manifest = out_p / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    with open(out_p / "params.jsonl", "w") as f:
        for r in params:
            f.write(json.dumps(r) + "\n")
    return manifest
