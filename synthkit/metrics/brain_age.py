"""Brain-age regression, as a check that a synthetic 75-year-old looks 75 (Pinaya et al.: r = 0.692 between
requested and predicted age, with the 3D CNN of Cole et al. 2017 trained on the generator's training set).

Two estimators with scikit-learn's conventions (``fit`` returns ``self``, ``predict`` → (n,), ``random_state``):

* :class:`PCARidgeBrainAge` — average-pool downsampling, standardisation, PCA, ridge regression;
* :class:`CNNBrainAge` — a small SFCN-like 3D CNN in torch (conv–BN–ReLU–max-pool blocks, global average
  pooling, a linear head), trained with Adam on MSE of standardised age.

Inputs are images ``(n, X, Y, Z)`` in [0, 1] in one ImageSpace. Model files are ``.safetensors`` with JSON
metadata (:mod:`synthkit.safefile`): no pickles, so loading cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from synthkit.errors import CheckpointError, SynthkitError
from synthkit.safefile import load_numpy, save_numpy
from synthkit.space import ImageSpace


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Average pooling by ``factor`` in every axis (trailing voxels that do not fill a block are dropped)."""
    x = np.asarray(images, np.float32)
    if factor <= 1:
        return x.reshape(len(x), -1)
    s = [d - d % factor for d in x.shape[1:]]
    x = x[:, : s[0], : s[1], : s[2]]
    x = x.reshape(len(x), s[0] // factor, factor, s[1] // factor, factor, s[2] // factor, factor).mean((2, 4, 6))
    return x.reshape(len(x), -1)


class PCARidgeBrainAge(RegressorMixin, BaseEstimator):
    def __init__(self, downsample: int = 2, n_components: int = 64, alpha: float = 10.0, random_state: int | None = 0):
        self.downsample = downsample
        self.n_components = n_components
        self.alpha = alpha
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> PCARidgeBrainAge:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import Ridge
        from threadpoolctl import threadpool_limits

        f = downsample(X, self.downsample)
        self.mean_ = f.mean(0)
        self.scale_ = f.std(0) + 1e-6
        z = (f - self.mean_) / self.scale_
        k = int(min(self.n_components, len(z) - 1, z.shape[1]))
        with threadpool_limits(1, "blas"):
            self.pca_ = PCA(n_components=k, random_state=self.random_state, svd_solver="randomized").fit(z)
            self.ridge_ = Ridge(alpha=self.alpha).fit(self.pca_.transform(z), np.asarray(y, np.float64))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = (downsample(X, self.downsample) - self.mean_) / self.scale_
        comps = (z - self.pca_.mean_) @ self.pca_.components_.T
        return comps @ self.ridge_.coef_ + self.ridge_.intercept_

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "mean": self.mean_,
            "scale": self.scale_,
            "pca_mean": self.pca_.mean_,
            "pca_components": self.pca_.components_,
            "coef": np.asarray(self.ridge_.coef_),
            "intercept": np.atleast_1d(self.ridge_.intercept_),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], params: dict[str, Any]) -> PCARidgeBrainAge:
        from types import SimpleNamespace

        m = cls(**params)
        m.mean_, m.scale_ = a["mean"], a["scale"]
        m.pca_ = SimpleNamespace(mean_=a["pca_mean"], components_=a["pca_components"])
        m.ridge_ = SimpleNamespace(coef_=a["coef"], intercept_=float(a["intercept"][0]))
        return m


