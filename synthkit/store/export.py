"""``synthkit export``: stored samples → NIfTI (float32, the store's affine) plus a conditions CSV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from synthkit.errors import UsageError
from synthkit.store.reader import open_cohort


def parse_indices(spec: str | None, n: int) -> list[int]:
    """``"0:10"``, ``"5"``, ``"1,4,9"``, ``"::100"`` → positions (Python slice rules, bounds-checked)."""
    if spec is None or spec.strip() == "":
        return list(range(n))
    out: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if ":" in part:
                bits = [int(b) if b.strip() else None for b in part.split(":")]
                if len(bits) > 3:
                    raise ValueError
                out.extend(range(n)[slice(*bits)])
            else:
                i = int(part)
                if not -n <= i < n:
                    raise UsageError(f"index {i} out of range for a cohort of {n}")
                out.append(i % n)
    except ValueError:
        raise UsageError(f"--indices {spec!r}: expected e.g. 0:10, 5, 1,4,9 or ::100") from None
    if not out:
        raise UsageError(f"--indices {spec!r} selects no sample of a cohort of {n}")
    return out


def export_nifti(store: str | Path, out: str | Path, indices: Sequence[int] | None = None) -> list[Path]:
    """Write each chosen sample as ``sample_<index>.nii.gz`` (and ``_label`` when stored) and ``conditions.csv``."""
    cohort = open_cohort(store, allow_incomplete=True)
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    affine = cohort.space.affine_array
    positions = list(range(len(cohort))) if indices is None else list(indices)
    written = []
    for pos in positions:
        item = cohort[pos]
        name = f"sample_{item['index']:06d}"
        img = nib.Nifti1Image(item["image"].astype(np.float32), affine)
        img.header.set_xyzt_units("mm")
        nib.save(img, str(out_p / f"{name}.nii.gz"))
        written.append(out_p / f"{name}.nii.gz")
        if "label" in item:
            nib.save(nib.Nifti1Image(item["label"].astype(np.uint8), affine), str(out_p / f"{name}_label.nii.gz"))
    table = cohort.conditions.iloc[positions].copy()
    table.insert(1, "image", [p.name for p in written])
    table.to_csv(out_p / "conditions.csv", index=False)
    return written
