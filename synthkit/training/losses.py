"""Losses of the autoencoder stage: L1, KL, patch-adversarial (MONAI) and an optional perceptual term."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.losses import PatchAdversarialLoss

from synthkit.errors import RecipeError
from synthkit.metrics.features import MedicalNetResNet, load_medicalnet, stage_features


def kl_loss(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)), summed over latent voxels, averaged over the batch (as MONAI's tutorials)."""
    kl = 0.5 * (z_mu.pow(2) + z_sigma.pow(2) - torch.log(z_sigma.pow(2) + 1e-12) - 1)
    return kl.flatten(1).sum(1).mean()


def adversarial_loss() -> PatchAdversarialLoss:
    return PatchAdversarialLoss(criterion="least_squares")


class PerceptualLoss(torch.nn.Module):
    """LPIPS-style distance between MedicalNet stage activations (frozen network, unit-normalised channels).

    Used only when the recipe names a local MedicalNet weights file: without pretrained weights a perceptual
    loss measures nothing useful, so synthkit refuses to fake one.
    """

    def __init__(self, net: MedicalNetResNet) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = stage_features(self.net, x), stage_features(self.net, y)
        return sum(((a - b) ** 2).sum(1).mean() for a, b in zip(fx, fy, strict=True)) / len(fx)


def perceptual_loss(weight: float, weights_path: Path | None) -> PerceptualLoss | None:
    """The perceptual term, or None when its weight is 0; a positive weight without weights is an error."""
    if weight <= 0:
        return None
    if weights_path is None or not Path(weights_path).exists():
        raise RecipeError(
            "autoencoder_training.perceptual_weight > 0 needs autoencoder_training.perceptual_weights: a local "
            f"MedicalNet file such as resnet_10_23dataset.pth (got {weights_path}); synthkit downloads nothing"
        )
    return PerceptualLoss(load_medicalnet(weights_path).net)
