"""Sampling loops over the scheduler protocol (``set_timesteps``, ``timesteps``, ``step``/tables).

A *denoiser* is any callable ``(x, t) -> model output`` with ``t`` a ``(B,)`` tensor; models build one from
their network (with conditioning and guidance folded in, see :mod:`synthkit.sampling.guidance`). Loops know no
concrete model. Noise for sample ``i`` comes only from ``gens[i]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from synthkit.sampling.noise import randn
from synthkit.sampling.steps import clip_x0, ddim_step, ddpm_step, dpmpp_2m_step, predict_x0_eps

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _t(t: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """The scheduler's timestep (long for DDPM/DDIM, float for RFlow) as a ``(n,)`` batch."""
    return torch.as_tensor(t, device=device).reshape(1).expand(n)


def sample_ddpm(
    denoise: Denoiser, scheduler, x: torch.Tensor, gens: Sequence[torch.Generator], steps: int | None = None
) -> torch.Tensor:
    """Ancestral sampling (Ho et al. 2020): ``steps`` strided timesteps (default: all training steps)."""
    scheduler.set_timesteps(steps or scheduler.num_train_timesteps, device=x.device)
    ts = _ints(scheduler.timesteps)
    for i, t in enumerate(ts):
        out = denoise(x, _t(t, x.shape[0], x.device))
        noise = randn(x.shape[1:], gens, x.device, x.dtype) if t > 0 else None
        x = ddpm_step(scheduler, out, t, x, noise, prev_t=_next(ts, i))
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
    ts = _ints(scheduler.timesteps)
    for i, t in enumerate(ts):
        out = denoise(x, _t(t, x.shape[0], x.device))
        noise = randn(x.shape[1:], gens, x.device, x.dtype) if eta > 0 else None
        x = ddim_step(scheduler, out, t, x, eta=eta, noise=noise, prev_t=_next(ts, i))
    return x


def sample_dpmpp_2m(denoise: Denoiser, scheduler, x: torch.Tensor, steps: int = 15) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver of the probability-flow ODE in
    data-prediction form; deterministic; ``steps`` network evaluations at timesteps uniform in log-SNR (the
    paper's choice: with timesteps uniform in t, the last intervals of the scaled-linear schedule are so long
    in log-SNR that the second-order extrapolation loses its accuracy), first order at the first step, then
    second order. Works for ε, v and x₀ prediction (through the x₀ estimate)."""
    ts = logsnr_timesteps(scheduler, steps)
    x0_prev: torch.Tensor | None = None
    for i, t in enumerate(ts):
        out = denoise(x, _t(t, x.shape[0], x.device))
        x0, _ = predict_x0_eps(scheduler, out, t, x)
        x0 = clip_x0(scheduler, x0)
        x = dpmpp_2m_step(scheduler, x0, x0_prev, t, _next(ts, i), ts[i - 1] if i else None, x)
        x0_prev = x0
    return x


def logsnr_timesteps(scheduler, steps: int) -> list[int]:
    """``steps`` distinct integer timesteps from T − 1 down to 0, as evenly spaced in log-SNR as the integer
    grid allows."""
    a = scheduler.alphas_cumprod.double()
    lam = torch.log(a / (1 - a))
    targets = torch.linspace(float(lam[-1]), float(lam[0]), steps, dtype=torch.float64)
    ts = [int(torch.argmin((lam - v).abs())) for v in targets]
    return sorted(set(ts), reverse=True)


def _ints(timesteps: torch.Tensor) -> list[int]:
    return [int(t) for t in timesteps]


def _next(ts: list[int], i: int) -> int:
    """The timestep the loop calls after ``ts[i]``; −1 after the last (the clean end)."""
    return ts[i + 1] if i + 1 < len(ts) else -1


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
