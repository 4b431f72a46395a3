"""``synthkit preprocess``: a manifest's scans preprocessed to NIfTI, a new manifest, and a QC montage.

What a user looks at before training: every subject's three mid-slices (sagittal, coronal, axial) of the
preprocessed image with the brain mask's outline, 50 subjects per PNG (``qc.png``, or ``qc-01.png``, … for
more). The preprocessed images are written with the template's xform code (4), so a manifest of them is only
resampled, not registered again, when it is trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synthkit.data.io import save_nifti
from synthkit.data.manifest import read_manifest, write_manifest
from synthkit.data.preprocess import PreprocessParams, preprocess_file_full
from synthkit.errors import NiftiError
from synthkit.space import ImageSpace

PER_PAGE = 50


@dataclass
class CohortResult:
    manifest: Path
    montages: list[Path]
    done: int
    failures: list[str] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)


def preprocess_manifest(
    manifest: str | Path,
    out: str | Path,
    space: ImageSpace,
    params: PreprocessParams | None = None,
    *,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> CohortResult:
    """Preprocess every row of ``manifest`` into ``out`` (images/, masks/, manifest.csv, qc*.png).

    A row that fails (unreadable file, no head found) is reported and skipped; the others are written.
    """
    m = read_manifest(manifest)
    out_p = Path(out)
    rows, previews, failures, modes = [], [], [], {}
    items = list(range(len(m)))
    it = items
    if progress:
        from synthkit.progress import track

        it = track(items, description=f"preprocessing {len(items)} images", transient=True)
    vols = m.volumes()
    for i in it:
        row = m.table.iloc[i]
        sid = str(row["subject_id"])
        try:
            res = preprocess_file_full(row["image"], space, params, volume=vols[i])
        except NiftiError as e:
            failures.append(f"row {i + 1} ({sid}): {e}")
            echo(f"failed: row {i + 1} ({sid}): {e}")
            continue
        modes[res.mode] = modes.get(res.mode, 0) + 1
        affine = res.grid_affine if res.grid_affine is not None else space.affine_array
        img_path = save_nifti(res.image, affine, out_p / "images" / f"{sid}.nii.gz", xform_code=4)
        new = row.to_dict()
        new["image"] = str(img_path.relative_to(out_p))
        mask = res.brain_mask if res.brain_mask is not None else res.image > 0
        new.pop("label", None)  # maps in the scan's grid no longer match the image
        new.pop("brain_mask", None)
        if res.brain_mask is not None:
            mask_path = out_p / "masks" / f"{sid}_brainmask.nii.gz"
            save_nifti(mask, affine, mask_path, dtype=np.uint8, xform_code=4)
            new["brain_mask"] = str(mask_path.relative_to(out_p))
        rows.append(new)
        previews.append((sid, res.image, mask))
    columns = [c for c in m.table.columns if c not in ("label", "brain_mask")]
    if any("brain_mask" in r for r in rows):
        columns.insert(2, "brain_mask")
    table = pd.DataFrame(rows, columns=columns)
    path = write_manifest(table, out_p / "manifest.csv")
    pages = range(0, len(previews), PER_PAGE)
    names = [f"qc-{k // PER_PAGE + 1:02d}.png" for k in pages] if len(previews) > PER_PAGE else ["qc.png"]
    montages = [montage(previews[k : k + PER_PAGE], out_p / name) for k, name in zip(pages, names, strict=False)]
    return CohortResult(path, montages, len(rows), failures, modes)


def montage(items: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> Path:
    """One row per subject: sagittal, coronal and axial mid-slices with the brain mask's outline in red."""
    from synthkit.viz import pyplot, save

    plt = pyplot()
    n = len(items)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.4 * n + 0.3), squeeze=False)
    for r, (sid, img, mask) in enumerate(items):
        c = [s // 2 for s in img.shape]
        views = [(img[c[0]], mask[c[0]]), (img[:, c[1]], mask[:, c[1]]), (img[:, :, c[2]], mask[:, :, c[2]])]
        for j, (sl, ms) in enumerate(views):
            ax = axes[r, j]
            ax.imshow(sl.T, origin="lower", cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if ms.any() and not ms.all():
                ax.contour(ms.T.astype(float), levels=[0.5], colors="red", linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(sid, fontsize=7)
    for j, name in enumerate(("sagittal", "coronal", "axial")):
        axes[0, j].set_title(name, fontsize=9)
    fig.tight_layout()
    return save(fig, path, dpi=80)
