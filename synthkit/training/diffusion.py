"""The diffusion stage: image-space (``ddpm``) or latent (``ldm`` stage 2), conditioned, with EMA.

Per step: draw a batch, noise and timesteps from the step's own generator; noise the input with the training
scheduler (``add_noise``); regress the scheduler's target (ε, v, x₀, or the rectified-flow velocity x₀ − ε)
with MSE. Conditions are dropped (replaced by the null context) with probability ``conditioning.dropout`` so
that classifier-free guidance works at sampling time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from synthkit.config import LDMRecipe, SamplingConfig
from synthkit.models.conditioning import ConditionCodec
from synthkit.models.diffusion import DiffusionCore, prefixed
from synthkit.models.ldm import latent_shape
from synthkit.models.networks import build_train_scheduler, build_unet
from synthkit.training.autoencoder import load_trained_autoencoder
from synthkit.training.common import RunContext
from synthkit.training.trainer import EMA, LoopHooks, batch_indices, load_state, save_state, step_generator

STAGE = "diffusion"


class _Inputs:
    """Network-space training inputs: images mapped to [-1, 1] (ddpm) or scaled latents (ldm)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.is_ldm = isinstance(ctx.recipe, LDMRecipe)
        self.scale_factor = 1.0
        self.ae = None
        if self.is_ldm:
            self.ae = load_trained_autoencoder(ctx)
            self.latents = {
                name: self._encode(bank) for name, bank in (("train", ctx.data.train), ("val", ctx.data.val))
            }
            mu, sigma = self.latents["train"]
            g = torch.Generator().manual_seed(ctx.recipe.training.seed)
            z = mu + sigma * torch.randn(mu.shape, generator=g)
            self.scale_factor = float(1.0 / z.std())

    def _encode(self, bank) -> tuple[torch.Tensor, torch.Tensor]:
        mus, sigmas = [], []
        with torch.inference_mode():
            for a in range(0, len(bank), 8):
                mu, sigma = self.ae.encode(self.ctx.batch(bank, list(range(a, min(a + 8, len(bank))))))
                mus.append(mu.float().cpu())
                sigmas.append(sigma.float().cpu())
        if not mus:
            return torch.zeros(0), torch.zeros(0)
        return torch.cat(mus), torch.cat(sigmas)

    def get(self, split: str, idx: list[int], g: torch.Generator) -> torch.Tensor:
        if self.is_ldm:
            mu, sigma = self.latents[split]
            eps = torch.randn((len(idx), *mu.shape[1:]), generator=g)
            return self.ctx.layout(((mu[idx] + sigma[idx] * eps) * self.scale_factor).to(self.ctx.device))
        bank = self.ctx.data.train if split == "train" else self.ctx.data.val
        return self.ctx.batch(bank, idx) * 2 - 1

    def channels(self) -> int:
        return self.ctx.recipe.autoencoder.latent_channels if self.is_ldm else 1


