"""The written-out steps agree with MONAI's schedulers; per-sample noise makes sampling batch-invariant."""

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, RFlowScheduler

from synthkit.sampling.guidance import guided
from synthkit.sampling.loops import sample_ddim, sample_ddpm, sample_rflow
from synthkit.sampling.noise import generators, randn
from synthkit.sampling.steps import ddim_step, ddpm_step

KW = {"num_train_timesteps": 1000, "schedule": "scaled_linear_beta", "beta_start": 0.0015, "beta_end": 0.0205}


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("clip", [True, False])
def test_ddim_step_matches_monai(prediction, clip):
    s = DDIMScheduler(prediction_type=prediction, clip_sample=clip, **KW)
    s.set_timesteps(50)
    g = torch.Generator().manual_seed(0)
    x, out = torch.randn(2, 1, 4, 4, 4, generator=g), torch.randn(2, 1, 4, 4, 4, generator=g)
    for t in (int(s.timesteps[0]), int(s.timesteps[25]), int(s.timesteps[-1])):
        ref, _ = s.step(out, t, x, eta=0.0)
        assert torch.allclose(ddim_step(s, out, t, x), ref, atol=1e-5)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddpm_step_matches_monai_with_the_same_noise(prediction):
    s = DDPMScheduler(prediction_type=prediction, **KW)
    s.set_timesteps(1000)
    g = torch.Generator().manual_seed(1)
    x, out = torch.randn(1, 1, 4, 4, 4, generator=g), torch.randn(1, 1, 4, 4, 4, generator=g)
    for t in (999, 500, 1, 0):
        ref, _ = s.step(out, t, x, generator=torch.Generator().manual_seed(7))
        noise = torch.randn((1, 1, 4, 4, 4), generator=torch.Generator().manual_seed(7))
        assert torch.allclose(ddpm_step(s, out, t, x, noise), ref, atol=1e-5)


def test_noise_is_per_sample():
    a = randn((2, 3), generators([5, 6, 7], "cpu"), "cpu")
    b = randn((2, 3), generators([6], "cpu"), "cpu")
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])


def _denoiser(x, t):
    return 0.1 * x + 0.001 * t.float().reshape(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("loop", ["ddpm", "ddim-eta", "rflow"])
def test_loops_are_batch_invariant(loop):
    seeds = [11, 12, 13]

    def run(sub):
        gens = generators(sub, "cpu")
        x = randn((1, 4, 4, 4), gens, "cpu")
        if loop == "ddpm":
            return sample_ddpm(_denoiser, DDPMScheduler(**KW), x, gens, steps=20)
        if loop == "ddim-eta":
            return sample_ddim(_denoiser, DDIMScheduler(**KW), x, gens, steps=10, eta=1.0)
        return sample_rflow(_denoiser, RFlowScheduler(1000, use_discrete_timesteps=False), x, steps=10)

    together = run(seeds)
    alone = run([12])
    assert torch.equal(together[1], alone[0])
    assert torch.isfinite(together).all()


def test_guidance_combines_conditional_and_unconditional():
    def model(x, t, ctx):
        return x * 0 + ctx.sum(1).reshape(-1, 1, 1, 1, 1)

    x, t = torch.zeros(2, 1, 2, 2, 2), torch.zeros(2)
    ctx, null = torch.ones(2, 3), torch.zeros(2, 3)
    assert torch.allclose(guided(model, ctx, null, 1.0)(x, t), torch.full_like(x, 3.0))
    assert torch.allclose(guided(model, ctx, null, 2.5)(x, t), torch.full_like(x, 7.5))  # 0 + 2.5·(3 − 0)
    with pytest.raises(ValueError, match="null"):
        guided(model, ctx, None, 2.0)


def _gaussian(scheduler, m: float, s: float):
    """For data x₀ ~ N(m, s²) per voxel: the exact ε-prediction (from E[x₀|x_t] = m + α s² (x_t − α m) /
    (α² s² + σ²)), and that posterior mean itself."""

    def x0_of(x, a):
        alpha, sigma = a.sqrt(), (1 - a).sqrt()
        return m + alpha * s**2 * (x - alpha * m) / (alpha**2 * s**2 + sigma**2)

    def denoise(x, t):
        a = scheduler.alphas_cumprod[t.long()].reshape(-1, *([1] * (x.ndim - 1))).double()
        return (x - a.sqrt() * x0_of(x, a)) / (1 - a).sqrt()

    return denoise, x0_of


@pytest.mark.parametrize(("m", "s"), [(0.3, 0.5), (0.0, 1.0), (0.2, 0.2)])
def test_dpm_solver_pp_2m_in_10_steps_beats_ddim_in_50(m, s):
    """Known answer: for Gaussian data the probability-flow ODE keeps (x_t − α m) / √(α²s² + σ²) constant, so
    the trajectory from x_T is known in closed form; both samplers end with the posterior mean at t = 0.
    DPM-Solver++(2M) with 10 evaluations lands closer than DDIM with 50 (measured: 1.4–30× closer)."""
    from synthkit.sampling.loops import sample_dpmpp_2m

    x_T = torch.randn(4, 1, 6, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sched = DDIMScheduler(prediction_type="epsilon", clip_sample=False, **KW)
    a = sched.alphas_cumprod.double()
    denoise, x0_of = _gaussian(sched, m, s)
    z = (x_T - a[999].sqrt() * m) / (a[999] * s**2 + 1 - a[999]).sqrt()
    exact = x0_of(a[0].sqrt() * m + (a[0] * s**2 + 1 - a[0]).sqrt() * z, a[0])
    dpm10 = sample_dpmpp_2m(denoise, sched, x_T.clone(), steps=10)
    ddim50 = sample_ddim(denoise, sched, x_T.clone(), generators([0] * 4, "cpu"), steps=50)
    err_dpm, err_ddim = float((dpm10 - exact).abs().mean()), float((ddim50 - exact).abs().mean())
    assert err_dpm < err_ddim and err_dpm < 0.025, (err_dpm, err_ddim)


def test_loops_step_to_the_timestep_they_call_next():
    """MONAI's linspace timesteps are not t − T//N apart: each step must land where the next call is."""
    seen = []

    def denoise(x, t):
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    sched = DDIMScheduler(prediction_type="epsilon", clip_sample=False, **KW)
    x = torch.randn(1, 1, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    # with a zero ε-prediction, DDIM is exact scaling: x_prev = √(ᾱ_prev/ᾱ_t)·x, so the end is x·√(1/ᾱ_T)
    # only if every step's "previous" timestep is the one called next
    out = sample_ddim(denoise, sched, x.clone(), generators([0], "cpu"), steps=15)
    a_T = sched.alphas_cumprod[seen[0]]
    assert torch.allclose(out, x / a_T.sqrt(), rtol=1e-4)
    assert len(set(seen)) == 15
