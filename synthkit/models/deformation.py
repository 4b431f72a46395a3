"""``deformation``: new subjects as diffeomorphic warps of a template, each with its label map by construction.

The diffusion core (:mod:`synthkit.models.diffusion`) learns stationary velocity fields on a coarse grid (the
registration stage's fields, template → subject); a sampled field is upsampled, integrated by scaling and
squaring (MONAI ``DVF2DDF``) and applied with MONAI ``Warp`` to the template image (linear) and to the
template's tissue probabilities (linear, then the most probable label). An intensity model fitted on the
training set then gives each sample its own tissue contrasts and noise level, so that samples do not all
carry the template's intensities. Delivered volumes are counted in the warped labels: exact, no segmenter.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthkit.config import DeformationRecipe
from synthkit.models.base import Samples, check_seeds
from synthkit.models.diffusion import DiffusionCore, DiffusionGenerator, load_core
from synthkit.space import ImageSpace

#: label values of the template (the phantom's): 0 background, 1 CSF, 2 GM, 3 WM, 4 ventricles
N_LABELS = 5
TISSUES = {"csf": 1, "gm": 2, "wm": 3, "ventricles": 4}


def field_shape(recipe: DeformationRecipe) -> tuple[int, ...]:
    """(3, *coarse grid) of one velocity field: the image grid divided by ``registration.grid_factor``."""
    f = recipe.registration.grid_factor
    return (3, *(s // f for s in recipe.space.shape))


class Warper(torch.nn.Module):
    """Coarse stationary velocity (B, 3, *coarse), in voxels of the coarse grid → warped volumes of ``shape``.

    The field is integrated on its own coarse grid (scaling and squaring costs a fraction of doing it at full
    resolution, as in VoxelMorph) and the displacement is then upsampled and converted to image voxels."""

    def __init__(self, shape: tuple[int, ...], integration_steps: int = 7) -> None:
        super().__init__()
        from monai.networks.blocks import DVF2DDF, Warp

        quiet()
        self.shape = tuple(int(s) for s in shape)
        self.integrate = DVF2DDF(num_steps=integration_steps, mode="bilinear", padding_mode="border")
        self.linear = Warp(mode="bilinear", padding_mode="zeros")

    def ddf(self, velocity: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
        """Dense displacement (B, 3, *shape), in image voxels, of ``eta`` × the velocity field."""
        coarse = self.integrate(velocity * eta) if self.integrate.num_steps else velocity * eta
        up = F.interpolate(coarse, size=self.shape, mode="trilinear", align_corners=True)
        scale = [(s - 1) / max(1, c - 1) for s, c in zip(self.shape, velocity.shape[2:], strict=True)]
        return up * torch.tensor(scale, dtype=up.dtype, device=up.device).reshape(1, 3, 1, 1, 1)

    def warp(self, volume: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """``volume`` sampled (linearly) at every voxel of the grid moved by ``ddf``. A volume on a finer grid
        of the same field of view (:meth:`ImageSpace.refined`) is sampled at the same points, in the same
        normalised coordinates as MONAI ``Warp`` (``align_corners=True``)."""
        volume = volume.expand(ddf.shape[0], *volume.shape[1:])
        if volume.shape[2:] == ddf.shape[2:]:
            return self.linear(volume, ddf)
        grid = torch.stack(torch.meshgrid(*(torch.arange(s, dtype=ddf.dtype) for s in ddf.shape[2:]), indexing="ij"))
        size = torch.tensor([max(1, s - 1) for s in ddf.shape[2:]], dtype=ddf.dtype).reshape(1, 3, 1, 1, 1)
        norm = (grid[None] + ddf) * 2 / size - 1
        return F.grid_sample(volume, norm.movedim(1, -1).flip(-1), mode="bilinear", align_corners=True)


def quiet() -> None:
    """MONAI's notice that it uses PyTorch's grid_sample, and torch's deprecation notice about the indexing
    inside MONAI's bending energy, are not for our users."""
    warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample.*")
    warnings.filterwarnings("ignore", message=".*non-tuple sequence for multidimensional indexing.*")


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    """(B, 1, *S) integer labels → (B, N_LABELS, *S) float probabilities."""
    return F.one_hot(labels[:, 0].long(), N_LABELS).movedim(-1, 1).float()


