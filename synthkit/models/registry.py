"""``load_generator``: a model name (``phantom``) or a checkpoint path → a Generator."""

from __future__ import annotations

from pathlib import Path

from synthkit.errors import UsageError
from synthkit.models.base import Generator


def load_generator(model: str | Path = "phantom", *, spacing: float | None = None, device: str = "cpu") -> Generator:
    """Load the built-in phantom or a trained checkpoint.

    Args:
        model: ``"phantom"`` or the path of a ``.safetensors`` checkpoint.
        spacing: the phantom's voxel size in mm (default 4); a checkpoint fixes its own ImageSpace.
        device: where a checkpoint's network runs.
    """
    if str(model) == "phantom":
        from synthkit.models.phantom import PhantomGenerator

        return PhantomGenerator(spacing=4.0 if spacing is None else float(spacing))
    if spacing is not None:
        raise UsageError("--spacing applies to the phantom only; a checkpoint fixes its own ImageSpace")
    from synthkit.models.base import load_checkpoint

    path = Path(model)
    tensors, meta = load_checkpoint(path)
    kind = meta["kind"]
    if kind == "ddpm":
        from synthkit.models.ddpm import DDPMGenerator

        return DDPMGenerator.from_checkpoint(tensors, meta, path.resolve(), device)
    if kind == "ldm":
        from synthkit.models.ldm import LDMGenerator

        return LDMGenerator.from_checkpoint(tensors, meta, path.resolve(), device)
    if kind == "deformation":
        from synthkit.models.deformation import DeformationGenerator

        return DeformationGenerator.from_checkpoint(tensors, meta, path.resolve(), device)
    if kind == "icn":
        from synthkit.models.icn import ICNGenerator

        return ICNGenerator.from_checkpoint(tensors, meta, path.resolve(), device)
    if kind in ("autoencoder", "registration"):
        raise UsageError(f"{model}: a stage-1 checkpoint ({kind}) cannot generate; use the stage-2 model")
    raise UsageError(f"{model}: unknown model kind {kind!r} (this synthkit knows ddpm, ldm, deformation, icn)")
