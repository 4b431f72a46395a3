"""Figures shared by training previews, ``synthkit sample`` and audit reports (numpy + matplotlib only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path, dpi: int = 100, tight: bool = False) -> Path:
    """Write a figure (creating its folder) and close it; ``tight`` crops to what is drawn, so that long
    rotated tick labels are not cut off."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi, **({"bbox_inches": "tight", "pad_inches": 0.1} if tight else {}))
    pyplot().close(fig)
    return p


def mid_slices(volume: np.ndarray) -> list[np.ndarray]:
    """Sagittal, coronal and axial mid-slices of an ``(X, Y, Z)`` RAS volume, oriented for display."""
    x, y, z = (s // 2 for s in volume.shape)
    return [volume[x, :, :].T, volume[:, y, :].T, volume[:, :, z].T]


def slice_grid(
    volumes: Sequence[np.ndarray] | np.ndarray,
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = "gray",
    suptitle: str | None = None,
    colorbar: bool = False,
) -> Path:
    """One row per volume, three orthogonal mid-slices each, on a shared colour scale; saved as PNG."""
    plt = pyplot()
    vols = list(volumes)
    height = 2.6 * len(vols) + (0.4 if suptitle else 0)
    fig, axes = plt.subplots(len(vols), 3, figsize=(7.5, height), squeeze=False)
    im = None
    for r, vol in enumerate(vols):
        for c, sl in enumerate(mid_slices(np.asarray(vol, dtype=np.float32))):
            ax = axes[r, c]
            im = ax.imshow(sl, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 1 and titles is not None:  # above the row's middle panel: long labels stay readable
                ax.set_title(titles[r], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    if colorbar and im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    else:  # below the suptitle's band, which tight_layout does not see (it overlapped the first row's title)
        fig.tight_layout(rect=(0, 0, 1, 1 - (0.45 / height if suptitle else 0)))
    return save(fig, path, dpi=90)


def scatter(
    x: np.ndarray, y: np.ndarray, path: str | Path, *, xlabel: str, ylabel: str, title: str = "", identity: bool = True
) -> Path:
    """A scatter plot with the identity line (requested vs measured, predicted vs true)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.scatter(x, y, s=10, alpha=0.7)
    if identity and len(x):
        lo, hi = float(min(np.min(x), np.min(y))), float(max(np.max(x), np.max(y)))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)
