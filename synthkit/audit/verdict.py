"""Verdicts: one line per question — "close to real", "far from real" or "cannot tell" — and the flags that
keep a number from being read as praise when it is not.

A verdict is a dict ``{"verdict", "why", "threshold", "evidence", "flags", "confidence"}``. The rule for a
ratio with a 95 % interval is the same everywhere: *close* when the whole interval lies inside the accepted
band, *far* when the whole interval lies outside it, *cannot tell* when it straddles an edge (more samples
would tell). Flags are added after all sections ran, because they combine sections (noise-like = more
diverse than real *and* far from real).
"""

from __future__ import annotations

from typing import Any

from synthkit.config import AuditThresholds

CLOSE, FAR, UNSURE = "close to real", "far from real", "cannot tell"
COPY_MARGIN_DB = 1.0  # nearest-real PSNR this far above real-vs-real suggests copies
QUESTIONS = ("realism", "diversity", "conditioning", "brain_age", "memorisation")


def verdict(
    kind: str, why: str, threshold: str = "", evidence: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "verdict": kind,
        "why": why,
        "threshold": threshold,
        "evidence": evidence or {},
        "flags": [],
        "confidence": "normal",
        **extra,
    }


def cannot_tell(why: str, threshold: str = "") -> dict[str, Any]:
    return verdict(UNSURE, why, threshold)


def in_band(ci: list[float], lo: float, hi: float) -> str:
    """CLOSE if ``ci`` lies within [lo, hi], FAR if wholly outside it, else UNSURE."""
    if ci[0] >= lo and ci[1] <= hi:
        return CLOSE
    if ci[0] > hi or ci[1] < lo:
        return FAR
    return UNSURE


def fmt_ci(ci: list[float] | None) -> str:
    return "no interval" if ci is None else f"95 % CI [{ci[0]:.3g}, {ci[1]:.3g}]"


def add_flag(v: dict[str, Any], flag: str, report_flags: list[str], question: str) -> None:
    v["flags"].append(flag)
    report_flags.append(f"{question}: {flag}")


def cross_flags(verdicts: dict[str, dict[str, Any]], metrics: dict[str, Any], t: AuditThresholds) -> list[str]:
    """Flags that combine sections; updates ``verdicts`` in place and returns every flag for the page."""
    flags: list[str] = []
    realism, diversity = verdicts.get("realism"), verdicts.get("diversity")
    far = realism is not None and realism["verdict"] == FAR
    if diversity is not None and diversity.get("direction") == "above real" and far:
        diversity["verdict"] = FAR
        diversity["noise_like"] = True
        diversity["why"] = (
            "noise-like: more diverse than real while far from real on realism — independent noise is diverse, "
            "not realistic (" + diversity["why"] + ")"
        )
        add_flag(
            diversity, "noise-like (diversity above real together with large realism distances)", flags, "diversity"
        )
    p = metrics.get("psnr")
    if p and realism is not None:
        syn, real = p["synthetic_vs_nearest_real"]["psnr"], p["real_vs_nearest_real"]["psnr"]
        above = f"PSNR to the nearest real image ({syn:.3g} dB) is above real-vs-real ({real:.3g} dB)"
        if syn > real and far:
            why = f"{above} while far from real: noise-like or mean-like images do this; it is not realism"
            add_flag(realism, why, flags, "realism")
        elif syn > real + COPY_MARGIN_DB:
            why = f"{above} by more than {COPY_MARGIN_DB:g} dB: closer to real images than they are to each other; "
            add_flag(realism, why + "check memorisation (--training)", flags, "realism")
    for q, v in verdicts.items():
        for f in v.get("low_confidence", []):
            add_flag(v, f, flags, q)
    return flags


def thresholds_text(t: AuditThresholds) -> dict[str, str]:
    """The rule behind each question, as the page states it."""
    d = t.diversity_max_ratio
    return {
        "realism": f"synthetic-vs-real ÷ real-vs-real FID (MMD² if no FID): close when its 95 % CI ≤ "
        f"{t.realism_max_ratio:g}, far when > {t.realism_max_ratio:g}",
        "diversity": f"(1 − MS-SSIM) synthetic ÷ real: close when its 95 % CI lies in [{1 / d:.3g}, {d:g}]; below: "
        "collapse, above: excess (noise-like when realism is far)",
        "conditioning": f"Pearson r(requested, measured) ≥ {t.conditioning_min_r:g} for every volume condition",
        "brain_age": f"MAE(requested, predicted age) ≤ {t.brain_age_max_mae_ratio:g} × the model's MAE on real images",
        "memorisation": "fraction of samples closer to a training image than any held-out real image ≤ the "
        f"chance rate 1/(held-out + 1) + {t.memorisation_max_fraction:g}; far when significantly above (p < 0.01)",
        "low_confidence": f"real-vs-real rows on fewer than {t.min_real_half} images per half (and brain-age or "
        f"memorisation baselines on fewer than {t.min_real_half} real images)",
    }
