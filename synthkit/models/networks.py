"""MONAI networks and schedulers built from recipe sections (one place, used by training and loading)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.networks.nets import AutoencoderKL, DiffusionModelUNet, PatchDiscriminator
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, RFlowScheduler
from torch import nn

from synthkit.config import AutoencoderConfig, SchedulerConfig, UNetConfig


def build_unet(
    cfg: UNetConfig,
    in_channels: int,
    out_channels: int,
    context_dim: int,
    concat: bool,
    crossattn: bool,
    embed: bool = False,
    fields: int = 0,
    field_shape: Sequence[int] = (),
) -> DiffusionModelUNet:
    """A ``DiffusionModelUNet``; concatenated conditions add ``context_dim`` input channels, cross-attention
    gets a ``(B, 1, context_dim)`` context, and ``embed`` adds an MLP of the context vector to the timestep
    embedding (passed as MONAI's ``class_labels``: its class-embedding slot is given a continuous embedding),
    and ``fields`` adds that many input channels drawn from the context by :class:`ConditionFields` (kept on the
    UNet as ``condition_fields`` so that it is saved, loaded and averaged with it).
    Levels without attention get 0 head channels, as MONAI expects, except the deepest: MONAI's middle block
    always attends, with the last level's head channels."""
    heads = cfg.num_head_channels
    if isinstance(heads, int):
        last = len(cfg.attention_levels) - 1
        heads = [heads if att or i == last else 0 for i, att in enumerate(cfg.attention_levels)]
    use_ctx = crossattn and context_dim > 0
    fields = fields if context_dim > 0 else 0
    unet = DiffusionModelUNet(
        spatial_dims=cfg.spatial_dims,
        in_channels=in_channels + (context_dim if concat else 0) + fields,
        out_channels=out_channels,
        channels=tuple(cfg.channels),
        attention_levels=tuple(cfg.attention_levels),
        num_res_blocks=cfg.num_res_blocks,
        num_head_channels=tuple(heads),
        norm_num_groups=cfg.norm_num_groups,
        with_conditioning=use_ctx,
        cross_attention_dim=context_dim if use_ctx else None,
    )
    if embed and context_dim > 0:
        width = unet.time_embed[-1].out_features
        unet.num_class_embeds = context_dim  # switches on MONAI's "emb = emb + class_embedding(class_labels)"
        unet.class_embedding = ConditionEmbedding(context_dim, width)
    if fields:
        unet.condition_fields = ConditionFields(context_dim, fields, field_shape)
    return unet


class ConditionEmbedding(nn.Module):
    """Continuous conditions → the timestep embedding's width (Linear–SiLU–Linear, as MONAI's time MLP). The
    last layer starts at zero, so an untrained model is the unconditional one plus nothing."""

    def __init__(self, context_dim: int, width: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(context_dim, width), nn.SiLU(), nn.Linear(width, width))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, c):
        return self.mlp(c)


class ConditionFields(nn.Module):
    """Conditions → ``fields`` learned maps of the network input's spatial shape, ``(B, fields, *shape)``:
    Linear–SiLU–Linear, so that a field can depend on a combination of conditions (a network's layout on a
    given slice). The last layer starts at zero: an untrained model's fields are empty."""

    def __init__(self, context_dim: int, fields: int, shape: Sequence[int], hidden: int = 64) -> None:
        super().__init__()
        self.fields, self.shape = fields, tuple(int(s) for s in shape)
        if not self.shape:
            raise ValueError("condition fields need the network input's spatial shape")
        out = fields * math.prod(self.shape)
        self.mlp = nn.Sequential(nn.Linear(context_dim, hidden), nn.SiLU(), nn.Linear(hidden, out))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, c):
        return self.mlp(c).reshape(c.shape[0], self.fields, *self.shape)


def build_autoencoder(cfg: AutoencoderConfig, spatial_dims: int = 3) -> AutoencoderKL:
    return AutoencoderKL(
        spatial_dims=spatial_dims,
        in_channels=1,
        out_channels=1,
        channels=tuple(cfg.channels),
        latent_channels=cfg.latent_channels,
        num_res_blocks=cfg.num_res_blocks,
        attention_levels=tuple(cfg.attention_levels),
        norm_num_groups=cfg.norm_num_groups,
        with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
    )


def build_discriminator(spatial_dims: int, image_shape: tuple[int, ...], channels: int = 32) -> PatchDiscriminator:
    """A PatchGAN discriminator with up to 3 strided layers, fewer for small images (each halves the size and
    the last needs ~5 voxels left)."""
    layers = max(1, min(3, int(math.log2(max(1, min(image_shape[:spatial_dims])) / 5))))
    return PatchDiscriminator(
        spatial_dims=spatial_dims, num_layers_d=layers, channels=channels, in_channels=1, out_channels=1
    )


def _schedule_args(cfg: SchedulerConfig) -> dict:
    if cfg.schedule == "cosine":
        return {}
    return {"beta_start": cfg.beta_start, "beta_end": cfg.beta_end}


def build_train_scheduler(cfg: SchedulerConfig, clip_sample: bool, spatial_dims: int = 3):
    """The scheduler used to add noise during training (DDPM tables, or rectified flow)."""
    if cfg.kind == "rflow":
        return RFlowScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            use_discrete_timesteps=False,
            sample_method="logit-normal",
            spatial_dim=spatial_dims,
        )
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        schedule=cfg.schedule,
        prediction_type=cfg.prediction_type,
        clip_sample=clip_sample,
        **_schedule_args(cfg),
    )


def build_sampling_scheduler(cfg: SchedulerConfig, sampler: str, clip_sample: bool, spatial_dims: int = 3):
    """The scheduler whose tables the sampling loop walks: DDPM, DDIM (same β schedule) or RFlow."""
    if cfg.kind == "rflow" or sampler == "rflow":
        if cfg.kind != "rflow":
            raise ValueError("the rflow sampler needs a model trained with the rflow scheduler")
        return RFlowScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            use_discrete_timesteps=False,
            sample_method="logit-normal",
            spatial_dim=spatial_dims,
        )
    cls = DDIMScheduler if sampler == "ddim" else DDPMScheduler
    return cls(
        num_train_timesteps=cfg.num_train_timesteps,
        schedule=cfg.schedule,
        prediction_type=cfg.prediction_type,
        clip_sample=clip_sample,
        **_schedule_args(cfg),
    )
