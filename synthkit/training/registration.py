"""Stage 1 of ``deformation``: register the template to every subject; cache the velocity fields.

Per-subject optimisation (several subjects at once, each with its own field): a stationary velocity field on
a coarse grid, upsampled, integrated by scaling and squaring (MONAI ``DVF2DDF``) and applied with MONAI
``Warp``; loss MONAI ``LocalNormalizedCrossCorrelationLoss`` + ``BendingEnergyLoss``. Chosen over a
VoxelMorph-style network because it needs no training data beyond the subject itself and reaches its
accuracy in seconds per subject on a CPU (see ``benchmarks/RESULTS.md``). Writes ``fields.safetensors``
(train and validation fields, template, intensity model) and ``registration.csv`` (per subject: NCC, Dice of
the warped template labels against the subject's labels when the manifest has them, folding fraction).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthkit.config import DeformationRecipe, RegistrationConfig
from synthkit.data.io import load_nifti
from synthkit.data.phantom import render, template_params
from synthkit.models.base import load_checkpoint, save_checkpoint
from synthkit.models.deformation import TISSUES, IntensityModel, Warper, field_shape, folding_fraction, one_hot
from synthkit.space import ImageSpace
from synthkit.training.common import RunContext

STAGE = "registration"
FIELDS = "fields.safetensors"


def template_volumes(space: ImageSpace, oversample: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The template image (1, 1, *S') in [0, 1] and its labels (1, 1, *S') uint8, on ``space`` refined
    ``oversample`` times (:meth:`ImageSpace.refined`; S' = S for 1)."""
    subject = render(template_params(), space.refined(oversample))
    return torch.from_numpy(subject.image)[None, None], torch.from_numpy(subject.labels)[None, None]


