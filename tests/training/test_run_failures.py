"""Issue 13's training items: a failed run removes its folder or stays resumable and says which; a plain
progress line every N steps off a terminal; metrics.csv appended as training goes; torch threads from the free
cores or ``--threads``."""

import csv
import math

import pytest
import torch

from synthkit.cli import main
from synthkit.errors import TrainingError
from synthkit.training import run as run_mod
from synthkit.training.trainer import LoopHooks, MetricsLog, run_loop

from .conftest import write_recipe


def _loop(tmp_path, steps, log_every, seen, validate=None):
    log = MetricsLog(tmp_path / "metrics.csv")

    def train_step(step):
        seen.append((tmp_path / "metrics.csv").read_text() if (tmp_path / "metrics.csv").exists() else "")
        return {"loss": 1.0 / (step + 1)}

    hooks = LoopHooks(train_step, validate, None, lambda done: None, lambda done: None)
    run_loop(stage="diffusion", start=0, steps=steps, hooks=hooks, log=log, log_every=log_every, val_every=4,
             preview_every=1000, checkpoint_every=1000, curve=tmp_path / "loss.png", progress=True)
    return log


def test_a_plain_progress_line_every_log_every_steps_off_a_terminal(tmp_path, capsys):
    _loop(tmp_path, steps=10, log_every=3, seen=[])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("diffusion: step")]
    assert [ln.split()[2] for ln in lines] == ["3/10,", "6/10,", "9/10,", "10/10,"]
    assert all("steps/s" in ln and "ETA" in ln for ln in lines)


def test_metrics_csv_grows_as_training_goes_and_is_appended(tmp_path, monkeypatch):
    from synthkit.training import trainer

    modes: list[str] = []

    def recording_open(file, mode="r", *args, **kwargs):
        if str(file).endswith("metrics.csv"):
            modes.append(mode)
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(trainer, "open", recording_open, raising=False)
    seen: list[str] = []
    _loop(tmp_path, steps=12, log_every=2, seen=seen, validate=lambda: {"val_loss": 0.5})
    # written whole for the first row and when val_loss brings its column (step 4); appended after that
    assert modes == ["w", "w", "a", "a", "a", "a"]
    final = (tmp_path / "metrics.csv").read_text()
    rows = list(csv.DictReader(final.splitlines()))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12]
    # before step s runs, every row logged so far is on disk (seen[s] is the file as step s starts)
    assert [len(list(csv.DictReader(t.splitlines()))) for t in seen] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # once val_loss has brought its column (step 4), the file only grows: each version is a prefix of the next
    for before, after in zip(seen[4:], [*seen[5:], final], strict=True):
        assert after.startswith(before)


def test_metrics_log_rewrites_when_a_resume_drops_rows(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv")
    for step in (2, 4, 6):
        log.add(stage="diffusion", step=step, loss=1.0)
        log.write()
    log = MetricsLog(tmp_path / "metrics.csv")
    log.load("diffusion", upto=4)
    log.add(stage="diffusion", step=6, loss=0.5)
    log.write()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert [(r["step"], r["loss"]) for r in rows] == [("2", "1.0"), ("4", "1.0"), ("6", "0.5")]


def test_free_cores_subtracts_the_busy_ones(monkeypatch):
    monkeypatch.setattr(run_mod.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(run_mod.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert run_mod.free_cores() == 1  # another job on one of two cores
    monkeypatch.setattr(run_mod.os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert run_mod.free_cores() == 2
    monkeypatch.setattr(run_mod.os, "getloadavg", lambda: (7.0, 0.0, 0.0))
    assert run_mod.free_cores() == 1  # never fewer than one


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_failed_run_with_nothing_saved_is_removed_and_says_so(tmp_path, capsys, cohort16, monkeypatch,
                                                                 torch_threads):
    def diverges(ctx, steps, resume):
        raise TrainingError("diffusion: the loss became nan at step 1; lower the learning rate or check the data")

    monkeypatch.setattr(run_mod, "stage_runner", lambda name: diverges)
    monkeypatch.setattr(run_mod, "free_cores", lambda: 1)
    recipe = write_recipe(tmp_path, cohort16, kind="ddpm", conditions="[]", steps=2)
    code = main(["train", str(recipe), "--out", str(tmp_path / "run"), "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.out + out.err
    assert "1 CPU thread(s)" in out.out  # the default: the free cores
    assert f"removed {tmp_path / 'run'}" in out.out
    assert out.err.strip().startswith("synthkit: error: diffusion: the loss became nan") and out.err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_failed_run_with_saved_state_is_kept_and_resumes(tmp_path, capsys, cohort16, monkeypatch, torch_threads):
    """The loss turns NaN at step 6 after the state of step 4 was saved: the folder stays, the message says
    --resume, and --resume finishes the run."""
    real = run_mod.RunContext.run_stage

    def nan_at_step_6(self, stage, start, steps, hooks, every):
        step_fn = hooks.train_step
        hooks.train_step = lambda s: {"loss": math.nan} if s == 5 else step_fn(s)
        return real(self, stage, start, steps, hooks, every)

    monkeypatch.setattr(run_mod.RunContext, "run_stage", nan_at_step_6)
    recipe = write_recipe(tmp_path, cohort16, kind="ddpm", conditions="[]", steps=8)
    run = tmp_path / "run"
    code = main(["train", str(recipe), "--out", str(run), "--device", "cpu", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.out + out.err
    assert "1 CPU thread(s)" in out.out and torch.get_num_threads() == 1
    assert f"{run} keeps its saved state: add --resume to continue" in out.out
    assert "loss became nan at step 6" in out.err
    assert (run / "state" / "diffusion.pt").exists()
    monkeypatch.setattr(run_mod.RunContext, "run_stage", real)
    assert main(["train", str(recipe), "--out", str(run), "--device", "cpu", "--threads", "1", "--resume"]) == 0
    assert "(resuming)" in capsys.readouterr().out and (run / "model.safetensors").exists()
    from synthkit.models.base import load_checkpoint

    _, meta = load_checkpoint(run / "model.safetensors")  # the preprocessing is recorded with the model
    assert meta["recipe"]["data"]["preprocess"] == {"mode": "auto", "registration": "affine", "bias_correction": True,
                                                    "centre": True, "lower_percentile": 0.5, "upper_percentile": 99.5,
                                                    "intensity": "percentile"}
