"""A figure of the first four synthetic samples of the subset above four real images."""

from __future__ import annotations

from synthkit.audit.context import AuditContext, Part
from synthkit.viz import slice_grid


def run(ctx: AuditContext) -> Part:
    """The examples figure."""
    syn, real = ctx.synthetic, ctx.reference
    fig = slice_grid(
        list(syn[:4]) + list(real[:4]),
        ctx.out / "examples.png",
        titles=[f"synthetic #{i}" for i in ctx.synthetic_index[:4]] + ["real"] * min(4, len(real)),
        suptitle="synthetic (top) and real (bottom) examples",
    )
    return Part(figures={"examples": fig})
