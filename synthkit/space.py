"""ImageSpace: the voxel grid every image of a recipe lives in.

Arrays are indexed ``(i, j, k)`` like nibabel's data arrays, and the affine maps ``(i, j, k, 1)`` to RAS world
millimetres. A space at 1 mm of shape 160×224×160 is the grid of Pinaya et al.'s UK Biobank LDM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthkit.errors import UsageError


@dataclass(frozen=True)
class ImageSpace:
    """A 3D voxel grid: shape, spacing (mm) and a 4×4 voxel-to-RAS affine."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(int(s) < 1 for s in self.shape):
            raise UsageError(f"an ImageSpace shape needs three positive sizes, got {list(self.shape)}")
        if len(self.spacing) != 3 or any(float(s) <= 0 for s in self.spacing):
            raise UsageError(f"an ImageSpace spacing needs three positive values, got {list(self.spacing)}")
        a = np.asarray(self.affine, dtype=float)
        if a.shape != (4, 4) or not np.all(np.isfinite(a)):
            raise UsageError("an ImageSpace affine must be a finite 4x4 matrix")

    @classmethod
    def centered(
        cls,
        shape: Sequence[int],
        spacing: float | Sequence[float],
        center: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> ImageSpace:
        """A RAS-aligned grid whose central voxel sits at ``center`` (world mm)."""
        sp = (float(spacing),) * 3 if np.isscalar(spacing) else tuple(float(s) for s in spacing)
        shp = tuple(int(s) for s in shape)
        aff = np.diag([*sp, 1.0])
        aff[:3, 3] = np.asarray(center, dtype=float) - aff[:3, :3] @ ((np.asarray(shp) - 1) / 2.0)
        return cls(shape=shp, spacing=sp, affine=_as_tuple(aff))  # type: ignore[arg-type]

    @property
    def affine_array(self) -> np.ndarray:
        return np.asarray(self.affine, dtype=np.float64)

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³."""
        return float(abs(np.linalg.det(self.affine_array[:3, :3])))

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    def world_coordinates(self) -> np.ndarray:
        """World (RAS mm) coordinates of every voxel centre, shape (3, *shape)."""
        grid = np.indices(self.shape, dtype=np.float64).reshape(3, -1)
        world = self.affine_array[:3, :3] @ grid + self.affine_array[:3, 3:4]
        return world.reshape(3, *self.shape)

    def refined(self, factor: int) -> ImageSpace:
        """The same field of view ``factor`` times finer: voxel ``factor·i`` of the refined grid is voxel ``i``
        of this one (corner voxel centres shared), so a volume on the refined grid is sampled at this grid's
        points by grid_sample with ``align_corners=True``."""
        f = int(factor)
        if f < 1:
            raise UsageError(f"a refinement factor must be a positive integer, got {factor}")
        aff = self.affine_array @ np.diag([1 / f, 1 / f, 1 / f, 1.0])
        shape = tuple(f * (s - 1) + 1 for s in self.shape)
        return ImageSpace(shape=shape, spacing=tuple(s / f for s in self.spacing), affine=_as_tuple(aff))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "affine": [list(r) for r in self.affine],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageSpace:
        try:
            return cls(
                shape=tuple(int(s) for s in d["shape"]),  # type: ignore[arg-type]
                spacing=tuple(float(s) for s in d["spacing"]),  # type: ignore[arg-type]
                affine=_as_tuple(np.asarray(d["affine"], dtype=float)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(f"not an ImageSpace description: {e}") from None

    def describe(self) -> str:
        shape = "×".join(str(s) for s in self.shape)
        spacing = "×".join(f"{s:g}" for s in self.spacing)
        return f"{shape} at {spacing} mm"


def _as_tuple(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(a, dtype=float))