def warp_labels(warper: Warper, probs: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
    """Warp tissue probabilities linearly and take the most probable label: (B, 1, *S) uint8."""
    return warper.warp(probs, ddf).argmax(1, keepdim=True).to(torch.uint8)


def jacobian_determinant(ddf: np.ndarray) -> np.ndarray:
    """det(I + ∇u) of a displacement (3, *S) in voxels, by central differences."""
    grads = [np.gradient(ddf[i]) for i in range(3)]
    j = np.empty((3, 3, *ddf.shape[1:]), dtype=np.float64)
    for i in range(3):
        for k in range(3):
            j[i, k] = grads[i][k] + (1.0 if i == k else 0.0)
    return np.linalg.det(np.moveaxis(j, (0, 1), (-2, -1)))


def folding_fraction(ddf: np.ndarray) -> float:
    """Fraction of voxels whose Jacobian determinant is ≤ 0 (the map folds there)."""
    return float(np.mean(jacobian_determinant(ddf) <= 0))


@dataclass
class IntensityModel:
    """Per-subject tissue intensities (a Gaussian over training subjects of the median intensity of CSF, GM,
    WM and ventricles) and noise level (normal over subjects, truncated at 0), against the template's."""

    template_means: np.ndarray  # (4,)
    mean: np.ndarray  # (4,)
    cov: np.ndarray  # (4, 4)
    noise_mean: float
    noise_sd: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "template_means": self.template_means.tolist(),
            "mean": self.mean.tolist(),
            "cov": self.cov.tolist(),
            "noise_mean": self.noise_mean,
            "noise_sd": self.noise_sd,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntensityModel:
        return cls(
            np.asarray(d["template_means"], dtype=np.float64),
            np.asarray(d["mean"], dtype=np.float64),
            np.asarray(d["cov"], dtype=np.float64),
            float(d["noise_mean"]),
            float(d["noise_sd"]),
        )

    def apply(self, image: np.ndarray, probs: np.ndarray, seed: int) -> np.ndarray:
        """One sample's intensities: the warped template image shifted per tissue (weighted by the warped
        tissue probabilities, so edges stay soft) to means drawn for this sample, plus its noise."""
        rng = np.random.default_rng([int(seed), 0x1D7E])
        means = rng.multivariate_normal(self.mean, self.cov, method="eigh")
        shift = sum(probs[k] * (means[k - 1] - self.template_means[k - 1]) for k in TISSUES.values())
        head = probs[1:].sum(0) > 0.5
        noise = rng.normal(0.0, max(0.0, rng.normal(self.noise_mean, self.noise_sd)), size=image.shape)
        return np.clip(np.where(head, image + shift + noise, 0.0), 0, 1).astype(np.float32)


class FieldMean(torch.nn.Module):
    """The linear conditional mean of the velocity fields: ridge regression of every field component on the
    encoded conditions (closed form, on the training fields). The diffusion model learns the residual.

    The covariates explain most of a field (age moves the ventricles and the cortex, sex the head size): about
    three quarters of the variance of the demo's registered fields (``field_residual_variance_fraction`` 0.23
    in its metrics.csv). During development a diffusion model trained for minutes on tens of fields did not
    pick that up (r(requested, delivered ventricles) = -0.05 after 400 steps, 0.70 with this mean under it);
    the closed-form mean gives it at once, and the network spends its steps on the residual."""

    def __init__(self, weight: torch.Tensor, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.shape = tuple(shape)

    @classmethod
    def fit(cls, context: torch.Tensor | None, fields: torch.Tensor, ridge: float = 1e-3) -> FieldMean:
        n = fields.shape[0]
        x = _design(context, n).double()
        y = fields.reshape(n, -1).double()
        w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
        return cls(w.float(), tuple(fields.shape[1:]))

    def forward(self, context: torch.Tensor | None, n: int) -> torch.Tensor:
        x = _design(context, n).to(self.weight)
        return (x @ self.weight).reshape(n, *self.shape)


def _design(context: torch.Tensor | None, n: int) -> torch.Tensor:
    """[1, context]: an intercept and the encoded conditions."""
    ones = torch.ones((n, 1))
    return ones if context is None else torch.cat([ones, context.float().cpu()], dim=1)


class DeformationGenerator(DiffusionGenerator):
    kind = "deformation"

    def __init__(
        self,
        core: DiffusionCore,
        template_image: torch.Tensor,
        template_labels: torch.Tensor,
        scale_factor: float,
        field_mean: FieldMean,
        intensity: IntensityModel | None,
        recipe: DeformationRecipe,
        *args: Any,
    ) -> None:
        super().__init__(core, *args)
        self.recipe = recipe
        self.scale_factor = scale_factor
        self.field_mean = field_mean
        self.intensity = intensity
        self.warper = Warper(self.space.shape, recipe.registration.integration_steps)
        self.template_image = template_image.float()
        self.template_probs = one_hot(template_labels)

    def _shape(self) -> tuple[int, ...]:
        return field_shape(self.recipe)

    def velocity(self, n: int, seeds, conditions, device: str | None = None) -> torch.Tensor:
        """Sampled velocity fields (n, 3, *coarse) in voxels: the diffusion model's residual plus the
        conditional mean."""
        x = self._denoise(n, seeds, conditions, device)
        mean = self.field_mean(self.core.codec.encode(conditions, n, "cpu"), n)
        return x.float().cpu() / self.scale_factor + mean

    def render(self, velocity: torch.Tensor, seeds, eta: float = 1.0) -> Samples:
        """Warp the template by ``eta`` × each velocity field; images, labels and delivered volumes."""
        with torch.inference_mode():
            ddf = self.warper.ddf(velocity.cpu(), eta)
            images = self.warper.warp(self.template_image, ddf)[:, 0].numpy()
            probs = self.warper.warp(self.template_probs, ddf).numpy()
        labels = probs.argmax(1).astype(np.uint8)
        if self.intensity is not None:
            images = np.stack([self.intensity.apply(im, p, s) for im, p, s in zip(images, probs, seeds, strict=True)])
        vv = self.space.voxel_volume
        measures = {
            "delivered_ventricular_volume": (labels == TISSUES["ventricles"]).sum((1, 2, 3)) * vv,
            "delivered_brain_volume": np.isin(labels, (TISSUES["gm"], TISSUES["wm"])).sum((1, 2, 3)) * vv,
            "folding_fraction": np.array([folding_fraction(d) for d in ddf.numpy()]),
        }
        return Samples(
            images=np.ascontiguousarray(images.clip(0, 1), dtype=np.float32),
            labels=np.ascontiguousarray(labels),
            measures={k: v.astype(np.float64) for k, v in measures.items()},
        )

    def sample(self, n: int, *, seeds, conditions=None, device: str | None = None) -> Samples:
        return self.render(self.velocity(n, seeds, conditions, device), check_seeds(n, seeds))

    @classmethod
    def from_checkpoint(
        cls, tensors: dict[str, Any], meta: dict[str, Any], path: Path | None, device: str
    ) -> DeformationGenerator:
        recipe = DeformationRecipe(**meta["recipe"])
        core = load_core(tensors, meta, recipe, 3, False, path, device)
        intensity = IntensityModel.from_dict(meta["intensity"]) if meta.get("intensity") else None
        space = ImageSpace.from_dict(meta["space"])
        shape = (1, 1, *space.refined(recipe.template_oversample).shape)
        image = tensors["template.image"].reshape(shape)
        labels = tensors["template.labels"].reshape(shape)
        mean = FieldMean(tensors["field_mean.weight"], field_shape(recipe))
        scale = float(meta["scale_factor"])
        return cls(core, image, labels, scale, mean, intensity, recipe, space, meta, path, device)
