"""The ICN phantom: intrinsic connectivity network maps with exact ground truth (where each network lies).

A stand-in for NeuroMark ICA components that needs no fMRI: nilearn ships tables of brain-network nodes with
network labels (Seitzman et al. 2018: 300 nodes in 13 networks, plus 15 unassigned ones that are left out).
Subject *s*'s map of network *k* is

    z(x) = gm(x) · [ Σ_j a_sj · G(x − c_j − δ_sj; σ_s)  −  b_s · Σ_{j ∈ partner(k)} a_sj · G(…) ]  +  ε_s(x)

over the nodes *j* of network *k*: Gaussian blobs of width σ_s (the subject's smoothness) at the node
coordinates (MNI mm) moved by a per-subject jitter δ_sj, with per-subject node amplitudes a_sj (log-normal),
a weaker negative copy of one partner network (ICA maps are signed: anticorrelated networks show as negative
lobes), weighted by the MNI152 2009a grey-matter probability (the phantom's template), plus smooth Gaussian
noise inside the brain. Values are z-like (peaks of about 3–8).

Randomness is recorded, as in TorchIO: :func:`draw_params` turns a seed into an explicit
:class:`ICNParams`, and :func:`render` applies it deterministically; ``params.jsonl`` holds every subject's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from synthkit.space import ImageSpace

#: Seitzman network → the NeuroMark domain it corresponds to most closely (for the component table)
SEITZMAN_DOMAINS = {
    "Auditory": "auditory",
    "CinguloOpercular": "cognitive control",
    "DefaultMode": "default mode",
    "DorsalAttention": "cognitive control",
    "FrontoParietal": "cognitive control",
    "MedialTemporalLobe": "default mode",
    "ParietoMedial": "default mode",
    "Reward": "subcortical",
    "Salience": "cognitive control",
    "SomatomotorDorsal": "sensorimotor",
    "SomatomotorLateral": "sensorimotor",
    "VentralAttention": "cognitive control",
    "Visual": "visual",
}
#: the NeuroMark grid (MNI, 3 mm, 53×63×52): x −78…78, y −112…74, z −70…83 mm
NEUROMARK_ORIGIN = (-78.0, -112.0, -70.0)
NEUROMARK_EXTENT = (156.0, 186.0, 153.0)
#: ICN_PHANTOM_VERSION changes when a seed no longer renders the same maps
ICN_PHANTOM_VERSION = 1


@dataclass(frozen=True)
class Nodes:
    """Network nodes: MNI coordinates (n, 3) in mm and each node's network name."""

    coords: np.ndarray
    networks: np.ndarray

    @property
    def names(self) -> list[str]:
        """The networks, sorted by name (the component order of the phantom's 4D files)."""
        return sorted(set(self.networks.tolist()))

    def of(self, name: str) -> np.ndarray:
        return self.coords[self.networks == name]


@lru_cache(maxsize=1)
def seitzman_nodes() -> Nodes:
    """The 285 assigned nodes of Seitzman et al. 2018, read from nilearn's bundled table (no download)."""
    import nilearn.datasets

    f = Path(nilearn.datasets.__file__).parent / "data" / "seitzman_2018_ROIs_300inVol_MNI_allInfo.txt"
    t = pd.read_csv(f, sep=" ")
    t = t[t["netName"] != "unassigned"]
    return Nodes(t[["x", "y", "z"]].to_numpy(np.float64), t["netName"].to_numpy(str))


def icn_space(spacing: float = 3.0) -> ImageSpace:
    """The NeuroMark field of view at ``spacing`` mm (53×63×52 at 3 mm), RAS."""
    shape = tuple(round(e / spacing) + 1 for e in NEUROMARK_EXTENT)
    aff = np.diag([spacing, spacing, spacing, 1.0])
    aff[:3, 3] = NEUROMARK_ORIGIN
    return ImageSpace(shape=shape, spacing=(float(spacing),) * 3, affine=tuple(tuple(r) for r in aff))  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def tissue_on_grid(space: ImageSpace) -> tuple[np.ndarray, np.ndarray]:
    """The phantom template's grey-matter probability and filled brain mask brought onto ``space`` (linear)."""
    from synthkit.data.phantom import template

    tpl = template()
    m = np.linalg.inv(tpl.affine) @ space.affine_array
    idx = np.indices(space.shape, dtype=np.float64).reshape(3, -1)
    vox = m[:3, :3] @ idx + m[:3, 3:4]
    sigma = max(0.0, (space.spacing[0] - 1.0) / 2.0)  # anti-aliasing from 1 mm
    gm = ndi.gaussian_filter(tpl.gm.astype(np.float32), sigma) if sigma else tpl.gm
    brain = ndi.gaussian_filter((tpl.sdf_brain < 0).astype(np.float32), sigma) if sigma else tpl.sdf_brain < 0
    gm_g = ndi.map_coordinates(gm, vox, order=1, mode="constant").reshape(space.shape)
    brain_g = ndi.map_coordinates(np.asarray(brain, np.float32), vox, order=1, mode="constant").reshape(space.shape)
    return gm_g.astype(np.float32), brain_g > 0.5


