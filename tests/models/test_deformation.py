"""The deformation family's pieces: warping, Jacobians, registration that recovers a known field, the
intensity model, and a trained model's samples (images with label maps and their delivered volumes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthkit.config import RegistrationConfig
from synthkit.data.phantom import default_space
from synthkit.models.deformation import (
    IntensityModel,
    Warper,
    folding_fraction,
    jacobian_determinant,
    one_hot,
    warp_labels,
)
from synthkit.training.registration import dice, register, template_volumes

SPACE = default_space(8.0)  # 20×28×20


@pytest.fixture(scope="module")
def template():
    return template_volumes(SPACE)


def test_zero_velocity_is_the_identity(template):
    image, labels = template
    w = Warper(SPACE.shape)
    ddf = w.ddf(torch.zeros(1, 3, 5, 7, 5))
    assert float(ddf.abs().max()) == 0.0
    assert torch.allclose(w.warp(image, ddf), image, atol=1e-6)
    assert torch.equal(warp_labels(w, one_hot(labels), ddf), labels)


def test_a_finer_template_is_sampled_at_the_same_points():
    """A template on the refined grid (ImageSpace.refined) is sampled where the grid's own template would be:
    exactly at the grid's voxels with no displacement, and identically to MONAI's Warp on a linear ramp
    (trilinear interpolation is exact on it) under a random displacement."""
    fine = SPACE.refined(3)
    assert fine.shape == tuple(3 * (s - 1) + 1 for s in SPACE.shape)
    assert np.allclose(fine.world_coordinates()[:, ::3, ::3, ::3], SPACE.world_coordinates())
    w = Warper(SPACE.shape)
    ramp = lambda sp, f: torch.from_numpy(  # noqa: E731
        np.einsum("c,cijk->ijk", [0.2, -0.1, 0.3], np.indices(sp.shape, dtype=np.float32) / f)
    )[None, None].float()
    coarse, refined = ramp(SPACE, 1), ramp(fine, 3)
    assert torch.allclose(w.warp(refined, torch.zeros(1, 3, *SPACE.shape)), coarse, atol=1e-5)
    inner = (slice(None), slice(None), *(slice(3, -3),) * 3)  # away from the zero padding at the border
    ddf = torch.randn(2, 3, *SPACE.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(w.warp(refined, ddf)[inner], w.warp(coarse, ddf)[inner], atol=1e-4)


def test_resample_keeps_the_corners_and_filters_when_it_shrinks():
    from synthkit.training.registration import resample

    ramp = torch.linspace(0, 1, 21).reshape(1, 1, 21, 1, 1).expand(1, 1, 21, 5, 5).contiguous()
    half = resample(ramp, (11, 5, 5))
    # same field of view (the filter pads with zeros: brain images have a zero background; the ends differ)
    assert torch.allclose(half[0, 0, 1:-1, 2, 2], torch.linspace(0, 1, 11)[1:-1], atol=1e-4)
    noise = torch.randn(1, 1, 21, 21, 21, generator=torch.Generator().manual_seed(1))
    assert float(resample(noise, (6, 6, 6)).std()) < 0.6 * float(noise[..., ::4, ::4, ::4].std())  # anti-aliased


def test_jacobian_of_a_uniform_scaling():
    shape = (12, 14, 10)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij"))
    ddf = 0.1 * (grid - grid.mean(axis=(1, 2, 3), keepdims=True))  # x → 1.1 x about the centre
    assert np.allclose(jacobian_determinant(ddf), 1.1**3)
    assert folding_fraction(ddf) == 0.0
    assert folding_fraction(-2.0 * (grid - grid.mean(axis=(1, 2, 3), keepdims=True))) == 1.0  # x → -x folds


def test_registration_recovers_a_known_deformation(template):
    """Warp the template by a known smooth field; registering the template to the result must recover most
    of what the field moved (Dice of the tissue labels well above the unregistered overlap)."""
    image, labels = template
    w = Warper(SPACE.shape)
    g = torch.Generator().manual_seed(0)
    truth_v = torch.nn.functional.interpolate(
        torch.randn(2, 3, 3, 4, 3, generator=g) * 0.4, size=(5, 7, 5), mode="trilinear", align_corners=True
    )
    ddf = w.ddf(truth_v)
    subjects = w.warp(image, ddf)
    truth = warp_labels(w, one_hot(labels), ddf)[:, 0].numpy()
    cfg = RegistrationConfig(iterations=80, downsample=1, ncc_kernel=5, lr=0.5)
    v = register(image, subjects, cfg, (3, 5, 7, 5))
    got = warp_labels(w, one_hot(labels), w.ddf(v))[:, 0].numpy()
    before = np.mean([dice(labels[0, 0].numpy(), truth[i], 3) for i in range(2)])
    after = np.mean([dice(got[i], truth[i], 3) for i in range(2)])
    assert after > 0.85 and after > before + 0.1, (before, after)
    brain = torch.from_numpy(truth > 0)[:, None].expand(-1, 3, -1, -1, -1)
    error = (w.ddf(v) - ddf).abs()[brain].mean()
    assert float(error) < 1.0, float(error)  # voxels, mean over the brain


def test_intensity_model_draws_per_seed_and_round_trips():
    m = IntensityModel(np.array([0.3, 0.5, 0.8, 0.3]), np.array([0.35, 0.55, 0.8, 0.3]), np.eye(4) * 1e-4, 0.02, 0.005)
    m2 = IntensityModel.from_dict(m.to_dict())
    probs = np.zeros((5, 4, 4, 4))
    probs[3] = 1.0  # all white matter
    image = np.full((4, 4, 4), 0.8, dtype=np.float32)
    a, b, c = m.apply(image, probs, 1), m2.apply(image, probs, 1), m.apply(image, probs, 2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(float(a.mean()) - 0.8) < 0.1


def tiny_recipe(folder, training: str):
    """A tiny deformation recipe over 10 phantoms at 8 mm written in ``folder``; ``training``: its training
    block (YAML flow mapping, and anything after it)."""
    from synthkit.data.phantom import write_cohort

    manifest = write_cohort(folder / "phantoms", 10, space=SPACE, seed=5, progress=False)
    recipe = folder / "deformation.yaml"
    recipe.write_text(
        f"""
