"""The diffusion stage of every learned family, conditioned, with EMA.

Per step: draw a batch, noise and timesteps from the step's own generator; noise the family's network-space
input (:mod:`synthkit.training.inputs`) with the training scheduler; regress the scheduler's target (ε, v, x₀,
or the rectified-flow velocity x₀ − ε) with MSE. Conditions are dropped (replaced by the null context) with
probability ``conditioning.dropout`` so that classifier-free guidance works at sampling time.

Validation logs, beside the loss, the error by timestep and the **conditioning gap**: the same error with the
conditions permuted across the validation set, and with the null context, minus the error with the true
ones. A model that uses its conditions has a clearly positive gap; one that ignores them has none.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthkit.config import SamplingConfig
from synthkit.models.conditioning import ConditionCodec
from synthkit.models.diffusion import DiffusionCore, field_meta, new_core, prefixed
from synthkit.models.networks import build_train_scheduler
from synthkit.training.common import RunContext, fit_codec
from synthkit.training.inputs import INPUTS, DiffusionInputs
from synthkit.training.trainer import (
    EMA,
    LoopHooks,
    batch_indices,
    load_state,
    save_state,
    set_lr,
    step_generator,
)

STAGE = "diffusion"
#: validation timesteps are stratified over these bins (fractions of T) so the error by t has every bin
T_BINS = (0.0, 0.1, 0.3, 0.6, 1.0)


@dataclasses.dataclass
class DiffusionTrainer:
    """One diffusion stage: the network, its EMA, the optimiser and what it learns from."""

    ctx: RunContext
    inputs: DiffusionInputs
    codec: ConditionCodec
    core: DiffusionCore
    ema: EMA
    opt: torch.optim.Optimizer
    scheduler: object  # the training noise scheduler (MONAI DDPMScheduler or RFlowScheduler)
    total: int

    @classmethod
    def create(cls, ctx: RunContext, total: int) -> DiffusionTrainer:
        recipe = ctx.recipe
        inputs = INPUTS[recipe.kind](ctx)
        codec = fit_codec(ctx)
        core = new_core(recipe, codec, inputs.shape[0], inputs.clip_sample, field_shape=inputs.shape[1:])
        core.unet = ctx.layout(core.unet.to(ctx.device))
        ema = EMA(core.unet, recipe.training.ema_decay)
        opt = torch.optim.Adam(core.unet.parameters(), lr=recipe.training.lr)
        scheduler = build_train_scheduler(recipe.scheduler, inputs.clip_sample, ctx.spatial_dims)
        return cls(ctx, inputs, codec, core, ema, opt, scheduler, total)

    @property
    def ema_core(self) -> DiffusionCore:
        """What the checkpoint ships: validation and previews use it."""
        return dataclasses.replace(self.core, unet=self.ema.model)

    def errors(
        self, net: DiffusionCore, split: str, idx: list[int], g: torch.Generator, drop: float, **kw
    ) -> torch.Tensor:
        """Per-sample MSE of the network's prediction at random (or given ``t``) timesteps; ``conds`` replaces
        the rows' conditions, ``null`` uses the null context."""
        recipe, dev = self.ctx.recipe, self.ctx.device
        x0 = self.inputs.get(split, idx, g)
        noise = self.ctx.layout(torch.randn(x0.shape, generator=g).to(dev))
        T = recipe.scheduler.num_train_timesteps
        scheduler = self.scheduler
        t = kw.get("t")
        if recipe.scheduler.kind == "rflow":
            t = (torch.rand(len(idx), generator=g) * T).to(dev) if t is None else t.float().to(dev)
            target = x0 - noise
        else:
            t = torch.randint(0, T, (len(idx),), generator=g).to(dev) if t is None else t.to(dev)
            kind = recipe.scheduler.prediction_type
            target = noise if kind == "epsilon" else x0 if kind == "sample" else scheduler.get_velocity(x0, noise, t)
        xt = scheduler.add_noise(x0, noise, t)
        c = self._context(split, idx, kw.get("conds"), kw.get("null", False))
        if c is not None and drop > 0:
            keep = (torch.rand(len(idx), generator=g) >= drop).to(dev)
            c = c * keep[:, None]
        with self.ctx.autocast():
            pred = net.model(xt, t, c)
        return F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)

    def _context(self, split: str, idx: list[int], conds, null: bool) -> torch.Tensor | None:
        if null:
            return self.codec.null(len(idx), self.ctx.device)
        bank = self.ctx.data.train if split == "train" else self.ctx.data.val
        return self.codec.encode(conds if conds is not None else bank.condition_batch(idx), len(idx), self.ctx.device)

    def train_step(self, step: int) -> dict[str, float]:
        t_cfg = self.ctx.recipe.training
        self.core.unet.train()
        lr = set_lr(self.opt, t_cfg.lr, t_cfg, step, self.total)
        g = step_generator(t_cfg.seed, STAGE, step)
        idx = batch_indices(len(self.ctx.data.train), t_cfg.batch_size, step, t_cfg.seed, STAGE)
        loss = self.errors(self.core, "train", idx, g, self.ctx.recipe.conditioning.dropout).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if t_cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.core.unet.parameters(), t_cfg.grad_clip)
        self.opt.step()
        self.ema.update(self.core.unet, step)
        return {"loss": float(loss.detach()), "lr": lr}

    def validate(self) -> dict[str, float]:
        """Validation loss, error by timestep bin, and the conditioning gap (permuted and null conditions),
        all with the same noise and timesteps at every validation so that the numbers are comparable."""
        data, bs = self.ctx.data, self.ctx.recipe.training.batch_size
        split = "val" if len(data.val) else "train"
        n = len(data.val) if len(data.val) else len(data.train)
        t = self._stratified_t(n)
        bank = data.val if split == "val" else data.train
        perm = np.roll(np.arange(n), 1)  # every row gets another row's conditions
        names = list(self.codec.names)
        variants = {"true": {}}
        if names:
            variants["perm"] = {"conds": {k: v[perm] for k, v in bank.condition_batch(list(range(n))).items()}}
            if self.codec.null_flag:
                variants["null"] = {"null": True}
        errs = {}
        with torch.inference_mode():
            for name, kw in variants.items():
                g = step_generator(self.ctx.recipe.training.seed, "validation", 0)
                parts = []
                for a in range(0, n, bs):
                    idx = list(range(a, min(a + bs, n)))
                    extra = {k: ({c: v[idx] for c, v in kw[k].items()} if k == "conds" else kw[k]) for k in kw}
                    parts.append(self.errors(self.ema_core, split, idx, g, 0.0, t=t[idx], **extra))
                errs[name] = torch.cat(parts).cpu()
        return self._summarise(errs, t)

    def _stratified_t(self, n: int) -> torch.Tensor:
        T = self.ctx.recipe.scheduler.num_train_timesteps
        g = step_generator(self.ctx.recipe.training.seed, "validation-t", 0)
        lo = torch.tensor(T_BINS[:-1])[torch.arange(n) % (len(T_BINS) - 1)]
        hi = torch.tensor(T_BINS[1:])[torch.arange(n) % (len(T_BINS) - 1)]
        return ((lo + (hi - lo) * torch.rand(n, generator=g)) * (T - 1)).round().long()

    def _summarise(self, errs: dict[str, torch.Tensor], t: torch.Tensor) -> dict[str, float]:
        T = self.ctx.recipe.scheduler.num_train_timesteps
        out = {"val_loss": float(errs["true"].mean())}
        for lo, hi in itertools.pairwise(T_BINS):
            sel = (t >= lo * (T - 1)) & (t <= hi * (T - 1))
            if sel.any():
                out[f"val_err_t{int(lo * T)}-{int(hi * T)}"] = float(errs["true"][sel].mean())
        for name in ("perm", "null"):
            if name in errs:
                out[f"cond_gap_{name}"] = float((errs[name] - errs["true"]).mean())
        return out

    def preview(self, done: int) -> dict[str, float]:
        """Mid-slices of a few samples at validation rows' conditions; logs the samples' network-space std
        against the training tensors' (a model that leaves the data shows it here first)."""
        recipe, data = self.ctx.recipe, self.ctx.data
        bank, split = (data.val, "val") if len(data.val) else (data.train, "train")
        k = min(4, len(bank))
        names = list(recipe.data.conditions)
        conds = bank.condition_batch(list(range(k))) if names else None
        sampling = SamplingConfig(**{**recipe.sampling.model_dump(), "steps": min(recipe.sampling.steps, 50)})
        x = self.ema_core.sample(self.inputs.shape, list(range(k)), conds, device=self.ctx.device, sampling=sampling)
        ref = self.inputs.get(split, list(range(k)), step_generator(0, "preview", 0))
        imgs = self.inputs.decode(x, conds)
        vols = [v[0].float().clamp(0, 1).cpu().numpy().reshape(recipe.space.shape) for v in imgs]
        titles = [", ".join(f"{n}={conds[n][i]:.4g}" for n in names) for i in range(k)] if conds else None
        self.ctx.preview(STAGE, done, vols, titles, f"{recipe.kind} samples, step {done}")
        return {"sample_std": float(x.std()), "data_std": float(ref.std())}

    def checkpoint(self, done: int) -> None:
        meta = {
            **self.ctx.base_meta(),
            "kind": self.ctx.recipe.kind,
            "stage": STAGE,
            "step": done,
            "conditioning": self.codec.to_dict(),
            **self.inputs.meta(),
            **field_meta(self.ema.model),
        }
        tensors = {**prefixed(self.ema.model, "unet."), **self.inputs.tensors()}
        self.ctx.save_checkpoint(STAGE, done, tensors, meta, latest="model.safetensors")

    def state(self, done: int) -> dict:
        return {
            "step": done,
            "model": self.core.unet.state_dict(),
            "ema": self.ema.model.state_dict(),
            "opt": self.opt.state_dict(),
            "rng": torch.get_rng_state(),
        }

    def restore(self, st: dict) -> int:
        self.core.unet.load_state_dict(st["model"])
        self.ema.model.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["opt"])
        torch.set_rng_state(st["rng"])
        return int(st["step"])


def train_diffusion(ctx: RunContext, steps: int, resume: bool) -> Path:
    trainer = DiffusionTrainer.create(ctx, ctx.recipe.training.steps)  # the schedule spans the recipe's steps
    state_file = ctx.out / "state" / f"{STAGE}.pt"
    start = trainer.restore(load_state(state_file)) if resume and state_file.exists() else 0
    if start == 0:
        stats = trainer.inputs.stats()
        if stats:
            ctx.log.add(stage=STAGE, step=0, **stats)
    hooks = LoopHooks(
        trainer.train_step,
        trainer.validate,
        trainer.preview,
        trainer.checkpoint,
        lambda done: save_state(state_file, trainer.state(done)),
    )
    ctx.run_stage(STAGE, start, steps, hooks, ctx.recipe.training)
    return ctx.out / "model.safetensors"
