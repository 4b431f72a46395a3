"""What every audit section works on: the store's synthetic subset and the reference, loaded once.

:func:`load_context` opens the store, reads the reference manifest and fetches its preprocessed volumes
exactly once; sections take the :class:`AuditContext` and return a :class:`Part` (their piece of
``report.json``, their verdicts, figures and warnings). Every random choice has its own named seed
(:data:`SEED_OFFSETS`), written into the report, and its result (indices, halves, pairs) into ``features.npz``
/ ``pairs.npz``, so that anyone can recompute a number without replaying our random streams.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthkit.config import AuditRecipe
from synthkit.data.cache import PreprocessedCache
from synthkit.data.manifest import Manifest, read_manifest
from synthkit.errors import UsageError
from synthkit.store.reader import Cohort, open_cohort

#: seed of each random choice = recipe seed + offset (named in report.json under "seeds")
SEED_OFFSETS = {
    "selection": 0,
    "halves": 5,
    "bootstrap": 1,
    "pairs": 2,
    "variance_subset": 3,
    "segment_subset": 4,
    "extrapolation": 7,
    "icn_pairs": 8,
}


@dataclass
class AuditOptions:
    """The command-line side of an audit: optional models, where to run, how to talk."""

    med3d_weights: Path | None = None
    synthseg_model: Path | None = None
    brain_age: Path | None = None
    training: Path | None = None
    show_training_ids: bool = False
    device: str = "cpu"
    progress: bool = True
    echo: Callable[[str], None] = print


@dataclass
class Part:
    """One section's contribution to the report."""

    metrics: dict[str, Any] = field(default_factory=dict)  # merged into report["metrics"]
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # question -> verdict
    figures: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    top: dict[str, Any] = field(default_factory=dict)  # top-level report keys (e.g. feature_extractor)


@dataclass
class ICNLabels:
    """The networks of an ``icn`` store's samples and of the reference maps (indices into ``names``), and for a
    2D store each slice's z position."""

    names: list[str]
    synthetic_codes: np.ndarray
    reference_codes: np.ndarray
    synthetic_slice: np.ndarray | None = None
    reference_slice: np.ndarray | None = None


@dataclass
class AuditContext:
    """The loaded inputs of one audit; sections read from it and never reload the reference."""

    store: Path
    reference_path: Path
    out: Path
    recipe: AuditRecipe
    options: AuditOptions
    cohort: Cohort
    synthetic: np.ndarray  # (n, X, Y, Z), the audited subset
    synthetic_index: np.ndarray  # store indices of the subset
    n_available: int  # samples the subset was drawn from
    manifest: Manifest  # the reference manifest (read once)
    reference: np.ndarray  # (m, X, Y, Z) preprocessed reference volumes
    reference_rows: np.ndarray  # manifest rows of ``reference``
    half_a: np.ndarray  # positions into ``reference``: the real-vs-real halves
    half_b: np.ndarray
    manifest_sha256: str
    cache: dict[str, Any] = field(default_factory=dict)  # results shared between sections (features)
    icn: ICNLabels | None = None  # an icn store's networks (the ICN section runs only then)

    @property
    def positions(self) -> np.ndarray:
        """Positions of the synthetic subset in the store's conditions table."""
        return np.searchsorted(self.cohort.indices, self.synthetic_index)

    def seed(self, purpose: str) -> int:
        return self.recipe.seed + SEED_OFFSETS[purpose]

    def rng(self, purpose: str) -> np.random.Generator:
        return np.random.default_rng(self.seed(purpose))

    def subset(self, n: int, k: int, purpose: str) -> tuple[np.ndarray, dict[str, Any]]:
        """All ``n`` positions when ``k >= n``, else a sorted random ``k`` of them; and how it was chosen."""
        if k >= n:
            return np.arange(n), {"n": n, "of": n, "subset": "all"}
        pick = np.sort(self.rng(purpose).choice(n, size=k, replace=False))
        return pick, {"n": k, "of": n, "subset": "random", "seed": self.seed(purpose)}

    def provenance(self) -> dict[str, Any]:
        """How the synthetic subset, the reference and its halves were chosen (sizes and seeds)."""
        n_syn, n_ref = len(self.synthetic), len(self.reference)
        sel = self.seed("selection")
        return {
            "synthetic": {"n": n_syn, "of": self.n_available}
            | ({"subset": "random", "seed": sel} if n_syn < self.n_available else {"subset": "all"}),
            "reference": {"n": n_ref, "of": len(self.manifest)}
            | ({"subset": "random", "seed": sel} if n_ref < len(self.manifest) else {"subset": "all"}),
            "real_halves": {
                "n": [len(self.half_a), len(self.half_b)],
                "subset": "random split",
                "seed": self.seed("halves"),
            },
            "indices": "features.npz / pairs.npz: synthetic_index (store), reference_rows (manifest), half_a, half_b",
        }

    def reference_column(self, name: str) -> np.ndarray | None:
        """A numeric manifest column at the loaded reference rows (None when absent)."""
        t = self.manifest.table
        if name not in t.columns:
            return None
        return np.asarray(t[name].to_numpy(float)[self.reference_rows], float)

    def images_of(self, manifest: Manifest, rows: Sequence[int]) -> np.ndarray:
        """Preprocessed volumes of ``manifest`` rows; those already loaded as reference are not fetched again."""
        ref_vols = self.manifest.volumes()
        loaded = {
            (str(self.manifest.table["image"].iloc[r]), ref_vols[r]): i for i, r in enumerate(self.reference_rows)
        }
        vols = manifest.volumes()
        keys = [(str(manifest.table["image"].iloc[r]), vols[r]) for r in rows]
        out = np.empty((len(keys), *self.cohort.space.shape), np.float32)
        missing = [i for i, k in enumerate(keys) if k not in loaded]
        for i, k in enumerate(keys):
            if k in loaded:
                out[i] = self.reference[loaded[k]]
        if missing:
            out[missing] = PreprocessedCache(self.cohort.space).get_many(
                [keys[i][0] for i in missing],
                [keys[i][1] for i in missing],
                progress="preprocessing" if self.options.progress else None,
            )
        return out


