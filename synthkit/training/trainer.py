"""The training loop's mechanics, shared by every stage: steps, logging, validation, previews, checkpoints,
EMA and exact resume.

Determinism and resume: the batch indices and the noise of step ``s`` are drawn from generators seeded with
``(seed, stage, s)``, so a run resumed at step ``s`` continues the same stream without storing sampler state.
The resumable state (model, optimiser, EMA, step, torch RNG) is a ``torch.save`` dict of tensors and numbers,
loaded with ``weights_only=True``.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthkit.errors import CheckpointError
from synthkit.viz import pyplot, save


def step_generator(seed: int, stage: str, step: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of one training step (independent of everything before it)."""
    key = np.random.SeedSequence([seed, sum(map(ord, stage)) * 7919, step]).generate_state(1, np.uint64)[0]
    g = torch.Generator(device=device)
    g.manual_seed(int(key) & 0x7FFF_FFFF_FFFF_FFFF)
    return g


def batch_indices(n: int, batch_size: int, step: int, seed: int, stage: str) -> list[int]:
    """Indices of step ``step``: epochs are permutations (seeded per epoch), walked ``batch_size`` at a time."""
    out: list[int] = []
    pos = step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(pos, n)
        perm = torch.randperm(n, generator=step_generator(seed, stage + "-epoch", epoch)).tolist()
        take = min(batch_size - len(out), n - offset)
        out += perm[offset : offset + take]
        pos += take
    return out


class EMA:
    """Exponential moving average of a model's weights, with the usual warm-up ``min(d, (1+s)/(10+s))``."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)


@dataclass
class MetricsLog:
    """``metrics.csv`` (appended; on resume, rows past the resumed step are dropped) and a loss-curve PNG."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)

    def load(self, stage: str, upto: int) -> None:
        if self.path.exists():
            with open(self.path) as f:
                self.rows = [r for r in csv.DictReader(f) if r["stage"] != stage or int(r["step"]) <= upto]

    def add(self, **row: Any) -> None:
        self.rows.append({k: ("" if v is None else v) for k, v in row.items()})

    def write(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)

    def plot(self, png: Path) -> None:
        plt = pyplot()
        stages = list(dict.fromkeys(r["stage"] for r in self.rows))
        fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(5 * max(1, len(stages)), 3.5), squeeze=False)
        for ax, stage in zip(axes[0], stages, strict=False):
            rows = [r for r in self.rows if r["stage"] == stage]
            for key, style in (("loss", "-"), ("val_loss", "o-")):
                pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, label=key.replace("_", " "), ms=3)
            ax.set_title(stage)
            ax.set_xlabel("step")
            ax.set_yscale("log")
            ax.legend()
        fig.tight_layout()
        save(fig, png)


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(f"{path}: no training state to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path}: cannot resume from this state file ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None


@dataclass
class LoopHooks:
    """What a stage plugs into :func:`run_loop`."""

    train_step: Callable[[int], dict[str, float]]  # step → losses (the first is logged as "loss")
    validate: Callable[[], float] | None
    preview: Callable[[int], None] | None
    checkpoint: Callable[[int], None]
    save_state: Callable[[int], None]


def run_loop(
    *,
    stage: str,
    start: int,
    steps: int,
    hooks: LoopHooks,
    log: MetricsLog,
    log_every: int,
    val_every: int,
    preview_every: int,
    checkpoint_every: int,
    curve: Path,
    progress: bool = True,
) -> None:
    """Run steps ``start .. steps-1`` with logging, validation, previews and checkpoints at their intervals;
    Ctrl-C saves the state first so ``--resume`` continues where it stopped."""
    bar, task = _bar(progress, stage, start, steps)
    t0, step = time.perf_counter(), start
    recent: list[float] = []
    try:
        for step in range(start, steps):
            losses = hooks.train_step(step)
            loss = next(iter(losses.values()))
            if not math.isfinite(loss):
                raise FloatingPointError(f"{stage}: the loss became {loss} at step {step}")
            recent.append(loss)
            done = step + 1
            row: dict[str, Any] = {}
            if done % log_every == 0 or done == steps:
                row = {
                    "stage": stage,
                    "step": done,
                    "loss": float(np.mean(recent)),
                    **{k: v for k, v in list(losses.items())[1:]},
                }
                recent = []
            if hooks.validate is not None and (done % val_every == 0 or done == steps):
                row = row or {"stage": stage, "step": done}
                row["val_loss"] = hooks.validate()
            if row:
                row["seconds"] = round(time.perf_counter() - t0, 2)
                log.add(**row)
            if done % checkpoint_every == 0 or done == steps:
                hooks.checkpoint(done)
                hooks.save_state(done)
                log.write()
                log.plot(curve)
            if hooks.preview is not None and (done % preview_every == 0 or done == steps):
                hooks.preview(done)
            if bar is not None:
                rate = (done - start) / max(1e-9, time.perf_counter() - t0)
                bar.update(task, completed=done, loss=loss, rate=rate)
    except KeyboardInterrupt:
        hooks.save_state(step)
        log.write()
        raise
    finally:
        if bar is not None:
            bar.stop()


def _bar(enabled: bool, stage: str, start: int, total: int):
    if not enabled:
        return None, 0
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn(f"{stage:>11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4g}"),
        TextColumn("{task.fields[rate]:.2f} steps/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    bar.start()
    task = bar.add_task(stage, total=total, completed=start, loss=float("nan"), rate=0.0)
    return bar, task