class CNNBrainAge(RegressorMixin, BaseEstimator):
    """A small SFCN-like CNN; ``channels`` per block, each block conv3–BN–ReLU–maxpool2."""

    def __init__(
        self,
        channels: tuple[int, ...] = (8, 16, 32, 64),
        epochs: int = 30,
        batch_size: int = 8,
        lr: float = 1e-3,
        random_state: int | None = 0,
        device: str = "cpu",
    ):
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.device = device

    def _net(self):
        import torch
        from torch import nn

        torch.manual_seed(0 if self.random_state is None else self.random_state)  # before the layers draw their weights
        layers: list[nn.Module] = []
        cin = 1
        for c in self.channels:
            layers += [nn.Conv3d(cin, c, 3, padding=1), nn.BatchNorm3d(c), nn.ReLU(), nn.MaxPool3d(2, ceil_mode=True)]
            cin = c
        layers += [nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(cin, 1)]
        return nn.Sequential(*layers)

    def fit(self, X: np.ndarray, y: np.ndarray) -> CNNBrainAge:
        import torch

        x = torch.as_tensor(np.asarray(X, np.float32))[:, None]
        yy = np.asarray(y, np.float64)
        self.y_mean_, self.y_std_ = float(yy.mean()), float(yy.std() + 1e-6)
        t = torch.as_tensor((yy - self.y_mean_) / self.y_std_, dtype=torch.float32)
        self.net_ = self._net().to(self.device)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=1e-4)
        g = torch.Generator().manual_seed(0 if self.random_state is None else self.random_state)
        self.net_.train()
        for _ in range(self.epochs):
            perm = torch.randperm(len(x), generator=g)
            for a in range(0, len(x), self.batch_size):
                idx = perm[a : a + self.batch_size]
                if len(idx) < 2:
                    continue
                loss = torch.nn.functional.mse_loss(self.net_(x[idx].to(self.device))[:, 0], t[idx].to(self.device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net_.eval()
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(X, np.float32))[:, None]
            for a in range(0, len(x), 16):
                out.append(self.net_(x[a : a + 16].to(self.device))[:, 0].double().cpu().numpy())
        return np.concatenate(out) * self.y_std_ + self.y_mean_

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        arrays["y_stats"] = np.array([self.y_mean_, self.y_std_])
        return arrays

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], params: dict[str, Any]) -> CNNBrainAge:
        import torch

        params = {**params, "channels": tuple(params["channels"])}
        m = cls(**params)
        m.net_ = m._net()
        state = {k[4:]: torch.as_tensor(v) for k, v in a.items() if k.startswith("net.")}
        try:
            m.net_.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(
                f"brain-age CNN weights do not match its configuration ({str(e).splitlines()[0]})"
            ) from None
        m.net_.eval()
        m.y_mean_, m.y_std_ = float(a["y_stats"][0]), float(a["y_stats"][1])
        return m


KINDS = {"sklearn": PCARidgeBrainAge, "cnn": CNNBrainAge}


def save_brain_age(path: str | Path, model: PCARidgeBrainAge | CNNBrainAge, *, space: dict, metrics: dict) -> Path:
    kind = "sklearn" if isinstance(model, PCARidgeBrainAge) else "cnn"
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.get_params().items()}
    return save_numpy(
        path, model.arrays(), {"kind": f"brain-age-{kind}", "params": params, "space": space, "held_out": metrics}
    )


def load_brain_age(path: str | Path) -> tuple[PCARidgeBrainAge | CNNBrainAge, dict[str, Any]]:
    """A brain-age model and its metadata (space, held-out metrics); pickles are refused. Edited metadata (kind,
    params, space) or arrays that do not fit it are one error naming the file and field: the model predicts one
    blank image of its space before it is returned."""
    arrays, meta = load_numpy(path, "brain-age model")
    kind = str(meta["kind"]).removeprefix("brain-age-")
    if kind not in KINDS:
        raise CheckpointError(f"{path}: not a brain-age model (kind {meta['kind']!r})")
    if "space" not in meta:
        raise CheckpointError(f"{path}: metadata field 'space' is missing")
    try:
        space = ImageSpace.from_dict(meta["space"])
    except SynthkitError as e:
        raise CheckpointError(f"{path}: metadata field 'space' is invalid ({e})") from None
    params = meta.get("params", {})
    if not isinstance(params, dict):
        raise CheckpointError(f"{path}: metadata field 'params' is not a mapping")
    try:
        model = KINDS[kind].from_arrays(arrays, params)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        what = f"array or parameter {e.args[0]!r} is missing" if isinstance(e, KeyError) else _first_line(e)
        raise CheckpointError(f"{path}: its arrays do not fit metadata fields 'kind'/'params' ({what})") from None
    try:
        pred = model.predict(np.zeros((1, *space.shape), np.float32))
    except Exception as e:  # any shape mismatch between arrays and space, whichever library raises it
        raise CheckpointError(
            f"{path}: its arrays do not fit metadata field 'space' ({space.describe()}; {_first_line(e)})"
        ) from None
    if not np.isfinite(pred).all():
        raise CheckpointError(f"{path}: predicts a non-finite age for a blank image (arrays edited?)")
    return model, meta


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"


def regression_stats(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from scipy.stats import pearsonr

    t, p = np.asarray(true, float), np.asarray(pred, float)
    r = float(pearsonr(t, p)[0]) if len(t) > 2 and np.ptp(t) > 0 else float("nan")
    return {"n": len(t), "pearson_r": r, "mae": float(np.mean(np.abs(t - p)))}
