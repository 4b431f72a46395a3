"""Recipes: YAML files validated by pydantic models (``extra="forbid"``: a misspelt key is an error).

``load_recipe(path)`` reads a training recipe (``kind: ddpm``, ``ldm``, ``deformation`` or ``icn``) with
``yaml.safe_load``; a bad file fails with one line naming the file, the field path and what was expected, e.g.
``recipes/x.yaml: training.lr: Input should be a valid number (got 'fast')``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from synthkit.errors import RecipeError
from synthkit.space import ImageSpace

M = TypeVar("M")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class SpaceConfig(Strict):
    """The ImageSpace of a recipe: shape (voxels) and spacing (mm), centred at the world origin."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @field_validator("spacing", mode="before")
    @classmethod
    def _scalar_spacing(cls, v: Any) -> Any:
        return (v, v, v) if isinstance(v, int | float) else v

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 1 for s in v):
            raise ValueError("every size must be positive")
        return v

    def to_space(self) -> ImageSpace:
        return ImageSpace.centered(self.shape, self.spacing)


class PreprocessConfig(Strict):
    """How images are brought into the space (``synthkit/data/preprocess.py``; recorded in the checkpoint).

    ``mode``: ``auto`` registers real scans and only resamples images whose NIfTI header marks them as in a
    template space (sform/qform code 4 or 5, as ``synthkit phantom`` and FSL write); ``register`` and
    ``resample`` force one pipeline for every image.
    """

    mode: Literal["auto", "register", "resample"] = "auto"
    #: ``affine`` brings every brain to the template's size; ``rigid`` keeps each head's size
    registration: Literal["affine", "rigid"] = "affine"
    bias_correction: bool = True  # N4, before registration
    #: ``resample``: centre each image's foreground in the grid; off keeps the image where its header puts it
    #: (label maps on the same grid then stay aligned with it)
    centre: bool = True
    #: ``resample`` mode: the intensity percentiles scaled to [0, 1]
    lower_percentile: float = Field(0.5, ge=0, le=50)
    upper_percentile: float = Field(99.5, ge=50, le=100)
    #: ``signed``: signed maps (ICA components, z-maps) in MNI space, kept signed: brain-masked and divided by
    #: their largest |value| (the ``icn`` family's default)
    intensity: Literal["percentile", "signed"] = "percentile"


class DataConfig(Strict):
    """Where the training images are and which covariates condition the model."""

    manifest: Path
    conditions: list[str] = []
    #: used when the manifest has no ``split`` column: this fraction of subjects validates
    val_fraction: float = Field(0.1, ge=0.0, le=0.5)
    preprocess: PreprocessConfig = PreprocessConfig()
    cache_dir: Path | None = None

    @field_validator("conditions")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("conditions must be distinct")
        return v


class SchedulerConfig(Strict):
    """A MONAI noise scheduler (``DDPMScheduler``/``DDIMScheduler`` or ``RFlowScheduler``)."""

    kind: Literal["ddpm", "rflow"] = "ddpm"
    num_train_timesteps: int = Field(1000, ge=1)
    schedule: Literal["linear_beta", "scaled_linear_beta", "cosine"] = "scaled_linear_beta"
    beta_start: float = Field(0.0015, gt=0, lt=1)
    beta_end: float = Field(0.0205, gt=0, lt=1)
    #: v-prediction by default: with ε-prediction an ε error at large t is amplified ~1/√ᾱ (≈100× at t = 999 of
    #: the scaled-linear schedule) in the x₀ estimate, and short-trained models drift off the data
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "v_prediction"


class UNetConfig(Strict):
    """MONAI ``DiffusionModelUNet`` settings."""

    channels: list[int] = [32, 64, 64]
    attention_levels: list[bool] = [False, False, True]
    num_head_channels: int | list[int] = 32
    num_res_blocks: int = Field(1, ge=1)
    norm_num_groups: int = Field(16, ge=1)
    spatial_dims: Literal[2, 3] = 3

    @model_validator(mode="after")
    def _lengths(self) -> UNetConfig:
        if len(self.attention_levels) != len(self.channels):
            raise ValueError("attention_levels needs one entry per level of channels")
        if isinstance(self.num_head_channels, list) and len(self.num_head_channels) != len(self.channels):
            raise ValueError("num_head_channels needs one entry per level of channels")
        heads = self.num_head_channels
        heads = heads if isinstance(heads, list) else [heads] * len(self.channels)
        last = len(self.channels) - 1
        for i, (c, h, att) in enumerate(zip(self.channels, heads, self.attention_levels, strict=True)):
            if (att or i == last) and (h <= 0 or c % h):
                raise ValueError(
                    f"num_head_channels at level {i} must be a positive divisor of its {c} channels "
                    "(attention levels and the deepest level, where MONAI's middle block attends)"
                )
        if any(c % self.norm_num_groups for c in self.channels):
            raise ValueError("every channel count must be divisible by norm_num_groups")
        return self


