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

from synthkit.errors import CheckpointError, TrainingError
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
    """``metrics.csv``: a row appended at every logged step, so the file can be followed (``tail -f``) while
    training runs and a kill loses at most the row being written; rewritten whole only when a row brings a new
    column (validation or preview figures the first time) or after a resume drops rows past the resumed step."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    _header: list[str] | None = field(default=None, repr=False)
    _on_disk: int = field(default=0, repr=False)

    def load(self, stage: str, upto: int) -> None:
        if self.path.exists():
            with open(self.path) as f:
                self.rows = [r for r in csv.DictReader(f) if r["stage"] != stage or int(r["step"]) <= upto]
        self._header = None  # the next write rewrites the file without the dropped rows

    def add(self, **row: Any) -> None:
        self.rows.append({k: ("" if v is None else v) for k, v in row.items()})

    def write(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        if keys == self._header and self.path.exists():
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=keys).writerows(self.rows[self._on_disk :])
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(self.rows)
            self._header = keys
        self._on_disk = len(self.rows)

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
            if ax.get_lines():
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


def lr_factor(step: int, total: int, schedule: str, warmup: int, min_fraction: float) -> float:
    """The learning rate at ``step`` as a fraction of the recipe's: linear warm-up over ``warmup`` steps, then
    constant or a cosine from 1 down to ``min_fraction`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(opt: torch.optim.Optimizer, base: float, cfg: Any, step: int, total: int) -> float:
    """Apply the recipe's schedule (``lr_schedule``, ``warmup_steps``, ``lr_min_fraction``) for ``step``."""
    lr = base * lr_factor(step, total, cfg.lr_schedule, cfg.warmup_steps, cfg.lr_min_fraction)
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


@dataclass
class LoopHooks:
    """What a stage plugs into :func:`run_loop`. ``validate`` returns ``val_loss`` and any diagnostics;
    ``preview`` may return figures to log too; both land in the step's row of ``metrics.csv``."""

    train_step: Callable[[int], dict[str, float]]  # step → losses (the first is logged as "loss")
    validate: Callable[[], dict[str, float]] | None
    preview: Callable[[int], dict[str, float] | None] | None
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
    ``metrics.csv`` gets a row at every logged step, so it can be followed while training runs; off a terminal
    a plain progress line every ``log_every`` steps. Ctrl-C saves the state first so ``--resume`` continues
    where it stopped."""
    bar = Progress(stage, start, steps, progress, every_steps=log_every)
    t0, step = time.perf_counter(), start
    recent: list[float] = []
    try:
        for step in range(start, steps):
            losses = hooks.train_step(step)
            loss = next(iter(losses.values()))
            if not math.isfinite(loss):
                raise TrainingError(
                    f"{stage}: the loss became {loss} at step {step + 1}; lower the learning rate or check the data"
                )
            recent.append(loss)
            done = step + 1
            row: dict[str, Any] = {}
            if done % log_every == 0 or done == steps:
                row = {"stage": stage, "step": done, "loss": float(np.mean(recent)), **dict(list(losses.items())[1:])}
                recent = []
            if hooks.validate is not None and (done % val_every == 0 or done == steps):
                row = {"stage": stage, "step": done, **row, **hooks.validate()}
            if done % checkpoint_every == 0 or done == steps:
                hooks.checkpoint(done)
                hooks.save_state(done)
                log.plot(curve)
            if hooks.preview is not None and (done % preview_every == 0 or done == steps):
                row = {"stage": stage, "step": done, **row, **(hooks.preview(done) or {})}
            if row:
                row["seconds"] = round(time.perf_counter() - t0, 2)
                log.add(**row)
                log.write()
            bar.update(done, loss, (done - start) / max(1e-9, time.perf_counter() - t0))
    except KeyboardInterrupt:
        hooks.save_state(step)
        log.write()
        raise
    finally:
        bar.stop()


class Progress:
    """A rich progress bar on a terminal; otherwise (output redirected to a file, a batch job) one plain line
    every ``every_steps`` steps (the recipe's ``log_every``) and at least every ``every_seconds``, so a long
    run never looks hung."""

    def __init__(
        self, stage: str, start: int, total: int, enabled: bool, every_steps: int = 10, every_seconds: float = 30.0
    ) -> None:
        import sys

        self.stage, self.total, self.every = stage, total, every_seconds
        self.every_steps = max(1, int(every_steps))
        self.enabled = enabled
        self.last_line = time.perf_counter()
        self.bar = None
        if enabled and sys.stdout.isatty():
            self.bar, self.task = _bar(stage, start, total)

    def update(self, done: int, loss: float, rate: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, loss=loss, rate=rate)
            return
        now = time.perf_counter()
        if done % self.every_steps == 0 or now - self.last_line >= self.every or done == self.total:
            self.last_line = now
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            print(
                f"{self.stage}: step {done}/{self.total}, loss {loss:.4g}, {rate:.2f} steps/s, ETA {eta:.0f} s",
                flush=True,
            )

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _bar(stage: str, start: int, total: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    bar = RichProgress(
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
