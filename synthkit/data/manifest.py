"""Data manifests: one CSV row per image, with its covariates.

Schema (``data_manifests/README.md``): required ``subject_id`` and ``image``; optional ``label`` (a label-map
NIfTI), ``brain_mask`` (a brain-mask NIfTI), ``volume`` (the volume index in a 4D file), ``components`` (a
component table: the row becomes one row per network, :mod:`synthkit.data.components`), ``network``, ``split``
(train/val/test), ``age`` (years), ``sex`` (0 female, 1 male) and any numeric covariates (e.g.
``ventricular_volume``, ``brain_volume`` in mm³). Paths
are absolute or relative to the manifest's folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthkit.data.io import is_nifti, load_nifti
from synthkit.errors import ManifestError, NiftiError, UsageError

REQUIRED_COLUMNS = ("subject_id", "image")
PATH_COLUMNS = ("image", "label", "brain_mask")
#: text columns: paths, the split, and an ICN row's network, domain, subject and component table
TEXT_COLUMNS = ("subject_id", "image", "label", "brain_mask", "split", "network", "domain", "subject", "components")
SPLITS = ("train", "val", "test")
#: plausible ranges of well-known covariates; a value outside is a bad row
RANGES: dict[str, tuple[float, float]] = {
    "age": (0.0, 120.0),
    "ventricular_volume": (0.0, 500_000.0),
    "brain_volume": (0.0, 3_000_000.0),
}


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with one manifest row (``row`` counts data rows from 1, the header not included)."""

    row: int
    subject_id: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row} ({self.subject_id}): {self.problem}"


