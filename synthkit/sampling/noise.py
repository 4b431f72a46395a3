"""Per-sample randomness: every sample draws its noise from its own ``torch.Generator``.

Drawing noise sample by sample (instead of one ``randn`` for the batch) is what makes a sample independent of
the batch it was generated in: the same seed gives the same noise whatever the batch size or order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def generators(seeds: Sequence[int], device: str | torch.device) -> list[torch.Generator]:
    """One generator per sample, seeded with the sample's seed (on the sampling device)."""
    out = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s) & 0xFFFF_FFFF_FFFF_FFFF)
        out.append(g)
    return out


def randn(shape: Sequence[int], gens: Sequence[torch.Generator], device: str | torch.device, dtype=torch.float32):
    """Noise of shape ``(len(gens), *shape)``; row i comes from ``gens[i]`` only."""
    return torch.stack([torch.randn(tuple(shape), generator=g, device=device, dtype=dtype) for g in gens])