def load_context(
    store: str | Path, reference: str | Path, out: Path, recipe: AuditRecipe, options: AuditOptions
) -> AuditContext:
    """Open the store, draw the synthetic subset, read the reference manifest and its volumes — once."""
    cohort = open_cohort(store)
    table = cohort.conditions
    ok = np.flatnonzero(table["qc_pass"].to_numpy(bool)) if recipe.only_qc_pass else np.arange(len(cohort))
    if ok.size < 2:
        raise UsageError(f"{store}: fewer than two samples to audit")
    rng = np.random.default_rng(recipe.seed + SEED_OFFSETS["selection"])
    pick = np.sort(rng.choice(ok, size=min(recipe.n_synthetic, ok.size), replace=False))
    m = read_manifest(reference)
    if len(m) < 4:
        raise UsageError(f"{reference}: the reference needs at least 4 images (it has {len(m)})")
    rows = np.arange(len(m))
    if recipe.n_reference is not None and recipe.n_reference < len(m):
        rows = np.sort(rng.choice(rows, size=recipe.n_reference, replace=False))
    vols = m.volumes()
    progress = "preprocessing the reference" if options.progress else None
    icn = None
    if "network" in cohort.categories:
        from synthkit.audit.icn_reference import load_icn_reference

        real, rows, icn = load_icn_reference(cohort, m, rows, pick, progress)
    else:
        real = PreprocessedCache(cohort.space).get_many(
            [m.table["image"].iloc[i] for i in rows], [vols[i] for i in rows], progress=progress
        )
    perm = np.random.default_rng(recipe.seed + SEED_OFFSETS["halves"]).permutation(len(rows))
    half = len(rows) // 2
    return AuditContext(
        store=Path(store),
        reference_path=Path(reference),
        out=out,
        recipe=recipe,
        options=options,
        cohort=cohort,
        synthetic=cohort.images(pick),
        synthetic_index=cohort.indices[pick],
        n_available=int(ok.size),
        manifest=m,
        reference=real,
        reference_rows=rows,
        half_a=np.sort(perm[:half]),
        half_b=np.sort(perm[half : 2 * half]),
        manifest_sha256=hashlib.sha256(Path(reference).read_bytes()).hexdigest(),
        icn=icn,
    )
