"""``synthkit audit``: load the synthetic subset and the reference once, run the sections, assemble the report.

Every metric in :mod:`synthkit.metrics` only sees arrays; each section (:mod:`synthkit.audit.sections`) takes
the loaded :class:`~synthkit.audit.context.AuditContext` and returns its part of ``report.json``, its verdicts
and its figures. The report opens with a verdict per question (:mod:`synthkit.audit.verdict`), then every
number with the subset, seed and sizes behind it; ``features.npz`` and ``pairs.npz`` hold what FID, MMD and
MS-SSIM were computed from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthkit.audit.context import SEED_OFFSETS, AuditContext, AuditOptions, Part, load_context
from synthkit.audit.sections import SECTIONS
from synthkit.audit.stats import json_default
from synthkit.audit.verdict import QUESTIONS, cannot_tell, cross_flags, thresholds_text
from synthkit.config import AuditRecipe


@dataclass
class AuditResult:
    report: dict[str, Any]
    out: Path
    figures: dict[str, Path] = field(default_factory=dict)


def assemble(ctx: AuditContext, parts: list[Part], timings: dict[str, float]) -> tuple[dict[str, Any], dict]:
    """The report dict from the sections' parts: verdicts first, then provenance, then every number."""
    metrics, verdicts, figures, warnings, top = {}, {}, {}, [], {}
    for p in parts:
        metrics.update(p.metrics)
        verdicts.update(p.verdicts)
        figures.update(p.figures)
        warnings += p.warnings
        top.update(p.top)
    if "timings_features" in top:
        timings["features"] = top.pop("timings_features")
    verdicts = {q: verdicts.get(q, cannot_tell("no section answered it")) for q in QUESTIONS}
    flags = cross_flags(verdicts, metrics, ctx.recipe.thresholds)
    r = ctx.recipe
    report = {
        "verdicts": verdicts,
        "flags": flags,
        "thresholds": r.thresholds.model_dump() | {"rules": thresholds_text(r.thresholds)},
        "store": str(ctx.store),
        "reference": str(ctx.reference_path),
        "reference_manifest_sha256": ctx.manifest_sha256,
        "space": ctx.cohort.space.to_dict(),
        "generator": ctx.cohort.info.generator,
        "counts": {
            "synthetic": len(ctx.synthetic),
            "synthetic_available": ctx.n_available,
            "reference": len(ctx.reference),
            "reference_in_manifest": len(ctx.manifest),
            "real_half": len(ctx.half_a),
            "pairs": r.n_pairs,
        },
        "subsets": ctx.provenance(),
        "seed": r.seed,
        "seeds": {k: r.seed + v for k, v in SEED_OFFSETS.items()},
        "recipe": r.model_dump(),
        "feature_extractor": top.pop("feature_extractor", None),
        "metrics": metrics,
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        "warnings": warnings,
        "files": [f for f in ("features.npz", "pairs.npz") if (ctx.out / f).exists()],
        "figures": {k: v.name for k, v in figures.items()},
    }
    return report | top, figures


def run_audit(
    store: str | Path,
    reference: str | Path,
    out: str | Path,
    recipe: AuditRecipe | None = None,
    *,
    med3d_weights: str | Path | None = None,
    synthseg_model: str | Path | None = None,
    brain_age: str | Path | None = None,
    training: str | Path | None = None,
    show_training_ids: bool = False,
    device: str = "cpu",
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> AuditResult:
    """Audit a store against a reference manifest; writes report.json, report.html, features.npz, pairs.npz and
    figures into ``out``."""
    from synthkit.audit.report import write_html

    def path(p: str | Path | None) -> Path | None:
        return None if p is None else Path(p)

    options = AuditOptions(
        path(med3d_weights),
        path(synthseg_model),
        path(brain_age),
        path(training),
        show_training_ids,
        device,
        progress,
        echo,
    )
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    ctx = load_context(store, reference, out_p, recipe or AuditRecipe(), options)
    timings = {"load": time.perf_counter() - t}
    parts = []
    for name, section in SECTIONS:
        t = time.perf_counter()
        parts.append(section(ctx))
        timings[name] = time.perf_counter() - t
    report, figures = assemble(ctx, parts, timings)
    (out_p / "report.json").write_text(json.dumps(report, indent=2, default=json_default))
    write_html(report, out_p)
    return AuditResult(report, out_p, figures)
