from pathlib import Path

import pytest

from synthkit.config import DDPMRecipe, LDMRecipe, load_recipe
from synthkit.errors import RecipeError

GOOD = """
kind: ldm
name: tiny
space: {shape: [16, 16, 16], spacing: 4}
data: {manifest: cohort/manifest.csv, conditions: [age, sex]}
training: {steps: 5, batch_size: 2}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


def test_a_good_recipe_loads_with_defaults_and_resolved_paths(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert isinstance(r, LDMRecipe)
    assert r.space.spacing == (4.0, 4.0, 4.0)
    assert r.data.manifest == (tmp_path / "cohort/manifest.csv").resolve()
    assert r.conditioning.concat and r.conditioning.crossattn
    assert r.space.to_space().shape == (16, 16, 16)


def test_ddpm_kind_selects_the_ddpm_schema(tmp_path):
    r = load_recipe(write(tmp_path, GOOD.replace("kind: ldm", "kind: ddpm")))
    assert isinstance(r, DDPMRecipe)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "training_steps: 3\n", r"training_steps: unknown key"),
        (GOOD.replace("steps: 5", "stepz: 5"), r"training\.stepz: unknown key"),
        (GOOD.replace("batch_size: 2", "batch_size: two"), r"training\.batch_size: .*valid integer.*'two'"),
        (GOOD.replace("kind: ldm", "kind: gan"), r"kind: must be one of: ddpm, ldm"),
        (GOOD.replace("space: {shape: [16, 16, 16], spacing: 4}\n", ""), r"space: required key is missing"),
        (GOOD.replace("[16, 16, 16]", "[16, 16]"), r"space\.shape: needs at least 3 values"),
        ("kind: ldm\nspace: [1\n", r"line \d+: not valid YAML"),
        ("", r"the file is empty"),
    ],
)
def test_bad_recipes_name_the_file_the_field_and_the_expectation(tmp_path, text, expected):
    p = write(tmp_path, text)
    with pytest.raises(RecipeError, match=expected) as info:
        load_recipe(p)
    assert str(info.value).startswith(str(p))
    assert "\n" not in str(info.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_unet_levels_must_agree(tmp_path):
    text = GOOD + "unet: {channels: [16, 32], attention_levels: [false]}\n"
    with pytest.raises(RecipeError, match="unet: .*attention_levels"):
        load_recipe(write(tmp_path, text))


@pytest.mark.parametrize(
    "unet",
    [
        "{channels: [16, 32], attention_levels: [false, true], num_head_channels: 12}",
        "{channels: [16, 32], attention_levels: [false, false], num_head_channels: [0, 0]}",
    ],
)
def test_head_channels_must_divide_attending_levels_and_the_middle_block(tmp_path, unet):
    with pytest.raises(RecipeError, match=r"unet: .*num_head_channels at level 1 .*32 channels"):
        load_recipe(write(tmp_path, GOOD + f"unet: {unet}\n"))


def test_the_deepest_level_keeps_its_heads_for_the_middle_block(tmp_path):
    from synthkit.models.networks import build_unet

    r = load_recipe(
        write(
            tmp_path,
            GOOD + "unet: {channels: [16, 32], attention_levels: [false, false], "
            "num_head_channels: 16, norm_num_groups: 8}\n",
        )
    )
    net = build_unet(r.unet, 1, 1, 0, concat=False, crossattn=False)
    assert net.middle_block.attention.attn.num_heads == 2


def test_audit_thresholds_from_yaml_and_their_errors(tmp_path):
    from synthkit.config import load_audit_recipe

    good = tmp_path / "audit.yaml"
    good.write_text("n_pairs: 10\nthresholds:\n  realism_max_ratio: 1.5\n  min_real_half: 100\n")
    r = load_audit_recipe(good)
    assert r.thresholds.realism_max_ratio == 1.5 and r.thresholds.min_real_half == 100
    assert r.thresholds.diversity_max_ratio == 2.0  # unset fields keep their defaults
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds:\n  diversity_max_ratio: 0.5\n  realism_ratio: 2\n")
    with pytest.raises(RecipeError) as e:
        load_audit_recipe(bad)
    msg = str(e.value)
    assert "\n" not in msg and "diversity_max_ratio" in msg and "realism_ratio" in msg
