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
