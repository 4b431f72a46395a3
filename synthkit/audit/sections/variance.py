"""Voxel-wise mean and variance maps over N synthetic and N real images (NIfTI + PNG on a shared scale), as
the ICN DDPM paper's variance heatmaps. N = ``variance_samples``; a larger set gives a random subset of N
with the stated seed."""

from __future__ import annotations

from synthkit.audit.context import AuditContext, Part
from synthkit.data.io import save_nifti
from synthkit.metrics.variance import voxel_stats
from synthkit.viz import slice_grid


def run(ctx: AuditContext) -> Part:
    """Mean and variance maps; their means in the report."""
    part = Part()
    if "variance" not in ctx.recipe.metrics:
        return part
    k = min(ctx.recipe.variance_samples, len(ctx.synthetic), len(ctx.reference))
    affine, out = ctx.cohort.space.affine_array, ctx.out
    stats, chosen = {}, {}
    for label, imgs in (("synthetic", ctx.synthetic), ("real", ctx.reference)):
        idx, how = ctx.subset(len(imgs), k, "variance_subset")
        mean, var = voxel_stats(imgs[idx])
        save_nifti(mean, affine, out / f"mean_{label}.nii.gz")
        save_nifti(var, affine, out / f"variance_{label}.nii.gz")
        stats[label], chosen[label] = (mean, var), how
    vmax = float(max(stats["synthetic"][1].max(), stats["real"][1].max()))
    part.figures["variance"] = slice_grid(
        [stats["synthetic"][1], stats["real"][1]],
        out / "variance.png",
        titles=["synthetic", "real"],
        vmin=0.0,
        vmax=vmax,
        cmap="magma",
        suptitle=f"voxel-wise variance over {k} samples (shared scale)",
        colorbar=True,
    )
    part.figures["mean"] = slice_grid(
        [stats["synthetic"][0], stats["real"][0]],
        out / "mean.png",
        titles=["synthetic", "real"],
        suptitle=f"voxel-wise mean over {k} samples",
    )
    part.metrics["variance"] = {
        "samples": k,
        "subsets": chosen,
        "synthetic_mean_variance": float(stats["synthetic"][1].mean()),
        "real_mean_variance": float(stats["real"][1].mean()),
        "synthetic_range": [float(stats["synthetic"][1].min()), float(stats["synthetic"][1].max())],
    }
    return part
