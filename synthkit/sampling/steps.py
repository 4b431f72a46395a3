"""Reverse-process updates written out over a MONAI scheduler's tables (``alphas_cumprod``, ``timesteps``).

The maths is that of MONAI's ``DDPMScheduler.step`` (Ho et al. 2020, eq. 7 with the "fixed_small" variance) and
``DDIMScheduler.step`` (Song et al. 2021, eq. 12); the difference is where noise comes from: a tensor given by
the caller, drawn per sample, so batch composition never changes a sample. Tests check both against MONAI.

The previous timestep is passed explicitly. MONAI 1.6 spaces inference timesteps by ``linspace(T − 1, 0, N)`` but
its ``step`` assumes the previous one is ``t − T // N`` (with 15 steps it lands at t − 66 while the next call is
at t − 71); the loops in :mod:`synthkit.sampling.loops` pass the timestep they will call next.
"""

from __future__ import annotations

import torch


def _alpha(scheduler, t: int) -> torch.Tensor:
    return scheduler.alphas_cumprod[t] if t >= 0 else scheduler.final_alpha_cumprod


def predict_x0_eps(scheduler, model_output: torch.Tensor, t: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted clean sample and noise from the network output, for every MONAI prediction type."""
    a = scheduler.alphas_cumprod[t].to(x.device, x.dtype)
    b = 1 - a
    kind = scheduler.prediction_type
    if kind == "epsilon":
        eps = model_output
        x0 = (x - b.sqrt() * eps) / a.sqrt()
    elif kind == "sample":
        x0 = model_output
        eps = (x - a.sqrt() * x0) / b.sqrt()
    elif kind == "v_prediction":
        x0 = a.sqrt() * x - b.sqrt() * model_output
        eps = a.sqrt() * model_output + b.sqrt() * x
    else:  # pragma: no cover - MONAI validates prediction_type
        raise ValueError(kind)
    return x0, eps


def clip_x0(scheduler, x0: torch.Tensor) -> torch.Tensor:
    if getattr(scheduler, "clip_sample", False):
        return x0.clamp(scheduler.clip_sample_values[0], scheduler.clip_sample_values[1])
    return x0


def previous_timestep(scheduler, t: int) -> int:
    """MONAI's implicit previous timestep (used only when a caller does not say which one comes next)."""
    return t - scheduler.num_train_timesteps // scheduler.num_inference_steps


def ddpm_step(
    scheduler,
    model_output: torch.Tensor,
    t: int,
    x: torch.Tensor,
    noise: torch.Tensor | None,
    prev_t: int | None = None,
) -> torch.Tensor:
    """One ancestral DDPM step x_t → x_{prev_t} (``noise`` is ignored at the last step)."""
    prev_t = previous_timestep(scheduler, t) if prev_t is None else prev_t
    a_t = scheduler.alphas_cumprod[t].to(x.device, x.dtype)
    a_prev = (scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else scheduler.one).to(x.device, x.dtype)
    x0, _ = predict_x0_eps(scheduler, model_output, t, x)
    x0 = clip_x0(scheduler, x0)
    alpha_t = a_t / a_prev
    beta_t = 1 - alpha_t
    mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 + (alpha_t.sqrt() * (1 - a_prev) / (1 - a_t)) * x
    if t > 0 and noise is not None:
        variance = ((1 - a_prev) / (1 - a_t) * beta_t).clamp(min=1e-20)
        mean = mean + variance.sqrt() * noise
    return mean


def ddim_step(
    scheduler,
    model_output: torch.Tensor,
    t: int,
    x: torch.Tensor,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    prev_t: int | None = None,
) -> torch.Tensor:
    """One DDIM step x_t → x_{prev_t}; deterministic when ``eta`` is 0."""
    prev_t = previous_timestep(scheduler, t) if prev_t is None else prev_t
    a_t = scheduler.alphas_cumprod[t].to(x.device, x.dtype)
    a_prev = _alpha(scheduler, prev_t).to(x.device, x.dtype)
    x0, eps = predict_x0_eps(scheduler, model_output, t, x)
    x0 = clip_x0(scheduler, x0)  # as MONAI: ε is not recomputed from the clipped x₀
    sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
    out = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).sqrt() * eps
    if eta > 0 and noise is not None:
        out = out + sigma * noise
    return out


def dpmpp_2m_step(
    scheduler,
    x0: torch.Tensor,
    x0_prev: torch.Tensor | None,
    t: int,
    t_next: int,
    t_prev: int | None,
    x: torch.Tensor,
) -> torch.Tensor:
    """One DPM-Solver++(2M) step x_t → x_{t_next} from data predictions (Lu et al. 2022, arXiv:2211.01095,
    Algorithm 2), in half-log-SNR λ = log(α/σ) with α = √ᾱ, σ = √(1 − ᾱ).

    ``x0`` is the (clipped) data prediction at ``t``; ``x0_prev`` the one at the step before (``t_prev``), or
    None for a first-order step (= DDIM). ``t_next`` < 0 means the clean end (σ = 0): the step returns the
    (extrapolated) data prediction.
    """
    if t_next < 0:
        return x0  # σ = 0 ends the ODE at the data prediction (first order at the last step, as diffusers)
    lam_t, lam_n = _half_log_snr(scheduler, t), _half_log_snr(scheduler, t_next)
    h = lam_n - lam_t
    d = x0
    if x0_prev is not None and t_prev is not None:
        r = (lam_t - _half_log_snr(scheduler, t_prev)) / h
        d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
    a_t = scheduler.alphas_cumprod[t].double()
    a_n = scheduler.alphas_cumprod[t_next].double()
    sigma_ratio = float(((1 - a_n) / (1 - a_t)).sqrt())
    coeff = float(a_n.sqrt() * torch.expm1(-h))
    return sigma_ratio * x - coeff * d


def _half_log_snr(scheduler, t: int) -> torch.Tensor:
    a = scheduler.alphas_cumprod[t].double()
    return 0.5 * torch.log(a / (1 - a))
