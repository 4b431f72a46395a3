"""Load a generator for ``generate`` and ``sample`` so that a checkpoint with edited metadata is one line naming
the file and the field, never a traceback from deep inside the network code.

The metadata a generator checkpoint carries is checked before any weight is used: ``kind`` against its recipe,
``space`` (a valid ImageSpace whose shape is the recipe's), the recipe's sampling steps against its scheduler;
whatever else fails while loading or drawing the first sample is reported with the file and, where the error
names one, the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthkit.errors import CheckpointError, SynthkitError
from synthkit.models.base import Generator
from synthkit.models.registry import load_generator
from synthkit.space import ImageSpace


def check_checkpoint_meta(path: str | Path) -> None:
    """Refuse metadata whose fields contradict each other (edited by hand, or from another version)."""
    from synthkit.models.base import read_checkpoint_meta

    p = Path(path)
    meta = read_checkpoint_meta(p)
    kind = meta.get("kind")

    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(f"{p}: metadata field {field!r} {why}")

    recipe = meta.get("recipe")
    if not isinstance(recipe, dict):
        raise bad("recipe", "is missing (a synthkit checkpoint records the recipe it was trained with)")
    if recipe.get("kind") not in (None, kind):
        raise bad("kind", f"says {kind!r} but its recipe is a {recipe.get('kind')!r} recipe")
    if "space" not in meta:
        raise bad("space", "is missing")
    try:
        space = ImageSpace.from_dict(meta["space"])
    except SynthkitError as e:
        raise bad("space", f"is invalid ({e})") from None
    rspace = recipe.get("space")
    if isinstance(rspace, dict) and "shape" in rspace and list(rspace["shape"]) != list(space.shape):
        raise bad("space", f"has shape {list(space.shape)} but its recipe's space is {list(rspace['shape'])}")
    steps = (recipe.get("sampling") or {}).get("steps")
    total = (recipe.get("scheduler") or {}).get("num_train_timesteps", 1000)
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)
    if steps is not None:
        if not isinstance(steps, int) or isinstance(steps, bool) or not isinstance(total, int):
            raise bad("recipe.sampling.steps", f"is {steps!r}, not a whole number")
        if not 1 <= steps <= total:
            raise bad("recipe.sampling.steps", f"is {steps}; it must lie in 1..{total} (the scheduler's timesteps)")


def _field(e: BaseException) -> str:
    """What an error says about the field it tripped on."""
    errors = getattr(e, "errors", None)
    if callable(errors):  # pydantic ValidationError of the recipe
        first = errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        return f"metadata field 'recipe.{loc}': {first.get('msg', '')}"
    if isinstance(e, KeyError):
        return f"metadata field {e.args[0]!r} is missing"
    first = (str(e).splitlines() or [""])[0][:200]
    return f"its metadata does not fit its weights ({type(e).__name__}: {first})"


@contextmanager
def checkpoint_errors(model: str | Path) -> Iterator[None]:
    """Turn a non-synthkit error raised while loading or sampling ``model`` into one line naming it."""
    try:
        yield
    except SynthkitError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError, OverflowError) as e:
        if str(model) == "phantom":
            raise
        raise CheckpointError(f"{model}: {_field(e)}") from None


def load_checked(model: str | Path, *, spacing: float | None = None, device: str = "cpu") -> Generator:
    """:func:`load_generator` with the metadata checked first and errors turned into one line."""
    if str(model) != "phantom":
        check_checkpoint_meta(model)
    with checkpoint_errors(model):
        return load_generator(model, spacing=spacing, device=device)


def probe_sample(gen: Generator, model: str | Path, seed: int, conditions: dict[str, Any]) -> Any:
    """Draw one sample (the first of the plan) to learn what the generator returns; errors name the file."""
    with checkpoint_errors(model):
        return gen.sample(1, seeds=[seed], conditions=conditions)
