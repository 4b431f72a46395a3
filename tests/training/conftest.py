from pathlib import Path

import pytest

TINY = """
kind: {kind}
name: tiny
space: {{shape: [16, 24, 16], spacing: 10}}
data: {{manifest: {manifest}, conditions: {conditions}}}
autoencoder: {{channels: [8, 16], latent_channels: 2, attention_levels: [false, false], norm_num_groups: 8}}
autoencoder_training: {{steps: {ae_steps}, batch_size: 2, log_every: 2, val_every: 4, checkpoint_every: 4, preview_every: 100, lr: 0.002}}
unet: {{channels: [16, 32], attention_levels: [false, true], num_head_channels: 16, norm_num_groups: 8}}
scheduler: {{num_train_timesteps: 100, prediction_type: {prediction}}}
training: {{steps: {steps}, batch_size: 4, log_every: 2, val_every: 4, checkpoint_every: 4, preview_every: 100, lr: 0.002, ema_decay: 0.9}}
sampling: {{steps: 4}}
"""


def write_recipe(
    folder: Path,
    manifest: Path,
    *,
    kind="ldm",
    conditions="[age, sex]",
    steps=8,
    ae_steps=4,
    prediction="epsilon",
    extra="",
) -> Path:
    if kind == "ddpm":  # image-space attention is the slow part on a CPU: leave it out of the tests
        text = TINY.replace("autoencoder: ", "#").replace("autoencoder_training: ", "#")
        text = text.replace(
            "attention_levels: [false, true], num_head_channels: 16", "attention_levels: [false, false]"
        )
    else:
        text = TINY
    p = folder / f"{kind}.yaml"
    p.write_text(
        text.format(
            kind=kind, manifest=manifest, conditions=conditions, steps=steps, ae_steps=ae_steps, prediction=prediction
        )
        + extra
    )
    return p


@pytest.fixture(scope="session")
def cohort16(tmp_path_factory):
    from synthkit.data.phantom import default_space, write_cohort

    out = tmp_path_factory.mktemp("train-phantoms")
    return write_cohort(out, 16, space=default_space(10.0, (16, 24, 16)), seed=1, progress=False)


@pytest.fixture(scope="session")
def trained_ldm(tmp_path_factory, cohort16):
    from synthkit.training.run import train

    folder = tmp_path_factory.mktemp("ldm-run")
    recipe = write_recipe(folder, cohort16, extra="conditioning: {dropout: 0.2}\n")
    return train(recipe, out=folder / "run", device="cpu", progress=False, echo=lambda m: None)
