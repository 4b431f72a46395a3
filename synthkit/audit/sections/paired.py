"""Paired comparison: each synthetic sample against its nearest real image (PSNR, MSE), beside each real
image against its nearest *other* real image (pools of m and m − 1 images: a nearest neighbour in a larger
pool is closer, so unequal pools would bias the comparison). A synthetic PSNR above the real row is flagged,
not praised (:func:`synthkit.audit.verdict.cross_flags`): smooth or mean-like images sit closer to every real
image than real images sit to each other."""

from __future__ import annotations

import numpy as np

from synthkit.audit.context import AuditContext, Part
from synthkit.metrics import image as image_mod


def _row(x: np.ndarray, pool: np.ndarray, exclude_self: bool = False) -> dict[str, float]:
    nn = image_mod.nearest(x, pool, exclude_self=exclude_self)
    return {
        "psnr": float(np.mean(image_mod.psnr(x, pool[nn]))),
        "mse": float(np.mean(image_mod.mse(x, pool[nn]))),
    }


def run(ctx: AuditContext) -> Part:
    """PSNR / MSE to the nearest real image (nearest by MSE after 2× pooling), all samples on both sides."""
    part = Part()
    if "psnr" in ctx.recipe.metrics:
        real = ctx.reference
        part.metrics["psnr"] = {
            "synthetic_vs_nearest_real": _row(ctx.synthetic, real),
            "real_vs_nearest_real": _row(real, real, exclude_self=True),
            "sizes": {"synthetic": len(ctx.synthetic), "reference": len(real)},
            "pools": "synthetic: all reference images; real: all other reference images (leave one out), so "
            "both rows search pools of nearly the same size",
        }
    return part