@dataclass
class Manifest:
    """A loaded manifest: the table with absolute paths, and where it came from."""

    table: pd.DataFrame
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def covariate_columns(self) -> list[str]:
        skip = set(TEXT_COLUMNS) | {"volume"}
        return [c for c in self.table.columns if c not in skip]

    def split(self, name: str) -> Manifest:
        if "split" not in self.table.columns:
            raise ManifestError(f"{self.path}: no 'split' column")
        return Manifest(self.table[self.table["split"] == name].reset_index(drop=True), self.path)

    def volumes(self) -> list[int | None]:
        if "volume" not in self.table.columns:
            return [None] * len(self.table)
        return [None if pd.isna(v) else int(v) for v in self.table["volume"]]

    def covariates(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        out = {}
        for n in names:
            if n not in self.table.columns:
                raise ManifestError(f"{self.path}: no column {n!r} (columns: {', '.join(self.table.columns)})")
            out[n] = numeric_column(self, n)
        return out


def read_manifest(path: str | Path, *, check_files: bool = True) -> Manifest:
    """Read a manifest CSV, check its columns and resolve relative paths against its folder.

    With ``check_files`` every image (and label) path must name an existing file; the error lists the rows
    that do not, with their subject IDs and paths.

    Raises:
        ManifestError: missing file, unreadable CSV, missing required column, missing image files.
    """
    p = Path(path)
    if not p.exists():
        raise ManifestError(f"{p}: manifest not found")
    if not p.is_file():
        raise ManifestError(f"{p}: is a folder, not a manifest CSV")
    try:
        table = pd.read_csv(p, dtype={c: "string" for c in TEXT_COLUMNS}, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ManifestError(f"{p}: not a readable CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{p}: missing required column(s) {', '.join(missing)} (found: {', '.join(map(str, table.columns))})"
        )
    if "components" in table.columns:  # a 4D component file per row: one row per (subject, network)
        from synthkit.data.components import expand_components

        table = expand_components(table, p.parent)
    for col in PATH_COLUMNS:
        if col in table.columns:
            table[col] = [_resolve(p.parent, v) for v in table[col]]
    if check_files:
        _check_files(table, p)
    return Manifest(table, p)


def _check_files(table: pd.DataFrame, path: Path) -> None:
    bad = []
    for i, (sid, img) in enumerate(zip(table["subject_id"], table["image"], strict=True)):
        if pd.isna(img):
            bad.append(f"row {i + 1} ({sid}): empty image path")
        elif not Path(str(img)).is_file():
            bad.append(f"row {i + 1} ({sid}): {img} " + ("is a folder" if Path(str(img)).is_dir() else "not found"))
    if bad:
        more = f" … and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ManifestError(
            f"{path}: {len(bad)} image file(s) missing — {'; '.join(bad[:3])}{more} "
            "(relative paths are read from the manifest's folder; 'synthkit manifest validate' lists every row)"
        )


def numeric_column(m: Manifest, name: str, rows: np.ndarray | None = None) -> np.ndarray:
    """A covariate column as float64; text in it is one error saying how to map it to numbers."""
    col = m.table[name]
    values = pd.to_numeric(col, errors="coerce")
    text = col.notna() & values.isna()
    if rows is not None:
        keep = np.zeros(len(col), bool)
        keep[rows] = True
        text &= keep
    if text.any():
        idx = np.flatnonzero(text.to_numpy())
        shown = ", ".join(repr(v) for v in sorted({str(col.iloc[i]) for i in idx})[:5])
        where = ", ".join(str(i + 1) for i in idx[:5]) + (" …" if idx.size > 5 else "")
        how = (
            "rebuild the manifest with 'synthkit manifest build … --covariates TABLE' (it codes M/F as 1/0) "
            f"or with --map {name}=VALUE:CODE,…"
        )
        raise ManifestError(f"{m.path}: column {name!r} holds text ({shown} in row(s) {where}), not numbers; {how}")
    return values.to_numpy(dtype=np.float64)


def _resolve(base: Path, value: Any) -> Any:
    if pd.isna(value) or str(value).strip() == "":
        return pd.NA
    q = Path(str(value))
    return str(q if q.is_absolute() else (base / q))


def validate_manifest(
    path: str | Path, *, check_images: bool = True, threads: int = 4, progress: bool = False
) -> tuple[Manifest, list[RowProblem]]:
    """Check every row and return all problems at once (an empty list means the manifest is good).

    Row checks: subject_id present and unique; image present, existing, a readable 3D NIfTI (or a valid
    ``volume`` of a 4D one) with finite voxels; label likewise and of the image's shape; ``split`` in
    train/val/test; covariates numeric, finite where present, ``sex`` in {0, 1}, known covariates in range.
    """
    m = read_manifest(path, check_files=False)
    t = m.table
    problems: list[RowProblem] = []

    def add(i: int, msg: str) -> None:
        sid = t["subject_id"].iloc[i]
        problems.append(RowProblem(i + 1, "?" if pd.isna(sid) else str(sid), msg))

    sid = t["subject_id"]
    dup = sid.duplicated(keep=False) & sid.notna()
    for i in range(len(t)):
        if pd.isna(sid.iloc[i]) or not str(sid.iloc[i]).strip():
            add(i, "empty subject_id")
        elif dup.iloc[i]:
            add(i, f"duplicate subject_id {sid.iloc[i]!r}")
        if "split" in t.columns and not pd.isna(t["split"].iloc[i]) and t["split"].iloc[i] not in SPLITS:
            add(i, f"split {t['split'].iloc[i]!r} is not one of {', '.join(SPLITS)}")

    for col in m.covariate_columns:
        values = pd.to_numeric(t[col], errors="coerce")
        for i in range(len(t)):
            raw = t[col].iloc[i]
            if pd.isna(raw):
                continue  # a missing covariate is allowed; training checks the ones it conditions on
            v = values.iloc[i]
            if pd.isna(v):
                add(i, f"{col} = {raw!r} is not a number")
            elif not np.isfinite(v):
                add(i, f"{col} = {raw} is not finite")
            elif col == "sex" and v not in (0, 1):
                add(i, f"sex = {raw} must be 0 (female) or 1 (male)")
            elif col in RANGES and not RANGES[col][0] <= v <= RANGES[col][1]:
                lo, hi = RANGES[col]
                add(i, f"{col} = {raw} is outside the plausible range [{lo:g}, {hi:g}]")

    if check_images:
        vols = m.volumes() if "volume" in t.columns else [None] * len(t)
        jobs = [(i, col) for i in range(len(t)) for col in PATH_COLUMNS if col in t.columns]

        def check(job: tuple[int, str]) -> tuple[int, str, str | None, tuple[int, ...] | None]:
            i, col = job
            value = t[col].iloc[i]
            if pd.isna(value):
                return i, col, ("empty image path" if col == "image" else None), None
            if not is_nifti(value):
                return i, col, f"{col} {value} is not a .nii or .nii.gz file", None
            try:
                data, _ = load_nifti(value, volume=vols[i])
            except NiftiError as e:
                return i, col, f"{col}: {e}", None
            return i, col, None, data.shape

        shapes: dict[tuple[int, str], tuple[int, ...]] = {}
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            results: Iterable = pool.map(check, jobs)
            if progress:
                from synthkit.progress import track

                results = track(results, total=len(jobs), description="checking images", transient=True)
            for i, col, msg, shape in results:
                if msg:
                    add(i, msg)
                if shape is not None:
                    shapes[(i, col)] = shape
        for (i, col), shape in shapes.items():
            if col != "image" and (i, "image") in shapes and shapes[(i, "image")] != shape:
                add(i, f"{col} shape {list(shape)} differs from image shape {list(shapes[(i, 'image')])}")
    problems.sort(key=lambda p: p.row)
    return m, problems


def build_manifest(
    root: str | Path,
    pattern: str,
    *,
    covariates: str | Path | pd.DataFrame | None = None,
    id_column: str | None = None,
    id_regex: str | None = None,
    columns: Mapping[str, ColumnSpec] | None = None,
    id_normalise: Callable[[str], str] | None = None,
    duplicates: str = "error",
    maps: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Find images under ``root`` with a glob and join covariates by subject ID.

    Args:
        root: the dataset folder.
        pattern: a glob relative to ``root`` (``**`` allowed), e.g. ``"IXI-T1/*.nii.gz"``.
        covariates: a CSV path (or table) with one row per subject.
        id_column: the covariate table's subject-ID column.
        id_regex: a regular expression applied to the file path relative to ``root``; named group
            ``subject`` is the join key, optional group ``session`` is appended to make ``subject_id``
            unique; without it the file name (minus ``.nii[.gz]``) is the subject ID.
        columns: manifest column → how to compute it from the covariate table (default: every column but
            the ID, numeric ones as they are, ``sex`` codings recoded, other text left out with a warning;
            see :mod:`synthkit.data.coding`).
        id_normalise: applied to both sides of the join (e.g. strip leading zeros).
        duplicates: when the covariate table has several rows for one subject: ``"error"`` or ``"first"``.
        maps: column → {value: code} recodings (``--map``); a value without a code is an error.

    Returns:
        The manifest table (paths relative to ``root`` are made absolute), warnings, and notes saying
        which columns were recoded and how.
    """
    root_p = Path(root)
    if not root_p.is_dir():
        raise ManifestError(f"{root_p}: not a folder")
    files = sorted(p for p in root_p.glob(pattern) if p.is_file() and is_nifti(p))
    if not files:
        raise ManifestError(f"no NIfTI files match {pattern!r} under {root_p}")
    norm = id_normalise or (lambda s: s)
    rx = re.compile(id_regex) if id_regex else None
    rows = []
    warnings: list[str] = []
    for f in files:
        rel = f.relative_to(root_p).as_posix()
        if rx is not None:
            m = rx.search(rel)
            if m is None:
                warnings.append(f"skipped {rel}: its path does not match the subject-ID pattern")
                continue
            groups = m.groupdict()
            key = groups.get("subject") or m.group(0)
            sid = key if not groups.get("session") else f"{key}_{groups['session']}"
        else:
            key = sid = re.sub(r"\.nii(\.gz)?$", "", f.name)
        rows.append({"subject_id": sid, "image": str(f.resolve()), "_key": norm(key), **_extra(rx, rel)})
    table = pd.DataFrame(rows)
    if table.empty:
        raise ManifestError(f"no file under {root_p} matched both {pattern!r} and the subject-ID pattern")
    notes: list[str] = []
    if covariates is not None:
        if id_column is None:
            raise UsageError("--covariates needs --id-column (the table's subject-ID column)")
        cov = covariates.copy() if isinstance(covariates, pd.DataFrame) else _read_table(Path(covariates), id_column)
        _join_covariates(table, cov, id_column, norm, duplicates, columns, maps or {}, warnings, notes)
    elif maps:
        raise UsageError("--map needs --covariates (it recodes columns of the covariate table)")
    extra_cols = [c for c in table.columns if c.startswith("_")]
    table = table.drop(columns=extra_cols)
    if table["subject_id"].duplicated().any():
        d = table.loc[table["subject_id"].duplicated(), "subject_id"].tolist()
        raise ManifestError(f"several images map to subject ID(s) {', '.join(d[:5])}; refine the pattern")
    return table, warnings, notes


def _join_covariates(
    table: pd.DataFrame,
    cov: pd.DataFrame,
    id_column: str,
    norm: Callable[[str], str],
    duplicates: str,
    columns: Mapping[str, ColumnSpec] | None,
    maps: Mapping[str, Mapping[str, float]],
    warnings: list[str],
    notes: list[str],
) -> None:
    """Join ``cov`` onto ``table`` (in place) by subject ID, coding every covariate column as numbers."""
    from synthkit.data.coding import _TextColumn, code_column

    have = ", ".join(map(str, cov.columns))
    if id_column not in cov.columns:
        raise UsageError(f"--id-column {id_column!r}: the covariate table has no such column (columns: {have})")
    unknown = [c for c in maps if c not in cov.columns]
    if unknown:
        raise UsageError(f"--map {unknown[0]}: the covariate table has no such column (columns: {have})")
    cov["_key"] = [norm(str(v).strip()) for v in cov[id_column]]
    dup_keys = cov["_key"][cov["_key"].duplicated()].unique()
    if len(dup_keys) and duplicates == "error":
        raise ManifestError(f"covariate table has several rows for subject(s) {', '.join(dup_keys[:5])}")
    cov = cov.drop_duplicates("_key", keep="first")
    merged = table.merge(cov, on="_key", how="left", suffixes=("", "_cov"), indicator=True)
    if columns:
        for name, spec in columns.items():
            table[name] = spec.apply(merged).to_numpy()
    else:
        for c in cov.columns:
            if c in (id_column, "_key") or c in table.columns:
                continue
            try:
                values, note = code_column(merged[c], c, maps.get(c), names=merged["subject_id"].tolist())
            except _TextColumn as e:
                warnings.append(e.advice())
                continue
            table[c] = values.to_numpy()
            if note:
                notes.append(note)
    unmatched = merged.loc[merged["_merge"] == "left_only", "subject_id"].tolist()
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (" …" if len(unmatched) > 5 else "")
        warnings.append(f"{len(unmatched)} image(s) have no covariates row (kept, covariates empty): {shown}")


def _extra(rx: re.Pattern | None, rel: str) -> dict[str, Any]:
    """Named regex groups other than subject/session become helper columns (e.g. ``days`` since entry)."""
    if rx is None:
        return {}
    m = rx.search(rel)
    assert m is not None
    return {f"_rx_{k}": v for k, v in m.groupdict().items() if k not in ("subject", "session") and v is not None}


@dataclass(frozen=True)
class ColumnSpec:
    """How one manifest column is computed from a covariate table.

    ``column``: the source column; ``map``: value → number (e.g. ``{"M": 1, "F": 0}``); ``scale``: multiply
    (e.g. 1000 for cm³ → mm³); ``plus_years_from_days``: add a ``days`` column / 365.25 (e.g. OASIS-3's
    ``AgeatEntry`` + days since entry, where ``days`` is a column or a named group of the file-name pattern).
    """

    column: str
    map: Mapping[Any, float] | None = None
    scale: float = 1.0
    plus_years_from_days: str | None = None

    def apply(self, table: pd.DataFrame) -> pd.Series:
        if self.column not in table.columns:
            raise ManifestError(f"covariate table has no column {self.column!r}")
        s = table[self.column]
        if self.map is not None:
            from synthkit.data.coding import apply_map

            names = table["subject_id"].tolist() if "subject_id" in table.columns else None
            s = apply_map(s, self.map, self.column, names)
        s = pd.to_numeric(s, errors="coerce") * self.scale
        if self.plus_years_from_days:
            days = self.plus_years_from_days
            col = f"_rx_{days}" if f"_rx_{days}" in table.columns else days
            if col not in table.columns:
                raise ManifestError(f"no {days!r} column or file-name group to add days from")
            s = s + pd.to_numeric(table[col], errors="coerce") / 365.25
        return s


def _read_table(path: Path, id_column: str) -> pd.DataFrame:
    if not path.exists():
        raise ManifestError(f"{path}: covariate table not found")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        return pd.read_csv(path, sep=sep, dtype={id_column: str}, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: not a readable table ({str(e).splitlines()[0]})") from None


def write_manifest(table: pd.DataFrame, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(p, index=False)
    return p
