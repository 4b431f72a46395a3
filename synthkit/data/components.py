"""ICA component files: a 4D NIfTI (one volume per component, as GIFT and other ICA tools write) with a
component table, expanded into one manifest row per (subject, network).

A component table is a CSV with ``index`` (the 0-based volume of the 4D file), ``name`` (the network, e.g.
``DefaultMode`` or a NeuroMark component name) and optionally ``domain``. A manifest row whose
``components`` column names such a table becomes one row per table entry: ``subject_id`` gets ``_<name>``
appended, ``volume`` is the entry's index, ``network`` its name, ``domain`` its domain, ``subject`` the
original ID (so that a subject's networks share its split); every other column is copied.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from synthkit.errors import ManifestError

#: the manifest column naming a component table, and the columns an expanded row gains
COMPONENTS = "components"
NETWORK = "network"


def read_component_table(path: str | Path) -> pd.DataFrame:
    """Read and check a component table: unique non-negative integer ``index``, unique non-empty ``name``."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: component table not found")
    try:
        t = pd.read_csv(p, dtype={"name": "string", "domain": "string"})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ManifestError(f"{p}: not a readable component table ({str(e).splitlines()[0]})") from None
    missing = [c for c in ("index", "name") if c not in t.columns]
    if missing:
        raise ManifestError(f"{p}: a component table needs columns index, name (missing: {', '.join(missing)})")
    idx = pd.to_numeric(t["index"], errors="coerce")
    if idx.isna().any() or (idx < 0).any() or (idx != idx.round()).any():
        raise ManifestError(f"{p}: 'index' must hold the 0-based volume number of every component")
    names = t["name"].fillna("").str.strip()
    if (names == "").any():
        raise ManifestError(f"{p}: every component needs a name")
    dup = sorted(set(names[names.duplicated()]))
    if dup or idx.duplicated().any():
        raise ManifestError(f"{p}: component names and indices must be unique (repeated: {', '.join(dup) or 'index'})")
    out = pd.DataFrame({"index": idx.astype(int), "name": names})
    out["domain"] = t["domain"].fillna("") if "domain" in t.columns else ""
    return out


def expand_components(table: pd.DataFrame, base: Path) -> pd.DataFrame:
    """One row per (row, component) for the rows with a ``components`` table; other rows are kept as they are."""
    if COMPONENTS not in table.columns:
        return table
    tables: dict[str, pd.DataFrame] = {}
    rows = []
    for _, row in table.iterrows():
        ref = row[COMPONENTS]
        if pd.isna(ref) or not str(ref).strip():
            rows.append(row.to_dict())
            continue
        path = Path(str(ref))
        path = path if path.is_absolute() else base / path
        key = str(path)
        if key not in tables:
            tables[key] = read_component_table(path)
        for _, c in tables[key].iterrows():
            new = row.to_dict()
            new.update(
                subject=row["subject_id"],
                subject_id=f"{row['subject_id']}_{c['name']}",
                volume=int(c["index"]),
                network=c["name"],
                domain=c["domain"],
            )
            rows.append(new)
    out = pd.DataFrame(rows).drop(columns=[COMPONENTS])
    if "volume" in out.columns:
        out["volume"] = out["volume"].astype("Int64")
    return out
