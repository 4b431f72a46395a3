"""ICN section (stores whose generator is conditioned on a network, ``meta/network``): the ICN DDPM paper's
metrics per network, their real-vs-real values, variance heatmaps and network identity.

* **Per network, paired** (papers/ddpm-fmri-icn.txt: mean MS-SSIM 0.74, MSE 0.001, PSNR 26.37 dB on UK
  Biobank): MS-SSIM, MSE and PSNR of each generated map of network *k* against up to ``PAIRS_PER_MAP``
  random real maps of network *k* (a generated map has no real twin, so it is compared with its network's
  real maps), averaged; beside it, each real map against up to as many *other* real maps of its network.
  Maps are compared as stored: images in [0, 1] with zero at 0.5 (data range 1), 3D only for MS-SSIM.
* **Variance heatmaps** (the paper's, over 50 samples): voxel-wise variance of each network's generated maps
  beside that of its real maps, in the same units and on a shared scale.
* **Network identity**: each generated map's spatial correlation with every network's mean real map (from
  half A of the reference); top-1 accuracy and the confusion matrix, beside the same for the real maps of
  half B (:mod:`synthkit.metrics.icn`).

A 2D store's maps are axial slices: they are compared with the real slices at the same ``slice_z``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synthkit.audit.context import AuditContext, Part
from synthkit.metrics import icn as icn_mod
from synthkit.metrics import image as image_mod
from synthkit.metrics import ssim as ssim_mod

#: real maps each generated (or real) map is compared with in the paired metrics
PAIRS_PER_MAP = 8
PAPER = {"ms_ssim": 0.74, "mse": 0.001, "psnr_db": 26.37, "dataset": "UK Biobank (HCP: 0.72 / 0.001 / 28.74 dB)"}


def run(ctx: AuditContext) -> Part:
    part = Part()
    icn = ctx.icn
    if icn is None:
        return part
    names = icn.names
    syn_lab, ref_lab = icn.synthetic_codes, icn.reference_codes
    groups = _groups(syn_lab, icn.synthetic_slice), _groups(ref_lab, icn.reference_slice)
    rng = ctx.rng("icn_pairs")
    three_d = ctx.synthetic.shape[-1] > 1
    per_network = {}
    for k, name in enumerate(names):
        syn_k, ref_k = np.flatnonzero(syn_lab == k), np.flatnonzero(ref_lab == k)
        if syn_k.size == 0 or ref_k.size < 2:
            continue
        per_network[name] = {
            "n_synthetic": int(syn_k.size),
            "n_real": int(ref_k.size),
            "synthetic_vs_real": _paired(ctx, syn_k, groups, False, rng, three_d),
            "real_vs_real": _paired(ctx, ref_k, groups, True, rng, three_d),
        }
    identity = _identity(ctx, names, syn_lab, ref_lab)
    part.metrics["icn"] = {
        "networks": len(names),
        "per_network": per_network,
        "mean": {side: _mean_over(per_network, side) for side in ("synthetic_vs_real", "real_vs_real")},
        "paper": PAPER,
        "pairs_per_map": PAIRS_PER_MAP,
        "identity": identity,
        "units": "maps as stored: [0, 1] images with zero at 0.5, data range 1",
    }
    if not three_d:
        part.metrics["icn"]["note"] = "2D slices: MS-SSIM is 3D here and left out; slices paired at equal slice_z"
    part.figures["icn_confusion"] = _confusion_figure(identity, names, ctx.out / "icn_confusion.png")
    part.figures["icn_variance"] = _variance_figure(ctx, names, syn_lab, ref_lab, ctx.out / "icn_variance.png")
    return part


def _groups(labels: np.ndarray, slices: np.ndarray | None) -> dict[tuple, np.ndarray]:
    """Positions by (network, slice): what a map may be compared with."""
    keys = list(zip(labels.tolist(), [None] * len(labels) if slices is None else slices.tolist(), strict=True))
    out: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return {k: np.asarray(v) for k, v in out.items()}


def _paired(ctx: AuditContext, positions: np.ndarray, groups, real: bool, rng, three_d: bool) -> dict[str, float]:
    """Mean MSE, PSNR (and MS-SSIM in 3D) of each map at ``positions`` against up to PAIRS_PER_MAP real maps
    of its network (and slice), other than itself for real maps."""
    icn = ctx.icn
    assert icn is not None
    src = ctx.reference if real else ctx.synthetic
    labels = icn.reference_codes if real else icn.synthetic_codes
    slices = icn.reference_slice if real else icn.synthetic_slice
    a_idx, b_idx = [], []
    for i in positions:
        key = (int(labels[i]), None if slices is None else float(slices[i]))
        pool = groups[1].get(key, np.zeros(0, np.int64))
        if real:
            pool = pool[pool != i]
        if pool.size == 0:
            continue
        pick = rng.choice(pool, size=min(PAIRS_PER_MAP, pool.size), replace=False)
        a_idx += [int(i)] * pick.size
        b_idx += pick.tolist()
    if not a_idx:
        return {}
    x, y = src[a_idx], ctx.reference[b_idx]
    out = {
        "mse": float(image_mod.mse(x, y).mean()),
        "psnr_db": float(np.mean(image_mod.psnr(x, y))),
        "pairs": len(a_idx),
    }
    if three_d:
        kernel, weights = ssim_mod.fit_kernel(x.shape[1:], ctx.recipe.ssim_kernel)
        vals = [
            ssim_mod.ms_ssim(
                torch.from_numpy(x[s : s + 64]), torch.from_numpy(y[s : s + 64]), kernel_size=kernel, weights=weights
            )
            for s in range(0, len(x), 64)
        ]
        out["ms_ssim"] = float(torch.cat(vals).mean())
    return out


def _mean_over(per_network: dict, side: str) -> dict[str, float]:
    keys = ("ms_ssim", "mse", "psnr_db")
    return {
        k: float(np.mean([v[side][k] for v in per_network.values() if k in v[side]]))
        for k in keys
        if any(k in v[side] for v in per_network.values())
    }


def _identity(ctx: AuditContext, names: list[str], syn_lab: np.ndarray, ref_lab: np.ndarray) -> dict:
    """Top-1 accuracy and confusion of the generated maps against templates from real half A, and of real
    half B against the same templates (the real-vs-real baseline). 2D: templates per slice position."""
    k = len(names)
    icn = ctx.icn
    assert icn is not None
    a, b = ctx.half_a, ctx.half_b
    if icn.reference_slice is None:
        templates = icn_mod.network_means(ctx.reference[a], ref_lab[a], k)
        pred = icn_mod.identify(ctx.synthetic, templates)
        pred_real = icn_mod.identify(ctx.reference[b], templates)
    else:
        a, b = _halves_by_subject(ctx)
        pred = _identify_by_slice(ctx.synthetic, icn.synthetic_slice, ctx, a, k)
        pred_real = _identify_by_slice(ctx.reference[b], icn.reference_slice[b], ctx, a, k)
    conf = icn_mod.confusion_matrix(syn_lab, pred, k)
    return {
        "top1_accuracy": icn_mod.top1_accuracy(syn_lab, pred),
        "real_top1_accuracy": icn_mod.top1_accuracy(ref_lab[b], pred_real),
        "per_network_accuracy": {n: float(conf[j, j] / conf[j].sum()) for j, n in enumerate(names) if conf[j].sum()},
        "confusion": conf.tolist(),
        "real_confusion": icn_mod.confusion_matrix(ref_lab[b], pred_real, k).tolist(),
        "templates": f"mean real map of each network over reference half A ({len(a)} maps"
        + (", per slice position)" if icn.reference_slice is not None else ")"),
    }


def _identify_by_slice(maps: np.ndarray, z: np.ndarray, ctx: AuditContext, a: np.ndarray, k: int) -> np.ndarray:
    """2D: each slice against the half-A templates of its own slice position."""
    icn = ctx.icn
    assert icn is not None and icn.reference_slice is not None
    pred = np.zeros(len(maps), dtype=np.int64)
    for zv in np.unique(z):
        ref = a[icn.reference_slice[a] == zv]
        templates = icn_mod.network_means(ctx.reference[ref], icn.reference_codes[ref], k)
        sel = np.flatnonzero(z == zv)
        pred[sel] = icn_mod.identify(maps[sel], templates)
    return pred


def _halves_by_subject(ctx: AuditContext) -> tuple[np.ndarray, np.ndarray]:
    """For 2D stores, the reference halves split by manifest row, so a volume's slices stay together."""
    rows = ctx.reference_rows
    uniq = np.unique(rows)
    perm = ctx.rng("halves").permutation(uniq.size)
    in_a = np.isin(rows, uniq[perm[: uniq.size // 2]])
    return np.flatnonzero(in_a), np.flatnonzero(~in_a)


def _confusion_figure(identity: dict, names: list[str], path: Path) -> Path:
    from synthkit.viz import pyplot, save

    plt = pyplot()
    k = len(names)
    fig, axes = plt.subplots(1, 2, figsize=(4 + 0.5 * k, 2.2 + 0.25 * k), squeeze=False)
    for ax, key, title in zip(axes[0], ("confusion", "real_confusion"), ("generated", "real (half B)"), strict=True):
        conf = np.asarray(identity[key], float)
        frac = conf / np.maximum(conf.sum(1, keepdims=True), 1)
        ax.imshow(frac, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(k), names, rotation=90, fontsize=6)
        ax.set_yticks(range(k), names, fontsize=6)
        ax.set_xlabel("identified as")
        acc = identity["top1_accuracy" if key == "confusion" else "real_top1_accuracy"]
        ax.set_title(f"{title}: top-1 {acc:.1%}", fontsize=9)
    axes[0, 0].set_ylabel("requested network")
    fig.tight_layout()
    return save(fig, path, dpi=90, tight=True)


def _variance_figure(ctx: AuditContext, names: list[str], syn_lab, ref_lab, path: Path) -> Path:
    """Per network, the axial slice through the real maps' largest variance, generated beside real on one
    colour scale; networks on a grid four wide."""
    from synthkit.viz import pyplot, save

    plt = pyplot()
    rows = [(k, n) for k, n in enumerate(names) if (syn_lab == k).sum() > 1 and (ref_lab == k).sum() > 1]
    n_s = min(ctx.recipe.variance_samples, len(ctx.synthetic))
    ncol = min(4, max(1, len(rows)))
    nrow = max(1, -(-len(rows) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 1.9 * nrow + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (k, name) in enumerate(rows):
        var_s = ctx.synthetic[syn_lab == k][:n_s].var(0)
        var_r = ctx.reference[ref_lab == k][:n_s].var(0)
        z = int(np.argmax(var_r.sum((0, 1))))
        gap = np.full((2, var_s.shape[1]), np.nan)
        pair = np.concatenate([var_s[:, :, z], gap, var_r[:, :, z]])  # generated | real along x
        ax = axes[i // ncol, i % ncol]
        im = ax.imshow(pair.T, origin="lower", cmap="magma", vmin=0, vmax=float(max(np.nanmax(pair), 1e-12)))
        ax.set_title(f"{name}\ngenerated | real", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).ax.tick_params(labelsize=6)
    fig.suptitle(f"voxel-wise variance (≤ {n_s} maps per network, one scale per network)", fontsize=8)
    return save(fig, path, dpi=80, tight=True)
