"""Stage 1 of the LDM: AutoencoderKL with L1 + KL + patch-adversarial (+ optional perceptual) losses."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from synthkit.config import LDMRecipe
from synthkit.metrics.ssim import ms_ssim
from synthkit.models.base import load_checkpoint
from synthkit.models.diffusion import load_weights, prefixed
from synthkit.models.networks import build_autoencoder, build_discriminator
from synthkit.training.common import RunContext
from synthkit.training.losses import adversarial_loss, kl_loss, perceptual_loss
from synthkit.training.trainer import LoopHooks, batch_indices, load_state, save_state, set_lr, step_generator

STAGE = "autoencoder"
#: MS-SSIM (3D) needs room for its window at every scale: smaller (test-sized) volumes and 2D models skip it
MIN_MS_SSIM_SIZE = 16


def train_autoencoder(ctx: RunContext, steps: int, resume: bool) -> Path:
    recipe = ctx.recipe
    assert isinstance(recipe, LDMRecipe)
    cfg = recipe.autoencoder_training
    dev = ctx.device
    ae = build_autoencoder(recipe.autoencoder, ctx.spatial_dims)
    if cfg.posterior_sigma != "learned":
        fix_posterior_sigma(ae, float(cfg.posterior_sigma))
    ae = ctx.layout(ae.to(dev))
    disc = ctx.layout(build_discriminator(ctx.spatial_dims, recipe.space.shape).to(dev))
    opt_g = torch.optim.Adam(ae.parameters(), lr=cfg.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr)
    adv = adversarial_loss()
    perc = perceptual_loss(cfg.perceptual_weight, cfg.perceptual_weights)
    if perc is not None:
        perc = perc.to(dev)
    state_file = ctx.out / "state" / f"{STAGE}.pt"
    start = 0
    if resume and state_file.exists():
        st = load_state(state_file)
        ae.load_state_dict(st["model"])
        disc.load_state_dict(st["disc"])
        opt_g.load_state_dict(st["opt"])
        opt_d.load_state_dict(st["opt_disc"])
        torch.set_rng_state(st["rng"])
        start = int(st["step"])
    train, val = ctx.data.train, ctx.data.val
    seed = cfg.seed

    def train_step(step: int) -> dict[str, float]:
        ae.train()
        set_lr(opt_g, cfg.lr, cfg, step, cfg.steps)  # the schedule spans the recipe's steps, not --max-steps
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=step_generator(seed, STAGE, step))))
        x = ctx.batch(train, batch_indices(len(train), cfg.batch_size, step, seed, STAGE))
        with ctx.autocast():
            recon, mu, sigma = ae(x)
            l1 = (recon.float() - x).abs().mean()
            kl = kl_loss(mu.float(), sigma.float())
            loss_g = l1 + cfg.kl_weight * kl
            p = perc(recon.float(), x) if perc is not None else torch.zeros((), device=dev)
            loss_g = loss_g + cfg.perceptual_weight * p
            use_adv = cfg.adv_weight > 0 and step >= cfg.adv_start
            g_adv = (
                adv(disc(recon.float())[-1], target_is_real=True, for_discriminator=False)
                if use_adv
                else torch.zeros((), device=dev)
            )
            loss_g = loss_g + cfg.adv_weight * g_adv
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(ae.parameters(), cfg.grad_clip)
        opt_g.step()
        d_loss = torch.zeros(())
        if use_adv:
            with ctx.autocast():
                fake = adv(disc(recon.detach().float())[-1], target_is_real=False, for_discriminator=True)
                real = adv(disc(x)[-1], target_is_real=True, for_discriminator=True)
                d_loss = cfg.adv_weight * 0.5 * (fake + real)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        losses = {"loss": l1, "kl": kl, "perceptual": p, "adv_g": g_adv, "adv_d": d_loss}
        return {k: float(v.detach()) for k, v in losses.items()}

    def validate() -> dict[str, float]:
        """Held-out reconstruction (L1, PSNR, MS-SSIM) and the latent statistics: posterior σ against the
        spread of the posterior means over images (σ rivalling the spread means latents are mostly noise)."""
        bank = val if len(val) else train
        ae.eval()
        l1, psnr, ssim, mus, sigmas = [], [], [], [], []
        with torch.inference_mode():
            for a in range(0, len(bank), cfg.batch_size):
                x = ctx.batch(bank, list(range(a, min(a + cfg.batch_size, len(bank)))))
                mu, sigma = ae.encode(x)
                r = ae.decode(mu).float().clamp(0, 1)
                l1.append((r - x).abs().flatten(1).mean(1))
                psnr.append(-10 * torch.log10(((r - x) ** 2).flatten(1).mean(1).clamp(min=1e-10)))
                if ctx.spatial_dims == 3 and min(x.shape[2:]) >= MIN_MS_SSIM_SIZE:
                    ssim.append(ms_ssim(r.cpu(), x.cpu()))
                mus.append(mu.float().cpu())
                sigmas.append(sigma.float().cpu())
        mu_all = torch.cat(mus)
        return {
            "val_loss": float(torch.cat(l1).mean()),
            "val_psnr": float(torch.cat(psnr).mean()),
            **({"val_ms_ssim": float(torch.cat(ssim).mean())} if ssim else {}),
            "latent_mu_spread": float(mu_all.std(0).mean()) if len(mu_all) > 1 else 0.0,
            "latent_sigma_mean": float(torch.cat(sigmas).mean()),
        }

    def preview(done: int) -> None:
        bank = val if len(val) else train
        ae.eval()
        with torch.inference_mode():
            x = ctx.batch(bank, list(range(min(2, len(bank)))))
            r = ae.reconstruct(x).float().clamp(0, 1)
        vols = []
        for i in range(x.shape[0]):
            for v in (x[i, 0], r[i, 0]):
                v = v.cpu().numpy()
                vols.append(v[..., None] if v.ndim == 2 else v)
        titles = [f"{kind} {i}" for i in range(x.shape[0]) for kind in ("input", "reconstruction")]
        ctx.preview(STAGE, done, vols, titles, f"autoencoder, step {done}")

    def checkpoint(done: int) -> None:
        meta = {**ctx.base_meta(), "kind": "autoencoder", "stage": STAGE, "step": done}
        tensors = prefixed(ae, "autoencoder.")
        ctx.save_checkpoint(STAGE, done, tensors, meta, latest=f"{STAGE}.safetensors")

    def save(done: int) -> None:
        save_state(
            state_file,
            {
                "step": done,
                "model": ae.state_dict(),
                "disc": disc.state_dict(),
                "opt": opt_g.state_dict(),
                "opt_disc": opt_d.state_dict(),
                "rng": torch.get_rng_state(),
            },
        )

    ctx.run_stage(STAGE, start, steps, LoopHooks(train_step, validate, preview, checkpoint, save), cfg)
    return ctx.out / f"{STAGE}.safetensors"


def fix_posterior_sigma(ae: torch.nn.Module, sigma: float) -> None:
    """Make the encoder's σ layer output log σ² everywhere (zero weights, constant bias) and freeze it."""
    layer = ae.quant_conv_log_sigma.conv
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.fill_(2 * math.log(sigma))
    layer.requires_grad_(False)


def load_trained_autoencoder(ctx: RunContext) -> torch.nn.Module:
    """The frozen stage-1 autoencoder of this run."""
    recipe = ctx.recipe
    assert isinstance(recipe, LDMRecipe)
    path = ctx.out / f"{STAGE}.safetensors"
    tensors, _ = load_checkpoint(path)
    ae = build_autoencoder(recipe.autoencoder, ctx.spatial_dims)
    load_weights(ae, tensors, "autoencoder.", path)
    return ae.eval().requires_grad_(False).to(ctx.device)
