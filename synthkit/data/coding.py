"""Turning text covariates into numbers: the common codings of sex, and ``--map COLUMN=VALUE:CODE,…``.

Rules (``synthkit manifest build --covariates``):

* a numeric column is copied as it is, except ``sex`` given as 1/2, read as 1 = male, 2 = female (IXI's
  ``SEX_ID``, ADNI's ``PTGENDER``) and recoded to synthkit's 1 = male, 0 = female; ``--map sex=1:0,2:1``
  states the other convention;
* ``sex`` (or ``gender``) as text is recoded from M/F, male/female, man/woman (any case) to 1/0;
* ``--map COLUMN=VALUE:CODE,…`` recodes any column (``VALUE:`` with no code marks a value as missing);
* a value a coding does not cover is an error that lists every such value and the rows holding it — never a
  silently blanked cell; an empty cell stays empty (unknown);
* a text column with no coding is left out with a warning that says how to map it — never silently.

Every recoding is reported in one line (the build prints it), e.g. ``sex: M → 1, F → 0 (text codes)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from synthkit.errors import ManifestError, UsageError

SEX_TEXT = {"m": 1.0, "male": 1.0, "man": 1.0, "f": 0.0, "female": 0.0, "woman": 0.0}
SEX_NAMES = ("sex", "gender")
_SHOWN = 8


def parse_map(text: str) -> tuple[str, dict[str, float]]:
    """``COLUMN=VALUE:CODE,VALUE:CODE`` → (column, {value: code}); an empty code means missing (NaN)."""
    column, sep, pairs = text.partition("=")
    column = column.strip()
    if not sep or not column or not pairs.strip():
        raise UsageError(f"--map {text!r}: expected COLUMN=VALUE:CODE,VALUE:CODE (e.g. site=A:0,B:1)")
    out: dict[str, float] = {}
    for item in pairs.split(","):
        value, colon, code = item.partition(":")
        if not colon or not value.strip():
            raise UsageError(f"--map {text!r}: {item!r} is not VALUE:CODE")
        try:
            number = float(code) if code.strip() else float("nan")
        except ValueError:
            raise UsageError(f"--map {text!r}: the code of {value.strip()!r} is not a number ({code!r})") from None
        if not np.isnan(number) and not np.isfinite(number):
            raise UsageError(f"--map {text!r}: the code of {value.strip()!r} is not finite")
        out[_key(value)] = number
    return column, out


def _key(value: Any) -> str:
    """Comparable form of a cell or a map key: trimmed, lower case, numbers without a trailing .0."""
    s = str(value).strip().lower()
    try:
        f = float(s)
    except ValueError:
        return s
    return f"{f:g}" if np.isfinite(f) else s


def apply_map(
    series: pd.Series, mapping: Mapping[Any, float], column: str, names: Sequence[str] | None = None
) -> pd.Series:
    """Recode ``series`` with ``mapping``; values it does not cover are one error listing them and where they
    are: the subjects holding them when ``names`` (one per row, e.g. subject IDs) is given, else row numbers."""
    lookup = {_key(k): float(v) for k, v in mapping.items()}
    present = series.notna() & (series.astype(str).str.strip() != "")
    keys = series[present].map(_key)
    unknown = sorted(set(keys) - set(lookup))
    if unknown:
        rows = [int(i) for i in np.flatnonzero(present.to_numpy())[np.isin(keys.to_numpy(), unknown)]]
        shown = ", ".join(repr(u) for u in unknown[:_SHOWN]) + (" …" if len(unknown) > _SHOWN else "")
        labels = [str(names[i]) for i in rows] if names is not None else [str(i + 1) for i in rows]
        where = ("subjects " if names is not None else "table rows ") + ", ".join(labels[:5])
        where += " …" if len(rows) > 5 else ""
        raise ManifestError(
            f"column {column!r} has values with no code: {shown} ({where}); "
            f"give every value a code, e.g. --map {column}={unknown[0]}:CODE (VALUE: with no code marks it missing)"
        )
    out = pd.Series(np.nan, index=series.index, dtype=np.float64)
    out[present] = keys.map(lookup).astype(np.float64)
    return out


def code_column(
    series: pd.Series, column: str, mapping: Mapping[Any, float] | None, names: Sequence[str] | None = None
) -> tuple[pd.Series, str | None]:
    """A covariate column as numbers, and a note saying what was recoded (None when copied as is); ``names``
    (subject IDs, one per row) say where an uncoded value is."""
    if mapping is not None:
        out = apply_map(series, mapping, column, names)
        codes = ", ".join(f"{k} → {_fmt(v)}" for k, v in mapping.items())
        return out, f"{column}: {codes} (--map)"
    numeric = pd.to_numeric(series, errors="coerce")
    is_numeric = bool((numeric.notna() | series.isna()).all())
    if column.lower() in SEX_NAMES:
        values = set(numeric.dropna().unique()) if is_numeric else None
        if values is not None and values <= {0.0, 1.0}:
            return numeric, None
        if values is not None and values <= {1.0, 2.0}:
            out = apply_map(series, {"1": 1.0, "2": 0.0}, column, names)
            other = f"--map {column}=1:0,2:1 for the other"
            return out, f"{column}: 1 → 1 (male), 2 → 0 (female), the IXI/ADNI convention; {other}"
        if values is None:
            keys = {_key(v) for v in series.dropna()}
            out = apply_map(series, SEX_TEXT, column, names)
            shown = ", ".join(f"{k} → {_fmt(SEX_TEXT[k])}" for k in sorted(keys & set(SEX_TEXT)))
            return out, f"{column}: {shown} (1 = male, 0 = female)"
        raise ManifestError(
            f"column {column!r} holds {sorted(values)[:5]}, not a known coding of sex (0/1, 1/2, M/F); "
            f"state one with --map {column}=VALUE:CODE,… (1 = male, 0 = female)"
        )
    if is_numeric:
        return numeric.astype(np.float64), None
    raise _TextColumn(column, sorted({str(v).strip() for v in series.dropna()})[:_SHOWN])


class _TextColumn(Exception):
    """A text column without a coding (the caller leaves it out and says how to map it)."""

    def __init__(self, column: str, values: list[str]) -> None:
        super().__init__(column)
        self.column, self.values = column, values

    def advice(self) -> str:
        example = ",".join(f"{v}:{i}" for i, v in enumerate(self.values[:3]))
        shown = ", ".join(map(repr, self.values[:5]))
        return f"left out text column {self.column!r} (values {shown}); map it with --map {self.column}={example}"


def _fmt(v: float) -> str:
    return "missing" if np.isnan(v) else f"{v:g}"
