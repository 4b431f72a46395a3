"""Med3D (MedicalNet) 3D ResNet feature extractor, its weight loader, and a clearly named fallback.

Architecture (Chen et al. 2019, "Med3D"; facts from the MedicalNet release): a 7³ stride-2 stem with 64
channels, 3³ max-pool, four stages of 64/128/256/512 planes (stage 2 stride 2; stages 3 and 4 dilated 2 and
4 instead of strided), BasicBlocks for depths 10/18/34 and Bottlenecks (×4) for 50; shortcut type "B"
(1×1 conv + BN) for ResNet-10/50 and "A" (stride + zero channel padding) for 18/34, as the official weights
expect. The segmentation head is dropped. Features for FID = layer4 output, global-average-pooled (512-d for
10/18/34, 2048-d for 50), as in Pinaya et al. and HA-GAN.

Official weights ``resnet_{10,18,34,50}_23dataset.pth`` are a dict with ``state_dict`` whose keys start with
``module.`` (saved from ``DataParallel``); :func:`load_medicalnet` reads them with ``torch.load(...,
weights_only=True)``. Without weights, :func:`random_features` gives a fixed-seed randomly initialised
ResNet-10, named ``random-features-resnet10-seed0`` in every report — a usable but weaker substitute.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthkit.errors import CheckpointError

DEPTHS = {
    10: ("basic", (1, 1, 1, 1), "B"),
    18: ("basic", (2, 2, 2, 2), "A"),
    34: ("basic", (3, 4, 6, 3), "A"),
    50: ("bottleneck", (3, 4, 6, 3), "B"),
}


def _conv3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class _ShortcutA(nn.Module):
    """Type-A shortcut: strided identity, zero-padded to the new channel count (no weights)."""

    def __init__(self, planes: int, stride: int) -> None:
        super().__init__()
        self.planes, self.stride = planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x[:, :, :: self.stride, :: self.stride, :: self.stride] if self.stride > 1 else x
        pad = self.planes - out.shape[1]
        return F.pad(out, (0, 0, 0, 0, 0, 0, 0, pad)) if pad > 0 else out


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class MedicalNetResNet(nn.Module):
    """The MedicalNet 3D ResNet trunk (no segmentation head); parameter names match the official weights."""

    def __init__(self, depth: int = 10) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"MedicalNet ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        kind, layers, shortcut = DEPTHS[depth]
        block = _Basic if kind == "basic" else _Bottleneck
        self.depth, self.shortcut = depth, shortcut
        self.inplanes = 64
        self.conv1 = nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self.layer1 = self._layer(block, 64, layers[0], shortcut)
        self.layer2 = self._layer(block, 128, layers[1], shortcut, stride=2)
        self.layer3 = self._layer(block, 256, layers[2], shortcut, dilation=2)
        self.layer4 = self._layer(block, 512, layers[3], shortcut, dilation=4)
        self.feature_dim = 512 * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def _layer(
        self, block, planes: int, blocks: int, shortcut: str, stride: int = 1, dilation: int = 1
    ) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            if shortcut == "A":
                down = _ShortcutA(planes * block.expansion, stride)
            else:
                down = nn.Sequential(
                    nn.Conv3d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                    nn.BatchNorm3d(planes * block.expansion),
                )
        layers = [block(self.inplanes, planes, stride, dilation, down)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the stem and the four stages (for perceptual losses)."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        outs = [x]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled layer4 features, (B, feature_dim)."""
        return self.stages(x)[-1].mean(dim=(2, 3, 4))


def medicalnet_normalise(x: torch.Tensor) -> torch.Tensor:
    """MedicalNet's intensity normalisation: z-score over the foreground (voxels > 0) of each volume.

    MedicalNet fills the background with random noise; here it is set to 0 so features are deterministic.
    """
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        v = x[i]
        fg = v > 0
        if fg.any():
            vals = v[fg]
            out[i] = torch.where(fg, (v - vals.mean()) / vals.std().clamp(min=1e-6), torch.zeros_like(v))
    return out


