"""The loop's mechanics: EMA warm-up, the learning-rate schedule, the diagnostics written to metrics.csv."""

import csv
import itertools

import pytest
import torch

from synthkit.training.trainer import EMA, lr_factor


def test_ema_follows_a_short_run_instead_of_keeping_the_initial_weights():
    model = torch.nn.Linear(3, 1)
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for step in range(20):
        ema.update(model, step)
    # with a plain 0.999 decay the EMA would still be 98 % initial weights after 20 steps
    assert torch.allclose(ema.model.weight, torch.ones(1, 3), atol=0.02)


def test_learning_rate_warms_up_then_decays_to_its_floor():
    f = [lr_factor(s, 100, "cosine", 10, 0.05) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert f[-1] == pytest.approx(0.05, abs=0.01)
    assert lr_factor(50, 100, "constant", 10, 0.05) == 1.0


def test_diagnostics_are_in_metrics_csv(trained_ldm):
    with open(trained_ldm.out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    diffusion = [r for r in rows if r["stage"] == "diffusion"]
    autoencoder = [r for r in rows if r["stage"] == "autoencoder"]
    for key in ("cond_gap_perm", "cond_gap_null", "val_loss", "lr"):
        assert any(r.get(key) for r in diffusion), key
    assert any(k.startswith("val_err_t") and r[k] for r in diffusion for k in r)
    assert any(r.get("sample_std") and r.get("data_std") for r in diffusion)
    assert any(r.get("latent_mu_spread") for r in diffusion)  # the latents the stage learned from
    for key in ("val_psnr", "latent_sigma_mean", "latent_mu_spread"):
        assert any(r.get(key) for r in autoencoder), key
