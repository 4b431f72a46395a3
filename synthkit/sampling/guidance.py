"""Classifier-free guidance (Ho & Salimans 2021): ε = ε_uncond + s · (ε_cond − ε_uncond).

The conditional and unconditional passes run as one batch of 2B; with ``scale == 1`` only the conditional pass
runs. ``model(x, t, ctx)`` is the network with its conditioning inputs; ``null`` is the "no condition" context.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from synthkit.sampling.loops import Denoiser


def guided(
    model: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
    ctx: torch.Tensor | None,
    null: torch.Tensor | None,
    scale: float = 1.0,
) -> Denoiser:
    if ctx is None or scale == 1.0:
        return lambda x, t: model(x, t, ctx)
    if null is None:
        raise ValueError("guidance needs a null (unconditional) context; the model was trained without dropout")

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([ctx, null]))
        cond, uncond = out.chunk(2)
        return uncond + scale * (cond - uncond)

    return denoise