@dataclass(frozen=True)
class ICNParams:
    """Every random choice behind one phantom subject's maps; :func:`render` is a pure function of it."""

    seed: int
    smoothness_mm: float  # σ of each node's Gaussian blob
    jitter_mm: float  # SD of the node displacement
    noise_sd: float  # of the smooth noise, in z units
    anti_weight: float  # b: weight of the partner network's negative lobe
    node_seed: int  # draws the node amplitudes and displacements
    noise_seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def draw_params(seed: int) -> ICNParams:
    rng = np.random.default_rng([int(seed), 0x1C4])
    return ICNParams(
        seed=int(seed),
        smoothness_mm=float(rng.uniform(4.0, 6.0)),
        jitter_mm=float(rng.uniform(1.0, 3.0)),
        noise_sd=float(rng.uniform(0.2, 0.5)),
        anti_weight=float(rng.uniform(0.2, 0.4)),
        node_seed=int(rng.integers(2**31)),
        noise_seed=int(rng.integers(2**31)),
    )


def partner(names: list[str], k: int) -> int:
    """The network whose negative lobe network ``k`` carries: the next one in the sorted list (fixed, so
    every subject's map of a network has the same sign pattern)."""
    return (k + 1) % len(names)


def render(params: ICNParams, space: ImageSpace, nodes: Nodes | None = None) -> np.ndarray:
    """All networks' maps of one subject: (X, Y, Z, K) float32, networks in ``nodes.names`` order."""
    nodes = nodes or seitzman_nodes()
    names = nodes.names
    rng = np.random.default_rng([params.node_seed, 1])
    amp = rng.lognormal(np.log(4.0), 0.35, len(nodes.coords))
    moved = nodes.coords + rng.normal(0.0, params.jitter_mm, nodes.coords.shape)
    axes = [space.affine_array[d, d] * np.arange(n) + space.affine_array[d, 3] for d, n in enumerate(space.shape)]
    blobs = {
        name: _blobs(moved[nodes.networks == name], amp[nodes.networks == name], axes, params.smoothness_mm)
        for name in names
    }
    gm, brain = tissue_on_grid(space)
    weight = np.clip(gm / 0.3, 0.0, 1.0)
    noise_rng = np.random.default_rng([params.noise_seed, 2])
    out = np.empty((*space.shape, len(names)), dtype=np.float32)
    for k, name in enumerate(names):
        signal = blobs[name] - params.anti_weight * blobs[names[partner(names, k)]]
        noise = ndi.gaussian_filter(noise_rng.standard_normal(space.shape), params.smoothness_mm / space.spacing[0])
        noise *= params.noise_sd / max(float(noise.std()), 1e-12)
        out[..., k] = np.where(brain, weight * signal + noise, 0.0)
    return out


def _blobs(centres: np.ndarray, amps: np.ndarray, axes: list[np.ndarray], sigma: float) -> np.ndarray:
    """Σ_j amps_j · exp(−|x − c_j|² / 2σ²) on the grid given by its three world axes (separable)."""
    g = [np.exp(-0.5 * ((ax[None, :] - centres[:, d : d + 1]) / sigma) ** 2) for d, ax in enumerate(axes)]
    return np.einsum("j,ji,jk,jl->ikl", amps, g[0], g[1], g[2], optimize=True)


def component_table(nodes: Nodes | None = None) -> pd.DataFrame:
    """index (0-based volume of the 4D file), name, domain."""
    names = (nodes or seitzman_nodes()).names
    return pd.DataFrame(
        {"index": range(len(names)), "name": names, "domain": [SEITZMAN_DOMAINS.get(n, "") for n in names]}
    )


def write_icn_cohort(out: str | Path, n: int, *, spacing: float = 3.0, seed: int = 0, progress: bool = True) -> Path:
    """Write ``n`` subjects' 4D component files (one volume per network), ``components.csv``,
    ``manifest.csv`` (one row per subject: ``subject_id, image, components, split``) and ``params.jsonl``.
    Returns the manifest's path."""
    from synthkit.data.io import save_nifti
    from synthkit.seeding import plan_rng, sample_seed

    out_p = Path(out)
    space = icn_space(spacing)
    table = component_table()
    out_p.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_p / "components.csv", index=False)
    rows, params = [], []
    items = range(n)
    if progress:
        from rich.progress import track

        items = track(items, total=n, description=f"writing {n} ICN phantoms")
    for i in items:
        p = draw_params(sample_seed(seed, i))
        sid = f"icn{i:05d}"
        maps = render(p, space)
        # xform code 4 (MNI152): preprocessing resamples, never registers, these maps
        save_nifti(maps, space.affine_array, out_p / "images" / f"{sid}_components.nii.gz", xform_code=4)
        rows.append({"subject_id": sid, "image": f"images/{sid}_components.nii.gz", "components": "components.csv"})
        params.append({"subject_id": sid, "version": ICN_PHANTOM_VERSION, **p.to_dict()})
    split = np.array(["train"] * n, dtype=object)
    order = plan_rng(seed).permutation(n)
    n_hold = round(0.1 * n)
    split[order[:n_hold]] = "val"
    split[order[n_hold : 2 * n_hold]] = "test"
    manifest = pd.DataFrame(rows)
    manifest["split"] = split
    manifest.to_csv(out_p / "manifest.csv", index=False)
    with open(out_p / "params.jsonl", "w") as f:
        for r in params:
            f.write(json.dumps(r) + "\n")
    return out_p / "manifest.csv"
