"""Brain age: does a synthetic 75-year-old look 75? A brain-age model (``synthkit train brain-age``) predicts
the age of every audited sample; the requested age is the truth. The model's error on real images — its
held-out error at training, else on the loaded reference (recorded vs predicted) — is the ceiling against which
the verdict is judged."""

from __future__ import annotations

from typing import Any

import numpy as np

from synthkit.audit.context import AuditContext, Part
from synthkit.audit.verdict import CLOSE, FAR, cannot_tell, verdict
from synthkit.errors import UsageError
from synthkit.metrics.brain_age import load_brain_age, regression_stats
from synthkit.space import ImageSpace
from synthkit.viz import scatter


def brain_age_verdict(section: dict[str, Any], ctx: AuditContext) -> dict[str, Any]:
    k = ctx.recipe.thresholds.brain_age_max_mae_ratio
    rule = f"MAE(requested, predicted) ≤ {k:g} × the model's MAE on real images"
    syn = section["synthetic_requested_vs_predicted"]
    # the model's error on real images it was not fitted to; the loaded reference may include its training set
    ceiling = section.get("held_out_at_training") or section.get("reference_recorded_vs_predicted")
    if not ceiling or not ceiling.get("mae"):
        return cannot_tell("no real images with a recorded age to measure the model's own error on", rule)
    if syn["n"] < 10:
        return cannot_tell(f"only {syn['n']} synthetic samples (need 10)", rule)
    ratio = syn["mae"] / ceiling["mae"]
    why = f"synthetic MAE {syn['mae']:.2f} years is {ratio:.2f}× the model's MAE on real images ({ceiling['mae']:.2f})"
    evidence = {"synthetic_mae": syn["mae"], "real_mae": ceiling["mae"], "ratio": ratio, "r": syn.get("pearson_r")}
    v = verdict(CLOSE if ratio <= k else FAR, why, rule, evidence)
    if ceiling["n"] < ctx.recipe.thresholds.min_real_half:
        v["confidence"] = "low"
        v["low_confidence"] = [f"low confidence: the model's MAE on real images rests on {ceiling['n']} images"]
    return v


def run(ctx: AuditContext) -> Part:
    """Predicted vs requested age of the audited samples, with the reference as ceiling."""
    part = Part()
    path = ctx.options.brain_age
    if path is None:
        part.verdicts["brain_age"] = cannot_tell("no brain-age model given (--brain-age)")
        return part
    model, meta = load_brain_age(path)
    mspace, space = ImageSpace.from_dict(meta["space"]), ctx.cohort.space
    if mspace.shape != space.shape or mspace.spacing != space.spacing:
        raise UsageError(
            f"{path}: brain-age model space {mspace.describe()} differs from the store's {space.describe()}"
        )
    if "age" not in ctx.cohort.condition_names:
        part.metrics["brain_age"] = {"skipped": "the store has no 'age' condition"}
        part.verdicts["brain_age"] = cannot_tell("the store has no 'age' condition")
        return part
    ctx.options.echo(f"brain age: predicting {len(ctx.synthetic)} synthetic ages ({meta['kind']})")
    requested = ctx.cohort.conditions["age"].to_numpy(float)[ctx.positions]
    predicted = model.predict(ctx.synthetic)
    section: dict[str, Any] = {
        "model": str(path),
        "kind": meta["kind"],
        "held_out_at_training": meta.get("held_out"),
        "synthetic_requested_vs_predicted": regression_stats(requested, predicted),
    }
    ages = ctx.reference_column("age")
    rows = np.flatnonzero(np.isfinite(ages)) if ages is not None else np.arange(0)
    if rows.size >= 3:
        section["reference_recorded_vs_predicted"] = regression_stats(ages[rows], model.predict(ctx.reference[rows]))
    part.figures["brain_age"] = scatter(
        requested,
        predicted,
        ctx.out / "brain_age.png",
        xlabel="requested age (years)",
        ylabel="predicted age",
        title=f"r = {section['synthetic_requested_vs_predicted']['pearson_r']:.3f}",
    )
    part.metrics["brain_age"] = section
    part.verdicts["brain_age"] = brain_age_verdict(section, ctx)
    return part