def train_diffusion(ctx: RunContext, steps: int, resume: bool) -> Path:
    recipe, dev = ctx.recipe, ctx.device
    t_cfg = recipe.training
    names = list(recipe.data.conditions)
    cond_cfg = getattr(recipe, "conditioning", None)
    concat = cond_cfg.concat if cond_cfg else True
    crossattn = cond_cfg.crossattn if cond_cfg else True
    dropout = cond_cfg.dropout if cond_cfg else 0.0
    codec = ConditionCodec.fit(ctx.data.train_conditions, names, null_flag=dropout > 0)
    inputs = _Inputs(ctx)
    ch = inputs.channels()
    unet = ctx.layout(build_unet(recipe.unet, ch, ch, codec.dim, concat, crossattn).to(dev))
    core = DiffusionCore(
        unet, codec, recipe.scheduler, concat, crossattn, ctx.spatial_dims, clip_sample=not inputs.is_ldm
    )
    scheduler = build_train_scheduler(recipe.scheduler, clip_sample=not inputs.is_ldm, spatial_dims=ctx.spatial_dims)
    ema = EMA(unet, t_cfg.ema_decay)
    ema_core = dataclasses.replace(core, unet=ema.model)  # what the checkpoint ships: validation and previews use it
    opt = torch.optim.Adam(unet.parameters(), lr=t_cfg.lr)
    state_file = ctx.out / "state" / f"{STAGE}.pt"
    start = 0
    if resume and state_file.exists():
        st = load_state(state_file)
        unet.load_state_dict(st["model"])
        ema.model.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        torch.set_rng_state(st["rng"])
        start = int(st["step"])
    train, val = ctx.data.train, ctx.data.val
    seed = t_cfg.seed
    T = recipe.scheduler.num_train_timesteps

    def loss_on(net: DiffusionCore, split: str, idx: list[int], g: torch.Generator, drop: float) -> torch.Tensor:
        bank = train if split == "train" else val
        x0 = inputs.get(split, idx, g)
        noise = ctx.layout(torch.randn(x0.shape, generator=g).to(dev))
        if recipe.scheduler.kind == "rflow":
            t = (torch.rand(len(idx), generator=g) * T).to(dev)
            target = x0 - noise
        else:
            t = torch.randint(0, T, (len(idx),), generator=g).to(dev)
            kind = recipe.scheduler.prediction_type
            target = noise if kind == "epsilon" else x0 if kind == "sample" else scheduler.get_velocity(x0, noise, t)
        xt = scheduler.add_noise(x0, noise, t)
        c = codec.encode(bank.condition_batch(idx), len(idx), dev)
        if c is not None and drop > 0:
            keep = (torch.rand(len(idx), generator=g) >= drop).to(dev)
            c = c * keep[:, None]
        with ctx.autocast():
            pred = net.model(xt, t, c)
        return F.mse_loss(pred.float(), target.float())

    def train_step(step: int) -> dict[str, float]:
        unet.train()
        g = step_generator(seed, STAGE, step)
        loss = loss_on(core, "train", batch_indices(len(train), t_cfg.batch_size, step, seed, STAGE), g, dropout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t_cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(unet.parameters(), t_cfg.grad_clip)
        opt.step()
        ema.update(unet, step)
        return {"loss": float(loss.detach())}

    def validate() -> float:
        split = "val" if len(val) else "train"
        n = len(val) if len(val) else len(train)
        g = step_generator(seed, "validation", 0)  # the same noise at every validation: comparable losses
        total = 0.0
        with torch.inference_mode():
            for a in range(0, n, t_cfg.batch_size):
                idx = list(range(a, min(a + t_cfg.batch_size, n)))
                total += float(loss_on(ema_core, split, idx, g, 0.0)) * len(idx)
        return total / n

    def preview(done: int) -> None:
        bank = val if len(val) else train
        k = min(4, len(bank))
        conds = bank.condition_batch(list(range(k))) if names else None
        sampling = SamplingConfig(**{**recipe.sampling.model_dump(), "steps": min(recipe.sampling.steps, 50)})
        shape = latent_shape(recipe) if inputs.is_ldm else (1, *recipe.space.shape[: ctx.spatial_dims])
        x = ema_core.sample(shape, list(range(k)), conds, device=dev, sampling=sampling)
        with torch.inference_mode():
            imgs = inputs.ae.decode_stage_2_outputs(x / inputs.scale_factor) if inputs.is_ldm else (x + 1) / 2
        vols = [v[0].float().clamp(0, 1).cpu().numpy().reshape(recipe.space.shape) for v in imgs]
        titles = [", ".join(f"{n}={conds[n][i]:.4g}" for n in names) for i in range(k)] if conds else None
        ctx.preview(STAGE, done, vols, titles, f"{recipe.kind} samples, step {done}")

    def checkpoint(done: int) -> None:
        meta = {
            **ctx.base_meta(),
            "kind": recipe.kind,
            "stage": STAGE,
            "step": done,
            "conditioning": codec.to_dict(),
            "scale_factor": inputs.scale_factor,
        }
        tensors = prefixed(ema.model, "unet.")
        if inputs.is_ldm:
            tensors.update(prefixed(inputs.ae, "autoencoder."))
        ctx.save_checkpoint(STAGE, done, tensors, meta, latest="model.safetensors")

    def save(done: int) -> None:
        save_state(
            state_file,
            {
                "step": done,
                "model": unet.state_dict(),
                "ema": ema.model.state_dict(),
                "opt": opt.state_dict(),
                "rng": torch.get_rng_state(),
            },
        )

    ctx.run_stage(STAGE, start, steps, LoopHooks(train_step, validate, preview, checkpoint, save), t_cfg)
    return ctx.out / "model.safetensors"
