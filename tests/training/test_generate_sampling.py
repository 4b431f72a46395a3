"""`generate --sampler/--steps/--guidance-scale` (and `sample`'s) on a trained checkpoint: the session's tiny
LDM, trained with condition dropout, lives in this folder's conftest."""

import numpy as np
import pytest

from synthkit.cli import main
from synthkit.errors import UsageError
from synthkit.generate.engine import GenerateOptions, QCConfig, ShardJob, run_shard
from synthkit.generate.prepare import prepare_store
from synthkit.models.registry import load_generator
from synthkit.store import writer
from synthkit.store.reader import open_store
from synthkit.store.summary import summarise


def planned(tmp_path, checkpoint, **sampling):
    """A store planned with these sampling settings (first attempts kept: no QC regeneration)."""
    o = GenerateOptions(
        out=tmp_path / "g.zarr", model=str(checkpoint), n=4, shard_size=2, batch_size=2, device="cpu",
        qc=QCConfig(max_retries=0), **sampling,
    )
    info, spec, staged = prepare_store(o, lambda m: None)
    writer.install_store(staged, o.out, overwrite=False)
    return o, info, spec


def test_generate_draws_with_the_settings_given(tmp_path, trained_ldm):
    o, info, spec = planned(tmp_path, trained_ldm.checkpoint, steps=3, guidance_scale=3.0)
    assert info.generator["sampling"] == {"sampler": "ddim", "steps": 3, "eta": 0.0, "guidance_scale": 3.0}
    shown = dict(summarise(o.out).rows())["sampling"]
    assert shown == "ddim, 3 steps, guidance scale 3.0 (given: --steps, --guidance-scale)"
    run_shard(1, ShardJob(str(o.out), spec, 2, "cpu", o.qc))
    root, _ = open_store(o.out)
    stored = np.asarray(root["images"][2:4], np.float32)
    seeds = [int(s) for s in root["meta"]["seed"][2:4]]
    cond = {k: np.asarray(root["meta"][k][2:4], np.float64) for k in ("age", "sex")}
    g = load_generator(trained_ldm.checkpoint)
    plain = g.sample(2, seeds=seeds, conditions=cond).images
    g.sampling = g.sampling.model_copy(update={"steps": 3, "guidance_scale": 3.0})
    guided = g.sample(2, seeds=seeds, conditions=cond).images
    assert np.abs(stored - guided).max() < 1e-3  # float16 storage
    assert np.abs(stored - plain).max() > 1e-2


def test_resume_keeps_the_settings_and_refuses_others(tmp_path, trained_ldm):
    o, _, spec = planned(tmp_path, trained_ldm.checkpoint, guidance_scale=2.5)
    _, again, staged = prepare_store(GenerateOptions(out=o.out, resume=True), lambda m: None)
    assert staged is None and again == spec and dict(spec.sampling) == {"guidance_scale": 2.5}
    with pytest.raises(UsageError, match=r"--guidance-scale 2.0 \(store: 2.5\)"):
        prepare_store(GenerateOptions(out=o.out, resume=True, guidance_scale=2.0), lambda m: None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "500"], "model.safetensors was trained with 100 timesteps"),
        (["--sampler", "rflow"], "was trained with the ddpm scheduler; use ddpm, ddim or dpmpp_2m"),
        (["--sampler", "euler"], "Input should be 'ddpm', 'ddim', 'dpmpp_2m' or 'rflow' (got 'euler')"),
        (["--guidance-scale", "inf"], "guidance_scale: Input should be a finite number (got inf)"),
    ],
)
def test_settings_the_model_cannot_honour_are_one_line(capsys, tmp_path, trained_ldm, args, message):
    for command in (["generate", "--out", str(tmp_path / "x.zarr"), "--n", "2", "--model"], ["sample"]):
        code = main([*command, str(trained_ldm.checkpoint), *args])
        err = capsys.readouterr().err
        assert code == 2, err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.zarr").exists()


def test_a_recipe_setting_the_model_cannot_honour_is_named_as_the_recipe_s(trained_ldm):
    from synthkit.models.registry import with_sampling

    g = load_generator(trained_ldm.checkpoint)
    g.sampling = g.sampling.model_copy(update={"steps": 500})  # as if its recipe said so
    with pytest.raises(UsageError, match="the recipe's steps 500: .* was trained with 100 timesteps"):
        with_sampling(g, {"guidance_scale": 2.0}, trained_ldm.checkpoint)


def test_guidance_needs_conditions_to_guide_with(capsys, tmp_path, cohort16):
    from synthkit.training.run import train

    from .conftest import write_recipe

    recipe = write_recipe(tmp_path, cohort16, kind="ddpm", conditions="[]", steps=2)
    ckpt = train(recipe, out=tmp_path / "run", device="cpu", progress=False, echo=lambda m: None).checkpoint
    code = main(["sample", str(ckpt), "--guidance-scale", "3", "--out", str(tmp_path / "p.png")])
    err = capsys.readouterr().err
    assert code == 2 and "--guidance-scale 3: " in err and "is unconditional, so there is nothing to guide" in err
    assert not (tmp_path / "p.png").exists()
