import csv

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from synthkit.errors import CheckpointError, ManifestError, UsageError
from synthkit.models.base import load_checkpoint
from synthkit.models.registry import load_generator
from synthkit.training.run import train

from .conftest import write_recipe

ECHO = {"progress": False, "echo": lambda m: None, "device": "cpu"}


def losses(run, stage):
    with open(run / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["stage"] == stage and r["loss"]]


def test_ldm_run_writes_everything(trained_ldm):
    out = trained_ldm.out
    for name in (
        "model.safetensors",
        "autoencoder.safetensors",
        "metrics.csv",
        "loss.png",
        "recipe.yaml",
        "state/autoencoder.pt",
        "state/diffusion.pt",
        "checkpoints/diffusion-step000008.safetensors",
    ):
        assert (out / name).exists(), name
    assert list((out / "previews").glob("diffusion_step*.png"))
    _, meta = load_checkpoint(out / "model.safetensors")
    assert meta["kind"] == "ldm" and meta["space"]["shape"] == [16, 24, 16]
    assert meta["conditioning"]["names"] == ["age", "sex"] and meta["conditioning"]["null_flag"]
    assert meta["scale_factor"] > 0 and meta["training_data"]["n_train"] == 12
    text = str(meta)
    assert "phantom00" not in text and "/tmp" not in text  # no subject IDs, no paths


def test_loss_falls_on_phantoms(tmp_path, cohort16):
    recipe = write_recipe(tmp_path, cohort16, kind="ddpm", conditions="[]", steps=30)
    res = train(recipe, out=tmp_path / "run", **ECHO)
    curve = losses(res.out, "diffusion")
    assert np.mean(curve[-4:]) < 0.7 * np.mean(curve[:2])


def test_checkpoint_round_trip_gives_identical_samples(trained_ldm):
    g1 = load_generator(trained_ldm.checkpoint)
    g2 = load_generator(trained_ldm.checkpoint)
    cond = {"age": np.array([50.0, 75.0]), "sex": np.array([0.0, 1.0])}
    a = g1.sample(2, seeds=[3, 4], conditions=cond)
    b = g2.sample(2, seeds=[3, 4], conditions=cond)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.images.shape == (2, 16, 24, 16) and a.images.min() >= 0 and a.images.max() <= 1


def test_batch_invariance(trained_ldm):
    g = load_generator(trained_ldm.checkpoint)
    cond = {"age": np.array([50.0, 60.0, 70.0]), "sex": np.array([0.0, 1.0, 0.0])}
    together = g.sample(3, seeds=[7, 8, 9], conditions=cond)
    alone = g.sample(1, seeds=[8], conditions={k: v[1:2] for k, v in cond.items()})
    assert together.images[1].tobytes() == alone.images[0].tobytes()


def test_conditions_and_guidance_change_samples(trained_ldm):
    g = load_generator(trained_ldm.checkpoint)
    young = g.sample(1, seeds=[1], conditions={"age": np.array([45.0]), "sex": np.array([0.0])})
    old = g.sample(1, seeds=[1], conditions={"age": np.array([80.0]), "sex": np.array([0.0])})
    assert not np.array_equal(young.images, old.images)
    g.sampling = g.sampling.model_copy(update={"guidance_scale": 3.0})
    guided = g.sample(1, seeds=[1], conditions={"age": np.array([80.0]), "sex": np.array([0.0])})
    assert not np.array_equal(guided.images, old.images)


def test_resume_continues_the_same_stream(tmp_path, cohort16):
    recipe = write_recipe(tmp_path, cohort16, kind="ddpm", steps=8)
    straight = train(recipe, out=tmp_path / "a", **ECHO)
    train(recipe, out=tmp_path / "b", max_steps=4, **ECHO)
    with pytest.raises(UsageError, match="already holds a training run"):
        train(recipe, out=tmp_path / "b", **ECHO)
    resumed = train(recipe, out=tmp_path / "b", resume=True, **ECHO)
    sa = torch.load(straight.out / "state" / "diffusion.pt", weights_only=True)
    sb = torch.load(resumed.out / "state" / "diffusion.pt", weights_only=True)
    assert sa["step"] == sb["step"] == 8
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    assert losses(straight.out, "diffusion") == losses(resumed.out, "diffusion")


def test_pickled_and_truncated_checkpoints_are_refused(tmp_path, trained_ldm):
    pickled = tmp_path / "evil.safetensors"
    torch.save({"w": torch.zeros(2)}, pickled)
    with pytest.raises(CheckpointError, match="pickled"):
        load_generator(pickled)
    raw = (trained_ldm.checkpoint).read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated|damaged|not a valid"):
        load_generator(cut)
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="without synthkit metadata"):
        load_generator(bare)


def test_missing_conditions_fail_before_training(tmp_path, cohort16):
    recipe = write_recipe(tmp_path, cohort16, conditions="[age, iq]")
    with pytest.raises(ManifestError, match="iq"):
        train(recipe, out=tmp_path / "run", **ECHO)
    assert not (tmp_path / "run").exists()


def test_rflow_and_v_prediction_train_and_sample(tmp_path, cohort16):
    recipe = write_recipe(tmp_path, cohort16, kind="ddpm", conditions="[age]", steps=2, prediction="v_prediction")
    res = train(recipe, out=tmp_path / "v", **ECHO)
    s = load_generator(res.checkpoint).sample(1, seeds=[0], conditions={"age": np.array([60.0])})
    assert np.isfinite(s.images).all()
    text = recipe.read_text().replace("prediction_type: v_prediction", "kind: rflow")
    recipe.write_text(text)
    res = train(recipe, out=tmp_path / "r", **ECHO)
    g = load_generator(res.checkpoint)
    assert g.core.scheduler_cfg.kind == "rflow"
    assert g.describe()["sampling"]["sampler"] == "rflow"  # what it samples by, whatever the recipe's default
    assert np.isfinite(g.sample(1, seeds=[0], conditions={"age": np.array([60.0])}).images).all()