kind: deformation
name: tiny-deformation
space: {{shape: [20, 28, 20], spacing: 8}}
data: {{manifest: {manifest}, conditions: [age, ventricular_volume], preprocess: {{mode: resample, centre: false}}}}
registration: {{grid_factor: 2, iterations: 10, downsample: 1, batch_size: 8}}
unet: {{channels: [16, 32], attention_levels: [false, true], num_head_channels: 16, norm_num_groups: 8}}
scheduler: {{num_train_timesteps: 100}}
training: {training}
"""
    )
    return recipe


@pytest.fixture(scope="module")
def trained_deformation(tmp_path_factory):
    from synthkit.training.run import train

    folder = tmp_path_factory.mktemp("deformation")
    training = "{steps: 4, batch_size: 4, log_every: 2, val_every: 2, checkpoint_every: 4, preview_every: 4}"
    recipe = tiny_recipe(folder, training + "\nsampling: {sampler: dpmpp_2m, steps: 4}")
    return train(recipe, out=folder / "run", device="cpu", progress=False, echo=lambda m: None)


def test_trained_model_samples_brains_with_their_label_maps(trained_deformation):
    import csv

    from synthkit.models.registry import load_generator

    run = trained_deformation.out
    rows = list(csv.DictReader((run / "registration.csv").open()))
    assert len(rows) >= 8 and all(0 <= float(r["folding"]) < 0.05 for r in rows)
    assert all(0 < float(r["dice_wm"]) <= 1 for r in rows)
    gen = load_generator(trained_deformation.checkpoint)
    assert gen.kind == "deformation"
    s = gen.sample(
        3, seeds=[1, 2, 3], conditions={"age": np.array([50.0, 60, 70]), "ventricular_volume": np.full(3, 2e4)}
    )
    assert s.images.shape == (3, *SPACE.shape) and s.labels is not None and s.labels.shape == s.images.shape
    vv = SPACE.voxel_volume
    assert np.allclose(s.measures["delivered_ventricular_volume"], (s.labels == 4).sum((1, 2, 3)) * vv)
    assert (s.measures["delivered_brain_volume"] > 0).all()
    assert ((s.measures["folding_fraction"] >= 0) & (s.measures["folding_fraction"] < 0.05)).all()
    # the labels sit on the image: white matter is brighter than grey matter, which is brighter than CSF
    for img, lab in zip(s.images, s.labels, strict=True):
        assert img[lab == 3].mean() > img[lab == 2].mean() > img[lab == 1].mean()
    again = gen.sample(1, seeds=[2], conditions={"age": np.array([60.0]), "ventricular_volume": np.array([2e4])})
    assert np.array_equal(again.images[0], s.images[1])  # a sample is a function of its seed


def test_field_mean_recovers_a_linear_dependence_on_the_conditions():
    from synthkit.models.deformation import FieldMean

    g = torch.Generator().manual_seed(0)
    c = torch.rand(40, 2, generator=g)
    slope = torch.randn(2, 3 * 4 * 4 * 4, generator=g)
    fields = (0.5 + c @ slope).reshape(40, 3, 4, 4, 4) + 0.01 * torch.randn(40, 3, 4, 4, 4, generator=g)
    mean = FieldMean.fit(c, fields)
    new = torch.tensor([[0.2, 0.9]])
    want = (0.5 + new @ slope).reshape(1, 3, 4, 4, 4)
    assert torch.allclose(mean(new, 1), want, atol=0.02)
    assert torch.allclose(
        FieldMean.fit(None, fields)(None, 2), fields.mean(0, keepdim=True).expand(2, -1, -1, -1, -1), atol=1e-3
    )


def test_morph_writes_the_path_from_template_to_sample(trained_deformation, tmp_path):
    import nibabel as nib

    from synthkit.cli import main

    out = tmp_path / "morph"
    assert main(["morph", str(trained_deformation.checkpoint), "--frames", "3", "--out", str(out)]) == 0
    frames = sorted(out.glob("eta_*.nii.gz"))
    assert [f.name for f in frames] == ["eta_0.000.nii.gz", "eta_0.500.nii.gz", "eta_1.000.nii.gz"]
    assert (out / "morph.png").stat().st_size > 0
    first, last = (np.asarray(nib.load(f).dataobj) for f in (frames[0], frames[-1]))
    assert first.shape == SPACE.shape and not np.array_equal(first, last)


def test_morph_refuses_other_kinds(tmp_path, capsys):
    from synthkit.cli import main

    code = main(["morph", "phantom", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and "deformation" in err and "Traceback" not in err


def test_folding_fails_qc():
    from synthkit.generate.options import QCConfig

    image = np.zeros((8, 8, 8), dtype=np.float32)
    image[2:6, 2:6, 2:6] = np.random.default_rng(0).uniform(0.1, 0.9, (4, 4, 4))
    assert QCConfig().check(image, {"folding_fraction": 0.0}) is None
    assert "folds" in QCConfig().check(image, {"folding_fraction": 0.2})


def test_generate_stores_label_maps_that_verify_and_serve(trained_deformation, tmp_path):
    from synthkit.cli import main
    from synthkit.store.reader import open_cohort

    store = tmp_path / "c.zarr"
    args = ["generate", "--model", str(trained_deformation.checkpoint), "--n", "6", "--out", str(store)]
    assert main([*args, "--shard-size", "3", "--workers", "1"]) == 0
    assert main(["verify", str(store)]) == 0
    cohort = open_cohort(store)
    table = cohort.conditions
    assert {"delivered_ventricular_volume", "folding_fraction"} <= set(table.columns)
    labels = cohort.torch_dataset(with_labels=True)[0]["label"]
    assert tuple(labels.shape[-3:]) == SPACE.shape and int(labels.max()) == 4
    vv = SPACE.voxel_volume
    assert float((labels == 4).sum()) * vv == pytest.approx(table["delivered_ventricular_volume"].iloc[0])


def test_conditions_change_the_fields(trained_deformation):
    from synthkit.models.registry import load_generator

    gen = load_generator(trained_deformation.checkpoint)
    small = gen.velocity(1, [7], {"age": np.array([60.0]), "ventricular_volume": np.array([1e4])}, "cpu")
    large = gen.velocity(1, [7], {"age": np.array([60.0]), "ventricular_volume": np.array([4e4])}, "cpu")
    assert float((small - large).abs().max()) > 1e-3


def test_audit_reports_delivered_volumes_beside_measured(trained_deformation, tmp_path):
    """A store with label maps: the conditioning section adds requested vs delivered (over every sample) and
    delivered vs the segmenter's measurement (over the segmented ones), and draws the delivered scatter."""
    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe
    from synthkit.generate.engine import GenerateOptions, run
    from synthkit.store.reader import open_cohort

    store = tmp_path / "c.zarr"
    specs = ["ventricular_volume=uniform(15000,40000)", "age=uniform(50,75)"]
    opts = GenerateOptions(
        out=store, n=12, shard_size=6, model=str(trained_deformation.checkpoint), condition_specs=specs, device="cpu"
    )
    run(opts, progress=False, echo=lambda m: None)
    reference = next((trained_deformation.out.parent / "phantoms").glob("*.csv"))
    recipe = AuditRecipe(n_synthetic=12, n_pairs=5, bootstrap=2, metrics=["ms_ssim"], n_segment=8, extrapolation=False)
    res = run_audit(store, reference, tmp_path / "rep", recipe, progress=False, echo=lambda m: None)
    row = res.report["metrics"]["conditioning"]["conditions"]["ventricular_volume"]
    table = open_cohort(store).conditions
    want = np.corrcoef(table["ventricular_volume"], table["delivered_ventricular_volume"])[0, 1]
    assert row["synthetic_requested_vs_delivered"]["n"] == 12
    assert row["synthetic_requested_vs_delivered"]["pearson_r"] == pytest.approx(want)
    assert row["delivered_vs_measured"]["n"] == 8
    assert (tmp_path / "rep" / "delivered_ventricular_volume.png").exists()


def test_the_field_models_loss_falls(tmp_path):
    """40 steps of the diffusion stage over registered fields: the training loss and the validation loss (fixed
    timesteps and noise on held-out fields) both fall."""
    import csv

    from synthkit.training.run import train

    training = "{steps: 40, batch_size: 4, lr: 0.001, warmup_steps: 0, log_every: 5, val_every: 10,"
    recipe = tiny_recipe(tmp_path, training + " checkpoint_every: 40, preview_every: 40}")
    res = train(recipe, out=tmp_path / "run", device="cpu", progress=False, echo=lambda m: None)
    rows = [r for r in csv.DictReader((res.out / "metrics.csv").open()) if r["stage"] == "diffusion"]
    loss = [float(r["loss"]) for r in rows if r["loss"]]
    val = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert len(val) >= 3 and val[-1] < val[0], val
    assert np.mean(loss[-2:]) < loss[0], loss