class AutoencoderConfig(Strict):
    """MONAI ``AutoencoderKL`` settings (stage 1 of the LDM)."""

    channels: list[int] = [32, 64, 64]
    latent_channels: int = Field(3, ge=1)
    num_res_blocks: int = Field(1, ge=1)
    attention_levels: list[bool] = [False, False, False]
    norm_num_groups: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _lengths(self) -> AutoencoderConfig:
        if len(self.attention_levels) != len(self.channels):
            raise ValueError("attention_levels needs one entry per level of channels")
        return self


class TrainingConfig(Strict):
    """The optimisation loop."""

    steps: int = Field(1000, ge=1)
    batch_size: int = Field(2, ge=1)
    lr: float = Field(1e-4, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    grad_clip: float | None = Field(1.0, gt=0)
    amp: bool = True  # bf16/fp16 autocast on CUDA only
    log_every: int = Field(10, ge=1)
    val_every: int = Field(100, ge=1)
    preview_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    seed: int = Field(0, ge=0)
    num_workers: int = Field(0, ge=0)
    #: learning rate: linear warm-up over ``warmup_steps``, then constant or cosine decay to ``lr_min_fraction``·lr
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    lr_min_fraction: float = Field(0.05, ge=0, le=1)


class AutoencoderTrainingConfig(TrainingConfig):
    """Stage 1 of the LDM: L1 + KL + patch-adversarial (+ perceptual when its weights are present)."""

    kl_weight: float = Field(1e-6, ge=0)
    #: the posterior σ: "learned" (MONAI's default, starting at ≈ 1) or fixed at this value, the KL term then only
    #: keeping μ near the origin. A learned σ drowns a short run's latents in noise: after 100 steps σ ≈ 0.85
    #: against a spread of μ across images of 0.09, so the decoder learns to ignore its input; started small, σ
    #: climbs back to 0.74 within 200 steps, because Adam turns the KL's tiny but consistent gradient on the σ
    #: layer into full-size steps (measured on 4 mm phantoms, recipes/bench-conditioning-4mm.yaml).
    posterior_sigma: float | Literal["learned"] = 0.05
    adv_weight: float = Field(0.01, ge=0)
    adv_start: int = Field(0, ge=0)  # step at which the discriminator joins
    disc_lr: float = Field(1e-4, gt=0)
    perceptual_weight: float = Field(0.0, ge=0)
    perceptual_weights: Path | None = None  # a local weights file; perceptual loss is off without it


class ConditioningConfig(Strict):
    """How covariates enter the UNet: Pinaya et al. used concatenation *and* cross-attention; ``embed`` adds
    an MLP of the conditions to the timestep embedding, which every residual block receives (as class
    conditioning in Dhariwal & Nichol's ADM)."""

    concat: bool = True
    crossattn: bool = True
    embed: bool = True
    #: learned condition fields: an MLP of the context vector draws this many full-resolution maps that enter
    #: the network as input channels (0: none). Constant channels, cross-attention and the embedding all give
    #: the conditions to every voxel alike; a layout that depends on the condition (where network k's nodes
    #: lie) must then be built from position by the network itself, which a small UNet learns very slowly
    #: (benchmarks/RESULTS.md, ICN). A field is that layout, learned directly.
    fields: int = Field(0, ge=0, le=16)
    dropout: float = Field(0.1, ge=0, le=1)  # probability of dropping conditions (classifier-free guidance)


class SamplingConfig(Strict):
    sampler: Literal["ddpm", "ddim", "dpmpp_2m", "rflow"] = "ddim"
    steps: int = Field(50, ge=1)
    eta: float = Field(0.0, ge=0, allow_inf_nan=False)
    guidance_scale: float = Field(1.0, ge=0, allow_inf_nan=False)


def given_sampling(sampler: str | None, steps: int | None, guidance_scale: float | None) -> dict[str, Any]:
    """The sampling settings given on a command line (``sample``, ``generate``); None leaves the recipe's."""
    given = {"sampler": sampler, "steps": steps, "guidance_scale": guidance_scale}
    return {k: v for k, v in given.items() if v is not None}


def sampling_flag(field: str) -> str:
    """The command-line option that sets a sampling field: ``guidance_scale`` → ``--guidance-scale``."""
    return "--" + field.replace("_", "-")


class _RecipeBase(Strict):
    name: str = "run"
    space: SpaceConfig
    data: DataConfig
    unet: UNetConfig = UNetConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    training: TrainingConfig = TrainingConfig()
    sampling: SamplingConfig = SamplingConfig()
    conditioning: ConditioningConfig = ConditioningConfig()


def _check_divisible(shape: tuple[int, ...], levels: int, what: str) -> None:
    f = 2 ** (levels - 1)
    if any(s % f for s in shape):
        raise ValueError(
            f"{what} of shape {list(shape)} must be divisible by {f} in every dimension for {levels} resolution "
            f"levels (change the space shape or the number of channels entries)"
        )


def _spatial(recipe: _RecipeBase) -> tuple[int, ...]:
    shape = recipe.space.shape
    if recipe.unet.spatial_dims == 2:
        if shape[2] != 1:
            raise ValueError("a 2D model (unet.spatial_dims: 2) needs a space of shape [X, Y, 1]")
        return shape[:2]
    return shape


class DDPMRecipe(_RecipeBase):
    """Image-space DDPM (MONAI-DDPM paper)."""

    kind: Literal["ddpm"]

    @model_validator(mode="after")
    def _shapes(self) -> DDPMRecipe:
        _check_divisible(_spatial(self), len(self.unet.channels), "space")
        return self


class LDMRecipe(_RecipeBase):
    """Latent diffusion with an AutoencoderKL (Pinaya et al. 2022)."""

    kind: Literal["ldm"]
    autoencoder: AutoencoderConfig = AutoencoderConfig()
    autoencoder_training: AutoencoderTrainingConfig = AutoencoderTrainingConfig()
    #: what the latent diffusion model learns: the posterior means (default) or draws μ + σ·ε. Draws from a
    #: briefly trained autoencoder are about half encoder noise (σ ≈ 0.7 against a spread of μ of 0.66 after 500
    #: steps), which the diffusion model cannot denoise.
    latents: Literal["mean", "sample"] = "mean"

    @model_validator(mode="after")
    def _shapes(self) -> LDMRecipe:
        spatial = _spatial(self)
        _check_divisible(spatial, len(self.autoencoder.channels), "space")
        f = 2 ** (len(self.autoencoder.channels) - 1)
        _check_divisible(tuple(s // f for s in spatial), len(self.unet.channels), "the latent")
        return self


class RegistrationConfig(Strict):
    """Stage 1 of ``deformation``: template → subject registration, a stationary velocity field per subject on
    a grid ``grid_factor`` times coarser than the image, found by optimisation (Adam on LNCC + bending energy),
    several subjects at once."""

    grid_factor: int = Field(4, ge=1)
    iterations: int = Field(100, ge=1)
    lr: float = Field(0.5, gt=0)  # Adam's step size, in voxels of the grid the loss is computed on
    #: the loss is first computed at 1/downsample of the recipe's resolution (anti-aliased) ...
    downsample: int = Field(2, ge=1)
    #: ... then refined at full resolution for this many iterations (8× the cost of one downsampled iteration;
    #: on 4 mm phantoms 10 of them raise grey-matter Dice from 0.85 to 0.90, see benchmarks/RESULTS.md)
    refine_iterations: int = Field(10, ge=0)
    similarity: Literal["lncc", "mse"] = "lncc"
    ncc_kernel: int = Field(3, ge=3)
    bending_weight: float = Field(0.003, ge=0)
    integration_steps: int = Field(7, ge=0)  # scaling and squaring: the field is divided by 2^steps
    batch_size: int = Field(8, ge=1)


class DeformationRecipe(_RecipeBase):
    """Diffusion over template deformations (the cortex-level deformation-diffusion paper's design, made to
    work): stage 1 registers the template to every subject, stage 2 is the diffusion core over the fields."""

    kind: Literal["deformation"]
    #: the template: the phantom's (MNI152 2009a T1 and its tissue labels, at the cohort's mean head size)
    template: Literal["mni152"] = "mni152"
    #: the template is kept this many times finer than the grid (same field of view) and sampled at the warped
    #: positions: warping a template already on the grid blurs its thin grey matter (Dice of the warped labels
    #: at 4 mm with the true deformation: 0.85 on the grid, 0.93 twice finer, 0.97 four times finer)
    template_oversample: int = Field(2, ge=1, le=4)
    registration: RegistrationConfig = RegistrationConfig()
    #: fit per-tissue intensities and noise on the training set and give each sample its own
    intensity_model: bool = True

    @model_validator(mode="after")
    def _shapes(self) -> DeformationRecipe:
        if self.unet.spatial_dims != 3:
            raise ValueError("a deformation model is 3D (unet.spatial_dims: 3)")
        f = self.registration.grid_factor
        if any(s % f for s in self.space.shape):
            raise ValueError(f"space shape {list(self.space.shape)} must be divisible by registration.grid_factor {f}")
        _check_divisible(tuple(s // f for s in self.space.shape), len(self.unet.channels), "the velocity grid")
        return self


class ICNConfig(Strict):
    """What makes a recipe an ``icn`` model: the network condition and, for a 2D model, its slices."""

    #: the manifest column naming each map's network (a categorical condition, by name on the command line)
    network_column: str = "network"
    #: a 2D model (space [X, Y, 1]) trains on the axial slices of an [X, Y, depth] grid, each slice's z position
    #: (MNI mm) a condition (``slice_z``); those with less brain than this fraction of the largest slice's are left out
    depth: int | None = Field(None, ge=1)
    min_slice_brain_fraction: float = Field(0.25, ge=0, le=1)


class ICNRecipe(_RecipeBase):
    """Image-space DDPM of fMRI intrinsic connectivity network maps, one model for every network, conditioned on
    the network (the ICN DDPM paper, papers/ddpm-fmri-icn.txt, trained one model per network)."""

    kind: Literal["icn"]
    icn: ICNConfig = ICNConfig()

    @model_validator(mode="before")
    @classmethod
    def _signed_by_default(cls, raw: Any) -> Any:
        """Maps are signed: the preprocessing keeps the sign unless the recipe says otherwise."""
        if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
            pre = raw["data"].get("preprocess")
            if pre is None or isinstance(pre, dict):
                raw = {**raw, "data": {**raw["data"], "preprocess": {"intensity": "signed", **(pre or {})}}}
        return raw

    @model_validator(mode="after")
    def _shapes(self) -> ICNRecipe:
        net = self.icn.network_column
        if net not in self.data.conditions:
            raise ValueError(f"an icn model is conditioned on its network: add {net!r} to data.conditions")
        if self.data.preprocess.intensity != "signed":
            raise ValueError("ICN maps are signed: data.preprocess.intensity must be 'signed'")
        two_d = self.unet.spatial_dims == 2
        if two_d and self.icn.depth is None:
            raise ValueError("a 2D icn model needs icn.depth (the axial slices of the grid it learns from)")
        if two_d and "slice_z" not in self.data.conditions:
            raise ValueError("a 2D icn model is conditioned on its slice: add 'slice_z' to data.conditions")
        if not two_d and self.icn.depth is not None:
            raise ValueError("icn.depth is for a 2D model (unet.spatial_dims: 2) only")
        _check_divisible(_spatial(self), len(self.unet.channels), "space")
        return self

    def data_space(self) -> ImageSpace:
        """The grid maps are preprocessed into: the space, or [X, Y, depth] for a 2D model."""
        if self.icn.depth is None:
            return self.space.to_space()
        x, y, _ = self.space.shape
        return ImageSpace.centered((x, y, self.icn.depth), self.space.spacing)


Recipe = Annotated[DDPMRecipe | LDMRecipe | DeformationRecipe | ICNRecipe, Field(discriminator="kind")]
_RECIPE = TypeAdapter(Recipe)


def load_recipe(path: str | Path) -> DDPMRecipe | LDMRecipe | DeformationRecipe | ICNRecipe:
    """Read and validate a training recipe; relative data paths are resolved against the recipe's folder."""
    p = Path(path)
    raw = read_yaml(p)
    recipe = validate(_RECIPE, raw, p)
    if not recipe.data.manifest.is_absolute():
        recipe.data.manifest = (p.parent / recipe.data.manifest).resolve()
    return recipe


def read_yaml(path: Path) -> Any:
    if not path.exists():
        raise RecipeError(f"{path}: file not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read ({e})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RecipeError(f"{path}: {where}not valid YAML ({problem})") from None


def validate(model: type[M] | TypeAdapter, raw: Any, path: Path | str) -> M:
    """Validate ``raw`` against a model, turning pydantic's report into one line per problem."""
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    if raw is None:
        raise RecipeError(f"{path}: the file is empty")
    try:
        return adapter.validate_python(raw)
    except ValidationError as e:
        raise RecipeError(f"{path}: " + "; ".join(_describe(err) for err in e.errors())) from None


def _describe(err: Any) -> str:
    # Drop discriminator tags ("ldm") and union branch names from the location.
    loc = [str(x) for x in err["loc"] if not (isinstance(x, str) and x in ("ddpm", "ldm", "deformation", "icn"))]
    where = ".".join(loc) if loc else "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (not part of the schema; check its spelling)"
    elif err["type"] == "missing" and loc and loc[-1].isdigit():
        where, msg = ".".join(loc[:-1]), f"needs at least {int(loc[-1]) + 1} values"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        where, msg = ".".join([*loc, "kind"]), "must be one of: ddpm, ldm, deformation, icn"
    got = err.get("input")
    quiet = err["type"] in ("missing", "extra_forbidden") or isinstance(got, dict | list | tuple)
    shown = "" if quiet else f" (got {got!r})"
    return f"{where}: {msg}{shown}"


AuditMetric = Literal["fid", "mmd", "mmd_images", "ms_ssim", "4gr_ssim", "psnr", "variance"]
ALL_AUDIT_METRICS: tuple[str, ...] = ("fid", "mmd", "mmd_images", "ms_ssim", "4gr_ssim", "psnr", "variance")


class AuditThresholds(Strict):
    """When a verdict reads "close to real" or "far from real" (stated on the report page)."""

    #: realism: synthetic-vs-real FID over the real-vs-real FID; close when the ratio's 95 % CI lies at or below
    #: this, far when it lies above, cannot tell when it straddles it
    realism_max_ratio: float = Field(2.0, gt=0)
    #: diversity: dissimilarity (1 − MS-SSIM) of synthetic pairs over that of real pairs; close inside
    #: [1/x, x] (below: collapse, above: excess), by the same CI rule
    diversity_max_ratio: float = Field(2.0, gt=1)
    #: conditioning: Pearson r of requested vs measured volume, for every volume condition
    conditioning_min_r: float = Field(0.8, ge=-1, le=1)
    #: brain age: MAE of requested vs predicted age over the model's MAE on real images
    brain_age_max_mae_ratio: float = Field(1.5, gt=0)
    #: memorisation: fraction of synthetic samples closer to a training image than any held-out real image is,
    #: above the 1/(held-out + 1) expected by chance
    memorisation_max_fraction: float = Field(0.05, ge=0, le=1)
    #: real-vs-real rows resting on fewer images per half (brain-age and memorisation baselines on fewer real
    #: images) are marked low-confidence
    min_real_half: int = Field(50, ge=2)


class AuditRecipe(Strict):
    """What ``synthkit audit`` computes (``--recipe audit.yaml``; command-line options override it)."""

    metrics: list[AuditMetric] = list(ALL_AUDIT_METRICS)
    n_synthetic: int = Field(1000, ge=2)  # samples drawn from the store (all if fewer)
    n_reference: int | None = Field(None, ge=4)  # reference images used (all if None)
    n_pairs: int = Field(1000, ge=1)  # random distinct pairs for MS-SSIM / 4-G-R-SSIM diversity (Pinaya: 1000)
    ssim_kernel: int = Field(7, ge=1)  # shrunk automatically for small volumes
    bootstrap: int = Field(50, ge=0)  # resamples for 95 % confidence intervals of FID / MMD
    variance_samples: int = Field(50, ge=2)  # the ICN paper's variance heatmaps use 50
    batch_size: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)
    only_qc_pass: bool = True
    #: conditioning check: segment this many synthetic (and reference) images when the store has volume conditions
    conditioning: bool = True
    n_segment: int = Field(100, ge=3)
    #: generate a few samples beyond the training range (Pinaya's Fig. 4) when the store's generator can be loaded
    extrapolation: bool = True
    extrapolation_per_level: int = Field(3, ge=1)
    #: the thresholds behind the verdicts at the top of the report
    thresholds: AuditThresholds = AuditThresholds()


def load_audit_recipe(path: str | Path) -> AuditRecipe:
    p = Path(path)
    return validate(AuditRecipe, read_yaml(p), p)