@dataclass
class FeatureExtractor:
    """A network plus the name and hash that reports quote."""

    net: MedicalNetResNet
    name: str
    weights_sha256: str | None
    device: str = "cpu"

    @property
    def identity(self) -> str:
        """A hash identifying the extractor (for caching reference features)."""
        return hashlib.sha256(f"{self.name}:{self.weights_sha256}".encode()).hexdigest()[:16]

    def features(self, images: np.ndarray | torch.Tensor, batch_size: int = 8) -> np.ndarray:
        """Features of ``(n, X, Y, Z)`` images in [0, 1], computed in batches → ``(n, feature_dim)`` float64."""
        self.net.eval().to(self.device)
        x_all = torch.as_tensor(np.asarray(images, dtype=np.float32))
        out = []
        with torch.inference_mode():
            for a in range(0, x_all.shape[0], batch_size):
                x = x_all[a : a + batch_size, None].to(self.device)
                out.append(self.net(medicalnet_normalise(x)).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.net.feature_dim))


def load_medicalnet(path: str | Path, depth: int | None = None, device: str = "cpu") -> FeatureExtractor:
    """Load official MedicalNet weights (``{"state_dict": {"module.conv1.weight": ...}}``) or a bare state dict.

    The depth is read from the file name (``resnet_50_23dataset.pth``) unless given.

    Raises:
        CheckpointError: missing or unreadable file, a file that is not a state dict of tensors, or weights that
            do not fit the architecture.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: MedicalNet weights not found")
    if depth is None:
        digits = [int(tok) for tok in p.stem.replace("-", "_").split("_") if tok.isdigit()]
        depth = next((d for d in digits if d in DEPTHS), None)
        if depth is None:
            raise CheckpointError(f"{p}: cannot tell the ResNet depth from the file name; pass depth=10/18/34/50")
    try:
        raw = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses pickled code; zip/pickle errors for damaged files
        if isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in str(e):
            # torch's own message goes on to suggest weights_only=False, i.e. turning the safety off: not relayed
            raise CheckpointError(
                f"{p}: refused — it holds pickled Python objects besides tensors, which synthkit never loads "
                "(unpickling can run code); save its state dict of tensors alone, on a machine you trust"
            ) from None
        raise CheckpointError(
            f"{p}: not a loadable weights file ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p}: expected a state dict of tensors (optionally under 'state_dict')")
    state = {
        k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("conv_seg")
    }
    net = MedicalNetResNet(depth)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(
            f"{p}: weights do not fit MedicalNet ResNet-{depth} ({str(e).splitlines()[1].strip()[:160]})"
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"{p}: weights do not fit MedicalNet ResNet-{depth} (missing {len(missing)} e.g. {missing[:2]}, "
            f"unexpected {len(unexpected)} e.g. {unexpected[:2]})"
        )
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    return FeatureExtractor(net.eval(), f"medicalnet-resnet{depth}", sha, device)


def random_features(seed: int = 0, depth: int = 10, device: str = "cpu") -> FeatureExtractor:
    """The fallback: a MedicalNet ResNet with fixed-seed random weights (no pretrained knowledge)."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        net = MedicalNetResNet(depth)
    finally:
        torch.random.set_rng_state(gen_state)
    return FeatureExtractor(net.eval(), f"random-features-resnet{depth}-seed{seed}", None, device)


def stage_features(net: MedicalNetResNet, x: torch.Tensor, stages: Sequence[int] = (1, 2, 3)) -> list[torch.Tensor]:
    """Unit-normalised activations of chosen stages (LPIPS-style, without learned channel weights)."""
    outs = net.stages(medicalnet_normalise(x))
    return [o / (o.norm(dim=1, keepdim=True) + 1e-8) for i, o in enumerate(outs) if i in stages]
