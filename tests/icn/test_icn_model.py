"""The ``icn`` kind on tiny shapes: trains in 3D and 2D on the ICN phantom, one model for every network; the
network condition changes samples; generate stores it and open_cohort names it; a bad name is one line; a
4D file of 53 components with its table trains."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from synthkit import open_cohort
from synthkit.cli import main
from synthkit.models.registry import load_generator
from synthkit.training.run import train

RECIPE = """
kind: icn
name: tiny-icn
space: {{shape: {shape}, spacing: {spacing}}}
data: {{manifest: {manifest}, conditions: {conditions}}}
unet: {{spatial_dims: {dims}, channels: [16, 32], attention_levels: [false, true], num_head_channels: 16,
        norm_num_groups: 8}}
scheduler: {{num_train_timesteps: 100}}
conditioning: {{fields: 1}}
training: {{steps: {steps}, batch_size: 4, log_every: 2, val_every: 100, checkpoint_every: 100, preview_every: 100,
           lr: 0.002, ema_decay: 0.9}}
sampling: {{steps: 3}}
"""


def recipe(folder: Path, manifest: Path, *, dims=3, shape="[16, 16, 16]", spacing=10, steps=3, extra="") -> Path:
    conditions = "[network]" if dims == 3 else "[network, slice_z]"
    p = folder / f"icn{dims}d.yaml"
    text = RECIPE.format(shape=shape, spacing=spacing, manifest=manifest, conditions=conditions, dims=dims, steps=steps)
    p.write_text(text + extra)
    return p


@pytest.fixture(scope="module")
def icn_cohort(tmp_path_factory) -> Path:
    from synthkit.data.icn_phantom import write_icn_cohort

    return write_icn_cohort(tmp_path_factory.mktemp("icn-phantom"), 4, spacing=10.0, seed=2, progress=False)


@pytest.fixture(scope="module")
def model3d(tmp_path_factory, icn_cohort) -> Path:
    folder = tmp_path_factory.mktemp("icn3d")
    res = train(
        recipe(folder, icn_cohort), out=folder / "run", device="cpu", progress=False, echo=lambda s: None, threads=1
    )
    return res.checkpoint


def test_one_3d_model_knows_every_network_and_the_condition_changes_samples(model3d):
    gen = load_generator(model3d)
    assert gen.kind == "icn" and gen.condition_names == ("network",) and len(gen.categories["network"]) == 13
    a = gen.sample(2, seeds=[5, 5], conditions={"network": np.array(["Visual", "DefaultMode"])})
    b = gen.sample(1, seeds=[5], conditions={"network": np.array(["Visual"])})
    assert a.images.shape == (2, 16, 16, 16) and a.images.min() >= 0 and a.images.max() <= 1
    np.testing.assert_array_equal(a.images[0], b.images[0])  # same seed, same network: the same map
    assert np.abs(a.images[0] - a.images[1]).mean() > 1e-4  # same seed, another network: another map
    # a network given by its index is the same network
    c = gen.sample(1, seeds=[5], conditions={"network": np.array([float(gen.categories["network"].index("Visual"))])})
    np.testing.assert_array_equal(c.images[0], b.images[0])


def generate_args(model, out, n: int, network: str) -> list[str]:
    return [
        "generate",
        "--model",
        str(model),
        "--n",
        str(n),
        "--out",
        str(out),
        "-c",
        f"network={network}",
        "--device",
        "cpu",
    ]


def test_generate_stores_the_network_and_open_cohort_names_it(model3d, tmp_path, capsys):
    code = main(generate_args(model3d, tmp_path / "s.zarr", 3, "Visual,DefaultMode"))
    assert code in (0, None), capsys.readouterr()
    cohort = open_cohort(tmp_path / "s.zarr")
    assert cohort.conditions["network"].tolist() == ["Visual", "DefaultMode", "Visual"]
    assert cohort[1]["network"] == "DefaultMode" and "Visual" in cohort.categories["network"]
    names = cohort.categories["network"]
    assert cohort.codes("network").tolist() == [
        names.index("Visual"),
        names.index("DefaultMode"),
        names.index("Visual"),
    ]
    ds = cohort.torch_dataset()
    assert float(ds[0]["network"]) == names.index("Visual")


def test_a_bad_network_name_is_one_line_listing_the_known_ones(model3d, tmp_path, capsys):
    code = main(generate_args(model3d, tmp_path / "s.zarr", 2, "DefaultMood"))
    text = "".join(capsys.readouterr())
    assert code == 2 and "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("synthkit: error:")]
    assert len(errors) == 1 and "'DefaultMood'" in errors[0] and "DefaultMode" in errors[0], text
    assert not (tmp_path / "s.zarr").exists()


def test_the_2d_model_draws_axial_slices_at_a_slice_position(tmp_path, icn_cohort):
    res = train(
        recipe(tmp_path, icn_cohort, dims=2, shape="[16, 16, 1]", extra="icn: {depth: 16}\n"),
        out=tmp_path / "run",
        device="cpu",
        progress=False,
        echo=lambda s: None,
        threads=1,
    )
    gen = load_generator(res.checkpoint)
    assert gen.condition_names == ("network", "slice_z") and gen.space.shape == (16, 16, 1)
    lo, hi = gen.covariates.ranges()["slice_z"]
    assert -60 < lo < hi < 90  # slices with brain, in MNI mm
    s = gen.sample(2, seeds=[1, 1], conditions={"network": np.array(["Visual"] * 2), "slice_z": np.array([lo, hi])})
    assert s.images.shape == (2, 16, 16, 1) and np.abs(s.images[0] - s.images[1]).mean() > 1e-4


def test_a_53_component_file_with_its_table_trains(tmp_path):
    from synthkit.data.icn_phantom import icn_space

    space = icn_space(20.0)
    rng = np.random.default_rng(0)
    rows = []
    for s in range(2):
        maps = rng.normal(size=(*space.shape, 53)).astype(np.float32)
        img = nib.Nifti1Image(maps, space.affine_array)
        img.set_sform(space.affine_array, code=4)
        nib.save(img, tmp_path / f"sub{s}_component_ica_s1_.nii.gz")
        rows.append({"subject_id": f"sub{s}", "image": f"sub{s}_component_ica_s1_.nii.gz", "components": "c.csv"})
    pd.DataFrame({"index": range(53), "name": [f"IC{i:02d}" for i in range(53)]}).to_csv(
        tmp_path / "c.csv", index=False
    )
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    res = train(
        recipe(tmp_path, tmp_path / "m.csv", shape="[8, 8, 8]", spacing=20, steps=2),
        out=tmp_path / "run",
        device="cpu",
        progress=False,
        echo=lambda s: None,
        threads=1,
    )
    gen = load_generator(res.checkpoint)
    assert len(gen.categories["network"]) == 53 and gen.categories["network"][52] == "IC52"
    assert gen.sample(1, seeds=[0], conditions={"network": np.array(["IC07"])}).images.shape == (1, 8, 8, 8)


def test_a_recipe_without_the_network_condition_is_one_line(tmp_path, icn_cohort, capsys):
    p = recipe(tmp_path, icn_cohort)
    p.write_text(p.read_text().replace("conditions: [network]", "conditions: []"))
    code = main(["train", str(p), "--out", str(tmp_path / "run")])
    text = "".join(capsys.readouterr())
    assert code == 2 and "Traceback" not in text and "add 'network' to data.conditions" in text, text
