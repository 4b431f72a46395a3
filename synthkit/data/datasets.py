"""Public dataset descriptions (``data_manifests/*.yaml``): what to download, the layout, covariate mapping.

``synthkit manifest build --dataset ixi ROOT`` reads ``data_manifests/ixi.yaml`` and turns the user's download
into a manifest. A path to any YAML file in the same schema works too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from synthkit.config import Strict, read_yaml, validate
from synthkit.data.manifest import ColumnSpec, build_manifest
from synthkit.errors import UsageError

#: the folder of dataset descriptions in a source checkout
DATASETS_DIR = Path(__file__).resolve().parents[2] / "data_manifests"


class ColumnRule(Strict):
    column: str
    map: dict[str, float] | None = None
    scale: float = 1.0
    plus_years_from_days: str | None = None


class ImagesRule(Strict):
    pattern: str
    id_regex: str | None = None
    #: for 4D files (e.g. one ICA component per volume): which volumes become rows
    volumes: list[int] | None = None
    volume_column: str | None = None  # a covariate column holding the volume index


class CovariatesRule(Strict):
    table: str
    id_column: str
    id_normalise: Literal["none", "strip_zeros", "lower"] = "none"
    duplicates: Literal["error", "first"] = "error"
    columns: dict[str, ColumnRule] = Field(default_factory=dict)


class ComponentRule(Strict):
    """One ICA component of a 4D file (e.g. a NeuroMark ICN): its volume, name and domain."""

    index: int = Field(ge=0)
    name: str
    domain: str = ""
    ica: int | None = None  # its number in the group ICA it came from (documentation)
    region: str = ""  # its peak's anatomical label (documentation)


class DatasetSpec(Strict):
    """A dataset description; only ``images`` is required (the rest documents where the data comes from)."""

    images: ImagesRule
    name: str = "dataset"
    url: str = ""
    description: str = ""
    download: list[str] = Field(default_factory=list)
    layout: str = ""
    covariates: CovariatesRule | None = None
    #: the components of 4D files: every file becomes one row per component (``volume``, ``network``, ``domain``)
    components: list[ComponentRule] | None = None
    notes: str | None = None


def list_datasets() -> list[str]:
    return sorted(p.stem for p in DATASETS_DIR.glob("*.yaml")) if DATASETS_DIR.is_dir() else []


def load_dataset_spec(name_or_path: str | Path) -> DatasetSpec:
    p = Path(name_or_path)
    if p.suffix.lower() not in (".yaml", ".yml"):
        p = DATASETS_DIR / f"{str(name_or_path).lower()}.yaml"
        if not p.exists():
            known = ", ".join(list_datasets()) or "none found"
            raise UsageError(f"unknown dataset {str(name_or_path)!r} (known: {known}; or give a YAML path)")
    spec = validate(DatasetSpec, read_yaml(p), p)
    if "name" not in spec.model_fields_set:
        spec.name = p.stem
    return spec


_NORMALISE = {
    "none": None,
    "strip_zeros": lambda s: s.lstrip("0") or "0",
    "lower": lambda s: s.lower(),
}


def build_dataset_manifest(spec: DatasetSpec, root: str | Path) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Build a manifest for a downloaded public dataset described by ``spec``."""
    root_p = Path(root)
    kwargs: dict[str, Any] = {"id_regex": spec.images.id_regex}
    if spec.covariates is not None:
        c = spec.covariates
        kwargs.update(
            covariates=root_p / c.table,
            id_column=c.id_column,
            id_normalise=_NORMALISE[c.id_normalise],
            duplicates=c.duplicates,
            columns={k: ColumnSpec(**v.model_dump()) for k, v in c.columns.items()} or None,
        )
    table, warnings, notes = build_manifest(root_p, spec.images.pattern, **kwargs)
    if spec.components is not None:
        keep = spec.images.volumes
        comps = [c for c in spec.components if keep is None or c.index in keep]
        table = _expand_components(table, comps)
    elif spec.images.volumes is not None:
        table = _expand_volumes(table, spec.images.volumes)
    return table, warnings, notes


def _expand_components(table: pd.DataFrame, comps: list[ComponentRule]) -> pd.DataFrame:
    """One row per (subject, component): ``volume`` its index, ``network`` its name, ``domain`` its domain."""
    parts = []
    for c in comps:
        t = table.copy()
        t.insert(1, "subject", t["subject_id"])
        t["subject_id"] = t["subject_id"] + f"_{c.name}"
        t["volume"] = c.index
        t["network"] = c.name
        t["domain"] = c.domain
        parts.append(t)
    return pd.concat(parts, ignore_index=True).sort_values(["subject", "volume"], kind="stable").reset_index(drop=True)


def _expand_volumes(table: pd.DataFrame, volumes: list[int]) -> pd.DataFrame:
    """One row per (subject, volume) of a 4D file; ``component`` records the volume index as a covariate."""
    parts = []
    for v in volumes:
        t = table.copy()
        t["subject_id"] = t["subject_id"] + f"_c{v:03d}"
        t["volume"] = v
        t["component"] = v
        parts.append(t)
    return pd.concat(parts, ignore_index=True).sort_values("subject_id", kind="stable").reset_index(drop=True)
