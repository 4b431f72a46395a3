"""MS-SSIM and 4-G-R-SSIM for 3D volumes, batched over pairs (diversity = mean over random distinct pairs).

**MS-SSIM** (Wang, Simoncelli & Bovik 2003), exactly as MONAI's ``compute_ms_ssim``: Gaussian window (σ 1.5)
applied as a *valid* convolution, C1 = (0.01·L)², C2 = (0.03·L)²; at every scale the mean contrast-structure
term cs, after the last the mean SSIM; MS-SSIM = Π relu(csᵢ)^wᵢ · relu(ssim₅)^w₅ with weights (0.0448, 0.2856,
0.3001, 0.2363, 0.1333) and 2× average pooling between scales. The window is separable here (three 1D
passes instead of one k³ kernel), which is what makes it fast; tests check agreement with MONAI.

Small volumes: MONAI requires ``size // 16 > kernel − 1`` for five scales, so :func:`fit_kernel` shrinks the
kernel (odd, ≤ the requested 7) and, only if even 3 does not fit, drops the coarsest scales and renormalises
the weights; the report states the kernel and scales used.

**4-G-R-SSIM**: the gradient-based SSIM of Chen et al. (2006) — luminance from intensities, contrast-structure
from Sobel gradient magnitudes — averaged over the four regions of Li & Bovik (2010): preserved edges (both
gradients > 0.12·gmax), changed edges (one above, one not), smooth (reference < 0.06·gmax and the other
≤ 0.12·gmax) and texture (the rest), gmax being the reference's largest gradient; equal region weights over
non-empty regions; combined across the same scales and weights as MS-SSIM. No reference implementation is
public (Pinaya et al. cite the definitions); this one follows them and is tested for its properties.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def fit_kernel(
    shape: Sequence[int], kernel_size: int = 7, weights: Sequence[float] = MS_WEIGHTS
) -> tuple[int, tuple[float, ...]]:
    """The largest odd kernel ≤ ``kernel_size`` for which all scales fit (MONAI's rule); fewer scales if needed."""
    w = tuple(weights)
    while True:
        div = max(1, len(w) - 1) ** 2
        k = kernel_size if kernel_size % 2 else kernel_size - 1
        while k >= 3 and any(s // div <= k - 1 for s in shape):
            k -= 2
        if k >= 3 or len(w) == 1:
            break
        w = w[:-1]
    total = sum(w)
    return max(k, 1), tuple(x / total for x in w) if len(w) < len(weights) else w


def _gauss(k: int, sigma: float) -> list[float]:
    d = np.arange((1 - k) / 2, (1 + k) / 2, 1.0)
    g = np.exp(-((d / sigma) ** 2) / 2)
    return (g / g.sum()).tolist()


def _filter_axis(x: torch.Tensor, weights: Sequence[float], axis: int) -> torch.Tensor:
    """Valid 1D correlation along ``axis`` as a weighted sum of shifted views (on a CPU several times faster
    than a one-channel ``conv3d``, and exact)."""
    k = len(weights)
    n = x.shape[axis] - k + 1
    out = x.narrow(axis, 0, n) * weights[0]
    for j in range(1, k):
        if weights[j]:
            out = out.add(x.narrow(axis, j, n), alpha=weights[j])
    return out


def _blur(x: torch.Tensor, g: Sequence[float]) -> torch.Tensor:
    """Separable valid Gaussian filtering of (B, 1, X, Y, Z)."""
    for axis in (2, 3, 4):
        x = _filter_axis(x, g, axis)
    return x


def _ssim_cs(
    x: torch.Tensor, y: torch.Tensor, g: Sequence[float], c1: float, c2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    mx, my = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mx * mx
    syy = _blur(y * y, g) - my * my
    sxy = _blur(x * y, g) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return lum * cs, cs


def _prep(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, torch.Tensor) else x).float()
    return t[:, None] if t.ndim == 4 else t


def _multiscale(
    x,
    y,
    per_scale: Callable[..., torch.Tensor],
    *,
    data_range: float,
    kernel_size: int,
    sigma: float,
    weights: Sequence[float],
) -> torch.Tensor:
    """Π_i relu(per_scale(x_i, y_i))^w_i over scales i, with 2× average pooling between scales."""
    x, y = _prep(x), _prep(y)
    k, w = fit_kernel(x.shape[2:], kernel_size, weights)
    g = _gauss(k, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    terms = []
    for i in range(len(w)):
        terms.append(torch.relu(per_scale(x, y, g, c1, c2, i == len(w) - 1)))
        if i < len(w) - 1:
            x, y = F.avg_pool3d(x, 2), F.avg_pool3d(y, 2)
    wt = torch.tensor(w, dtype=x.dtype, device=x.device)
    return torch.prod(torch.stack(terms) ** wt[:, None], dim=0)


def _ms_ssim_scale(x, y, g, c1, c2, last: bool) -> torch.Tensor:
    ssim, cs = _ssim_cs(x, y, g, c1, c2)
    return (ssim if last else cs).flatten(1).mean(1)


def ms_ssim(
    x, y, *, data_range: float = 1.0, kernel_size: int = 7, sigma: float = 1.5, weights: Sequence[float] = MS_WEIGHTS
) -> torch.Tensor:
    """MS-SSIM of each pair ``(x[i], y[i])``; inputs (B, X, Y, Z) or (B, 1, X, Y, Z) → (B,)."""
    return _multiscale(
        x, y, _ms_ssim_scale, data_range=data_range, kernel_size=kernel_size, sigma=sigma, weights=weights
    )


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """3D Sobel gradient magnitude of (B, 1, X, Y, Z) (replicate padding keeps the shape)."""
    xp = F.pad(x, (1, 1, 1, 1, 1, 1), mode="replicate")
    total = torch.zeros_like(x)
    for axis in range(3):
        out = xp
        for a in range(3):  # derivative along ``axis``, smoothing along the other two
            out = _filter_axis(out, (-1.0, 0.0, 1.0) if a == axis else (1.0, 2.0, 1.0), 2 + a)
        total = total + out**2
    return total.sqrt()


def _crop_to(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    sl = [slice((s - t) // 2, (s - t) // 2 + t) for s, t in zip(x.shape[2:], shape, strict=True)]
    return x[(slice(None), slice(None), *sl)]


def _four_region_scale(x, y, g, c1, c2, last: bool, t_edge: float = 0.12, t_smooth: float = 0.06) -> torch.Tensor:
    gx, gy = sobel_magnitude(x), sobel_magnitude(y)
    mx, my = _blur(x, g), _blur(y, g)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    _, cs = _ssim_cs(gx, gy, g, c2, c2)  # contrast-structure on gradient maps (Chen et al. 2006)
    gmap = lum * cs
    px, py = _crop_to(gx, gmap.shape[2:]), _crop_to(gy, gmap.shape[2:])
    gmax = gx.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1, 1, 1)
    t1, t2 = t_edge * gmax, t_smooth * gmax
    edge_x, edge_y = px > t1, py > t1
    regions = [edge_x & edge_y, edge_x ^ edge_y, (px < t2) & ~edge_y]  # preserved edge, changed edge, smooth
    regions.append(~(regions[0] | regions[1] | regions[2]))  # texture
    score = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    wsum = torch.zeros_like(score)
    for r in regions:
        n = r.flatten(1).sum(1)
        mean = (gmap * r).flatten(1).sum(1) / n.clamp(min=1)
        score = score + torch.where(n > 0, 0.25 * mean, torch.zeros_like(mean))
        wsum = wsum + 0.25 * (n > 0)
    return score / wsum.clamp(min=1e-12)


def four_g_r_ssim(
    x,
    y,
    *,
    data_range: float = 1.0,
    kernel_size: int = 7,
    sigma: float = 1.5,
    weights: Sequence[float] = MS_WEIGHTS,
    t_edge: float = 0.12,
    t_smooth: float = 0.06,
) -> torch.Tensor:
    """4-G-R-SSIM of each pair, ``x`` being the reference for the region split; (B, ...) → (B,)."""

    def per_scale(x, y, g, c1, c2, last):
        return _four_region_scale(x, y, g, c1, c2, last, t_edge, t_smooth)

    return _multiscale(x, y, per_scale, data_range=data_range, kernel_size=kernel_size, sigma=sigma, weights=weights)


def random_pairs(n: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_pairs`` random pairs (i, j) of distinct samples, shape (n_pairs, 2)."""
    if n < 2:
        raise ValueError("diversity needs at least two samples")
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n  # j ≠ i, uniform over the others
    return np.stack([i, j], axis=1)


def pairwise(
    metric: Callable[..., torch.Tensor],
    images: np.ndarray,
    pairs: np.ndarray,
    *,
    batch_size: int = 16,
    device: str = "cpu",
    **kw,
) -> np.ndarray:
    """``metric`` over the given pairs of ``images`` (n, X, Y, Z), batched; returns one value per pair."""
    out = []
    with torch.inference_mode():
        for a in range(0, len(pairs), batch_size):
            p = pairs[a : a + batch_size]
            x = torch.as_tensor(images[p[:, 0]], dtype=torch.float32, device=device)
            y = torch.as_tensor(images[p[:, 1]], dtype=torch.float32, device=device)
            out.append(metric(x, y, **kw).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)