def resample(volume: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(B, C, *S) → (B, C, *size) over the same field of view (corner voxel centres kept, as the warps
    assume), low-passed first where it shrinks (Gaussian σ = (r − 1)/2 voxels for a reduction r)."""
    from monai.networks.layers import GaussianFilter

    ratios = [(s - 1) / max(1, n - 1) for s, n in zip(volume.shape[2:], size, strict=True)]
    sigma = [max(0.0, (r - 1) / 2) for r in ratios]
    if any(sigma):
        volume = GaussianFilter(3, [max(x, 1e-3) for x in sigma])(volume)
    if tuple(volume.shape[2:]) == tuple(size):
        return volume
    return F.interpolate(volume, size=size, mode="trilinear", align_corners=True)


def register(
    template: torch.Tensor,
    subjects: torch.Tensor,
    cfg: RegistrationConfig,
    coarse: tuple[int, ...],
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    """Velocity fields (B, 3, *coarse), in coarse-grid voxels, that warp ``template`` (1, 1, *S) onto each of
    ``subjects`` (B, 1, *S); ``template`` may lie on a finer grid of the same field of view. Two levels: the
    loss at 1/``cfg.downsample`` of the image resolution (:func:`resample`) for ``cfg.iterations``, then at
    full resolution for ``cfg.refine_iterations`` at half the step. Each subject's loss depends on its own
    field only: batching changes nothing but speed."""
    v = torch.zeros((subjects.shape[0], *coarse)) if init is None else init
    levels = [(cfg.downsample, cfg.iterations, cfg.lr)]
    if cfg.downsample > 1 and cfg.refine_iterations:
        levels.append((1, cfg.refine_iterations, cfg.lr / 2))
    for downsample, iterations, lr in levels:
        size = tuple(max(2, (s - 1) // downsample + 1) for s in subjects.shape[2:])
        v = _optimise(resample(template, size), resample(subjects, size), v, cfg, iterations, lr)
    return v


def _optimise(
    tpl: torch.Tensor, subs: torch.Tensor, v0: torch.Tensor, cfg: RegistrationConfig, iterations: int, lr: float
) -> torch.Tensor:
    """Adam on similarity + bending energy, ``lr`` in voxels of the loss grid, cosine-decayed so the field
    settles instead of jittering by a step around its optimum."""
    from monai.losses import BendingEnergyLoss, LocalNormalizedCrossCorrelationLoss

    size = tuple(subs.shape[2:])
    warper = Warper(size, cfg.integration_steps)
    if cfg.similarity == "lncc":
        sim = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=cfg.ncc_kernel, reduction="mean")
    else:
        sim = torch.nn.MSELoss()
    bending = BendingEnergyLoss(normalize=True)
    v = v0.clone().requires_grad_(True)
    ratio = float(np.mean([(s - 1) / max(1, c - 1) for s, c in zip(size, v0.shape[2:], strict=True)]))
    opt = torch.optim.Adam([v], lr=lr / ratio)  # the field lives on the coarse grid
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations, eta_min=0.02 * lr / ratio)
    b = subs.shape[0]
    for _ in range(iterations):
        opt.zero_grad(set_to_none=True)
        ddf = warper.ddf(v)
        loss = sim(warper.warp(tpl, ddf), subs) + cfg.bending_weight * bending(ddf)
        (loss * b).backward()  # per-subject gradients as if each were optimised alone
        opt.step()
        sched.step()
    return v.detach()


def local_ncc(a: torch.Tensor, b: torch.Tensor, kernel: int) -> np.ndarray:
    """Per-subject mean local normalised cross-correlation in [-1, 1] (1 = identical up to local contrast)."""
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    loss = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=kernel, reduction="none")
    with torch.inference_mode():
        return (-loss(a, b)).flatten(1).mean(1).numpy()


def dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    x, y = a == label, b == label
    s = x.sum() + y.sum()
    return float(2 * (x & y).sum() / s) if s else float("nan")


def _labels_on_grid(path: str | None, space: ImageSpace, recipe: DeformationRecipe) -> np.ndarray | None:
    """A subject's label map when the manifest gives one already on the recipe's grid and preprocessing keeps
    the images where they are (``resample`` without centring, e.g. phantoms)."""
    p = recipe.data.preprocess
    if not path or p.mode == "register" or p.centre:
        return None
    arr = np.asarray(load_nifti(path)[0])
    return arr.astype(np.uint8) if arr.shape == tuple(space.shape) else None


def register_bank(ctx: RunContext, bank, warper: Warper, template, tpl_labels, split: str, rows: list) -> tuple:
    """Register every subject of a split; per-subject quality rows; tissue medians and noise for the
    intensity model."""
    recipe: DeformationRecipe = ctx.recipe  # type: ignore[assignment]
    cfg, space = recipe.registration, recipe.space.to_space()
    coarse = field_shape(recipe)
    fields, stats = [], []
    probs_t = one_hot(tpl_labels)
    for a in range(0, len(bank), cfg.batch_size):
        idx = list(range(a, min(a + cfg.batch_size, len(bank))))
        subjects = bank.batch(idx)
        v = register(template, subjects, cfg, coarse)
        with torch.inference_mode():
            ddf = warper.ddf(v)
            warped = warper.warp(template, ddf)
            probs = warper.warp(probs_t, ddf)
        nccs = local_ncc(warped, subjects, cfg.ncc_kernel)
        for j, i in enumerate(idx):
            labels = probs[j].argmax(0).numpy()
            row = {"split": split, "index": i, "ncc": float(nccs[j]), "folding": folding_fraction(ddf[j].numpy())}
            truth = _labels_on_grid(bank.label_paths[i] if bank.label_paths else None, space, recipe)
            if truth is not None:
                row.update({f"dice_{k}": dice(labels, truth, v_) for k, v_ in TISSUES.items() if k != "csf"})
            rows.append(row)
            stats.append(_tissue_stats(subjects[j, 0].numpy(), labels))
        fields.append(v)
        ctx.echo(f"registered {min(a + cfg.batch_size, len(bank))}/{len(bank)} {split} subjects")
    return (torch.cat(fields) if fields else torch.zeros((0, *coarse))), stats


def _tissue_stats(subject: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Median intensity of each tissue (by the warped labels) and the noise level: the robust spread of the
    second differences of neighbouring voxels inside white matter, whose anatomy is nearly flat (white noise of
    SD σ gives second differences of SD σ√6); on 4 mm phantoms it reads ~1.5× their true noise, as partial
    volume adds texture. Residuals against the warped template would also count the registration's misfit and
    the template's blur as noise."""
    meds = [float(np.median(subject[labels == v])) if (labels == v).any() else np.nan for v in TISSUES.values()]
    wm = labels == TISSUES["wm"]
    inner = wm[2:] & wm[1:-1] & wm[:-2]
    diff = (subject[2:] - 2 * subject[1:-1] + subject[:-2])[inner]
    noise = float(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(6)) if diff.size else np.nan
    return np.asarray([*meds, noise])


def fit_intensity(stats: list[np.ndarray], template: np.ndarray, labels: np.ndarray) -> IntensityModel:
    s = np.asarray(stats, dtype=np.float64)
    tissue = s[:, :4]
    ok = np.isfinite(tissue).all(1)
    tissue = tissue[ok]
    cov = np.cov(tissue.T) if len(tissue) > 1 else np.zeros((4, 4))
    tpl = [float(np.median(template[labels == v])) for v in TISSUES.values()]
    noise = s[:, 4][np.isfinite(s[:, 4])]
    return IntensityModel(np.asarray(tpl), tissue.mean(0), np.atleast_2d(cov), float(noise.mean()), float(noise.std()))


def train_registration(ctx: RunContext, steps: int, resume: bool) -> Path:
    """Register the template to every training and validation subject (``steps`` is unused: the stage's
    work is one registration per subject); reuses ``fields.safetensors`` when resuming."""
    recipe: DeformationRecipe = ctx.recipe  # type: ignore[assignment]
    out = ctx.path(FIELDS)
    if resume and out.exists():
        ctx.echo(f"reusing the registered fields in {out}")
        return out
    space = recipe.space.to_space()
    template, tpl_labels = template_volumes(space, recipe.template_oversample)
    warper = Warper(space.shape, recipe.registration.integration_steps)
    rows: list[dict[str, Any]] = []
    v_train, stats = register_bank(ctx, ctx.data.train, warper, template, tpl_labels, "train", rows)
    v_val, _ = register_bank(ctx, ctx.data.val, warper, template, tpl_labels, "val", rows)
    intensity = fit_intensity(stats, template[0, 0].numpy(), tpl_labels[0, 0].numpy())
    tensors = {"train": v_train, "val": v_val, "template.image": template, "template.labels": tpl_labels}
    save_checkpoint(out, tensors, {"kind": "registration", "intensity": intensity.to_dict()})
    _write_rows(ctx.path("registration.csv"), rows)
    summary = {k: float(np.nanmean([r[k] for r in rows if k in r])) for k in rows[0] if k not in ("split", "index")}
    ctx.log.add(stage=STAGE, step=0, **summary)
    ctx.echo("registration: " + ", ".join(f"{k} {v:.3g}" for k, v in summary.items()))
    _preview(ctx, warper, template, v_train)
    return out


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    names = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        w.writerows(rows)


def _preview(ctx: RunContext, warper: Warper, template: torch.Tensor, v: torch.Tensor) -> None:
    k = min(3, len(v))
    with torch.inference_mode():
        warped = warper.warp(template, warper.ddf(v[:k]))
        on_grid = warper.warp(template, torch.zeros((1, 3, *warper.shape)))
    subjects = ctx.data.train.batch(list(range(k)))
    vols = [on_grid[0, 0].numpy()] + [x for j in range(k) for x in (subjects[j, 0].numpy(), warped[j, 0].numpy())]
    titles = ["template"] + [t for j in range(k) for t in (f"subject {j}", f"template → {j}")]
    ctx.preview(STAGE, 0, vols, titles, "registration: template warped onto training subjects")


def load_fields(path: Path) -> tuple[dict[str, torch.Tensor], IntensityModel]:
    tensors, meta = load_checkpoint(path)
    return tensors, IntensityModel.from_dict(meta["intensity"])
