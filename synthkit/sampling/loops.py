"""Sampling loops over the scheduler protocol (``set_timesteps``, ``timesteps``, ``step``/tables).

A *denoiser* is any callable ``(x, t) -> model output`` with ``t`` a ``(B,)`` tensor; models build one from
their network (with conditioning and guidance folded in, see :mod:`synthkit.sampling.guidance`). Loops know no
concrete model. Noise for sample ``i`` comes only from ``gens[i]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from synthkit.sampling.noise import randn
from synthkit.sampling.steps import ddim_step, ddpm_step

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _t(t: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """The scheduler's timestep (long for DDPM/DDIM, float for RFlow) as a ``(n,)`` batch."""
    return torch.as_tensor(t, device=device).reshape(1).expand(n)


def sample_ddpm(
    denoise: Denoiser, scheduler, x: torch.Tensor, gens: Sequence[torch.Generator], steps: int | None = None
) -> torch.Tensor:
    """Ancestral sampling (Ho et al. 2020): ``steps`` strided timesteps (default: all training steps)."""
    scheduler.set_timesteps(steps or scheduler.num_train_timesteps, device=x.device)
    for t in scheduler.timesteps:
        out = denoise(x, _t(t, x.shape[0], x.device))
        noise = randn(x.shape[1:], gens, x.device, x.dtype) if int(t) > 0 else None
        x = ddpm_step(scheduler, out, int(t), x, noise)
    return x


def sample_ddim(
    denoise: Denoiser,
    scheduler,
    x: torch.Tensor,
    gens: Sequence[torch.Generator],
    steps: int = 50,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM (Song et al. 2021): ``steps`` timesteps; ``eta`` = 0 is deterministic given the initial noise."""
    scheduler.set_timesteps(steps, device=x.device)
    for t in scheduler.timesteps:
        out = denoise(x, _t(t, x.shape[0], x.device))
        noise = randn(x.shape[1:], gens, x.device, x.dtype) if eta > 0 else None
        x = ddim_step(scheduler, out, int(t), x, eta=eta, noise=noise)
    return x


def sample_rflow(denoise: Denoiser, scheduler, x: torch.Tensor, steps: int = 30) -> torch.Tensor:
    """Rectified flow (MONAI ``RFlowScheduler``): Euler steps along the predicted velocity; no added noise."""
    numel = int(torch.tensor(x.shape[2:]).prod())
    scheduler.set_timesteps(steps, device=x.device, input_img_size_numel=numel)
    ts = list(scheduler.timesteps)
    for i, t in enumerate(ts):
        nxt = ts[i + 1] if i + 1 < len(ts) else 0
        out = denoise(x, _t(t, x.shape[0], x.device))
        x, _ = scheduler.step(out, t, x, nxt)
    return x
