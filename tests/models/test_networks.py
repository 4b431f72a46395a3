"""Condition fields of the diffusion UNet: they start empty, take the network input's shape and can learn one
layout per category."""

import torch

from synthkit.config import UNetConfig
from synthkit.models.networks import ConditionFields, build_unet


def test_condition_fields_start_empty_and_follow_the_condition_once_trained():
    f = ConditionFields(context_dim=3, fields=2, shape=(4, 5, 6))
    ctx = torch.eye(3)
    assert f(ctx).shape == (3, 2, 4, 5, 6) and f(ctx).abs().max() == 0
    target = torch.randn(3, 2, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(f.parameters(), lr=0.02)
    for _ in range(300):
        loss = ((f(ctx) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01  # one learned layout per category


def test_the_unet_takes_field_channels():
    cfg = UNetConfig(channels=[8, 16], attention_levels=[False, True], num_head_channels=8, norm_num_groups=4)
    plain = build_unet(cfg, 1, 1, context_dim=4, concat=True, crossattn=False)
    rich = build_unet(cfg, 1, 1, context_dim=4, concat=True, crossattn=False, fields=2, field_shape=(8, 8, 8))
    assert plain.conv_in.conv.in_channels == 1 + 4 and rich.conv_in.conv.in_channels == 1 + 4 + 2
    assert "condition_fields.mlp.2.weight" in rich.state_dict()
    unconditional = build_unet(cfg, 1, 1, context_dim=0, concat=True, crossattn=False, fields=2, field_shape=(8,) * 3)
    assert not hasattr(unconditional, "condition_fields")  # nothing to draw fields from
