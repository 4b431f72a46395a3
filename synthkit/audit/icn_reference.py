"""The reference of an ``icn`` store: real maps preprocessed as the model's training maps were (signed, brain
masked, divided by their largest |value|), as [0, 1] images with zero at 0.5 like the samples, with each map's
network; for a 2D store, every brain slice of every map with its ``slice_z``."""

from __future__ import annotations

import numpy as np

from synthkit.audit.context import ICNLabels
from synthkit.config import ICNRecipe
from synthkit.data.cache import PreprocessedCache
from synthkit.data.manifest import Manifest
from synthkit.data.preprocess import PreprocessParams, brain_slices
from synthkit.errors import UsageError
from synthkit.store.reader import Cohort


def load_icn_reference(
    cohort: Cohort, m: Manifest, rows: np.ndarray, pick: np.ndarray, progress: str | None
) -> tuple[np.ndarray, np.ndarray, ICNLabels]:
    """(maps, manifest row of each map, labels); reference rows of networks the model does not know are left
    out, and so is a reference without a network column (one clear error)."""
    recipe = ICNRecipe(**cohort.info.generator["recipe"])
    column = recipe.icn.network_column
    names = list(cohort.categories["network" if "network" in cohort.categories else column])
    if column not in m.table.columns:
        raise UsageError(f"{m.path}: an icn store is audited against maps with a {column!r} column (none here)")
    ref_net = m.table[column].astype(str).to_numpy()[rows]
    known = np.isin(ref_net, names)
    if known.sum() < 4:
        raise UsageError(f"{m.path}: fewer than 4 reference maps of the networks the model knows ({', '.join(names)})")
    rows = rows[known]
    codes = np.array([names.index(n) for n in ref_net[known]], dtype=np.int64)
    space = recipe.data_space()
    cache = PreprocessedCache(space, PreprocessParams.from_config(recipe.data.preprocess))
    vols = m.volumes()
    maps = cache.get_many([m.table["image"].iloc[i] for i in rows], [vols[i] for i in rows], progress=progress)
    maps = (maps + 1.0) / 2.0  # as the generator's images: zero at 0.5
    table = cohort.conditions
    syn_codes = cohort.codes(column)[pick].astype(np.int64)
    if recipe.icn.depth is None:
        return maps, rows, ICNLabels(names, syn_codes, codes)
    slices = brain_slices(space, recipe.icn.min_slice_brain_fraction)
    zs = np.array(sorted(slices))
    flat = maps[:, :, :, zs].transpose(0, 3, 1, 2).reshape(-1, *maps.shape[1:3], 1)
    z_mm = np.tile([slices[int(z)] for z in zs], len(rows))
    syn_z = table["slice_z"].to_numpy(float)[pick]
    # a generated slice is compared with the real slices nearest its position
    syn_z = z_mm[np.abs(z_mm[None, : zs.size] - syn_z[:, None]).argmin(1)]
    labels = ICNLabels(names, syn_codes, np.repeat(codes, zs.size), syn_z, z_mm)
    return flat.astype(np.float32), np.repeat(rows, zs.size), labels
