"""The audit report: ``report.html``, one self-contained page (figures embedded) that opens in any browser.

The page opens with the verdicts and the thresholds behind them, then one block per metric. Each block is a
renderer in :data:`RENDERERS`; a metric without one (a new section's) is shown as a plain table of its numbers,
so adding a section never requires editing this file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROWS = {
    "fid": ("FID (features)", "lower is better"),
    "mmd": ("MMD² (Gaussian kernel on features)", "lower is better"),
    "mmd_images": ("MMD² (linear kernel on images, MONAI's estimator)", "lower is better"),
}
VERDICT_COLOUR = {"close to real": "#d8f0d8", "far from real": "#f8d7d7", "cannot tell": "#eeeeee"}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.warn{background:#fff4d6;padding:.6em 1em;"
    "border-left:4px solid #e0a800}figure{display:inline-block;margin:.5em}img{max-width:520px}code{font-size:.9em}"
    "td.v{text-align:left}td.why{text-align:left;max-width:560px}"
)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) for x in v):
        return f"[{v[0]:.4g}, {v[1]:.4g}]"
    return html.escape(str(v))


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, str) else _fmt(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def verdicts_block(report: dict[str, Any]) -> str:
    """The verdict per question, its reason, its rule; then every flag."""
    rows = []
    rules = report["thresholds"]["rules"]
    for q, v in report["verdicts"].items():
        word = v["verdict"] + (" (low confidence)" if v.get("confidence") == "low" else "")
        colour = VERDICT_COLOUR.get(v["verdict"], "#fff")
        why = html.escape(v["why"]) + "".join(f"<br><b>flag:</b> {html.escape(f)}" for f in v.get("flags", []))
        rows.append(
            f"<tr><td>{html.escape(q.replace('_', ' '))}</td><td class='v' style='background:{colour}'><b>"
            f"{html.escape(word)}</b></td><td class='why'>{why}</td><td class='why'>{html.escape(rules.get(q, ''))}</td></tr>"
        )
    out = [
        "<h2>Verdict</h2><table><tr><th>question</th><th>verdict</th><th>why</th><th>rule (audit recipe: thresholds)</th></tr>",
        *rows,
        "</table>",
        f"<p>{html.escape(rules['low_confidence'])} are marked low-confidence. Thresholds are set in the audit "
        "recipe (<code>thresholds:</code>); every number below names its sample sizes and seeds in "
        "<code>report.json</code>, and <code>features.npz</code> / <code>pairs.npz</code> hold what FID, MMD and "
        "MS-SSIM were computed from (see docs/audit.md).</p>",
    ]
    out += [f"<p class='warn'><b>flag</b> — {html.escape(f)}</p>" for f in report.get("flags", [])]
    return "\n".join(out)


def realism_block(m: dict[str, Any]) -> str:
    rows = []
    for k in (k for k in ROWS if k in m):
        name, note = ROWS[k]
        x = m[k]
        size = x.get("sizes", {})
        rows.append(
            [
                html.escape(name),
                x["synthetic_vs_real"],
                x.get("ci95"),
                x["real_vs_real"],
                x.get("ratio_to_real_vs_real"),
                x.get("ratio_ci95"),
                f"{size.get('synthetic', '–')} / {size.get('reference', '–')} ({'+'.join(map(str, size.get('real_halves', [])))})",
                note,
            ]
        )
    header = [
        "metric",
        "synthetic vs real",
        "95 % CI",
        "real vs real",
        "ratio",
        "ratio 95 % CI",
        "n syn / ref (halves)",
        "",
    ]
    return "<h2>Realism (distribution distances)</h2>" + _table(header, rows) if rows else ""


def diversity_block(m: dict[str, Any]) -> str:
    rows = []
    for k in (k for k in ("ms_ssim", "4gr_ssim") if k in m):
        s, r, x = m[k]["synthetic"], m[k]["real"], m[k]
        label = "MS-SSIM" if k == "ms_ssim" else "4-G-R-SSIM"
        ratio = x.get("dissimilarity_ratio")
        rows.append(
            [
                label,
                s["mean"],
                s["ci95"],
                r["mean"],
                r["ci95"],
                ratio,
                s["pairs"],
                f"{x['kernel_size']} / {x['scales']}",
            ]
        )
    header = ["metric", "synthetic", "95 % CI", "real", "95 % CI", "dissimilarity ratio", "pairs", "kernel / scales"]
    title = "<h2>Diversity (mean similarity of random distinct pairs; lower = more diverse)</h2>"
    return title + _table(header, rows) if rows else ""


def psnr_block(p: dict[str, Any]) -> str:
    rows = [
        ["synthetic vs nearest real", p["synthetic_vs_nearest_real"]["psnr"], p["synthetic_vs_nearest_real"]["mse"]],
        ["real vs nearest other real", p["real_vs_nearest_real"]["psnr"], p["real_vs_nearest_real"]["mse"]],
    ]
    return "<h2>Paired comparison with the nearest real image</h2>" + _table(["", "PSNR (dB)", "MSE"], rows)


def conditioning_block(c: dict[str, Any]) -> str:
    labels = {
        "synthetic_requested_vs_measured": "synthetic: requested vs measured",
        "segmenter_vs_true_on_synthetic": "synthetic: true vs measured (segmenter accuracy)",
        "reference_recorded_vs_measured": "reference: recorded vs measured (ceiling)",
    }
    rows = []
    for name, r in c["conditions"].items():
        for key, label in labels.items():
            if key in r:
                s = r[key]
                rows.append([html.escape(name), label, s["n"], s["pearson_r"], s["spearman_rho"], s["mae"]])
    header = ["condition", "comparison", "n", "Pearson r", "Spearman ρ", "MAE (mm³)"]
    return f"<h2>Conditioning (segmenter: {html.escape(c['segmenter'])})</h2>" + _table(header, rows)


def extrapolation_block(x: dict[str, Any]) -> str:
    rows = []
    for name, e in x.items():
        if isinstance(e, dict):
            req = ", ".join(f"{v / 1000:.0f}" for v in e["requested_levels"])
            mea = ", ".join(f"{v / 1000:.1f}" for v in e["measured_means"])
            rows.append(
                [
                    html.escape(name),
                    f"{req} ml",
                    f"{mea} ml",
                    f"{e['monotone_below']} / {e['monotone_above']}",
                    e["spearman_rho"],
                ]
            )
    header = ["condition", "requested", "measured means", "monotone below / above", "Spearman ρ"]
    return "<h2>Extrapolation beyond the training range</h2>" + _table(header, rows) if rows else ""


def brain_age_block(b: dict[str, Any]) -> str:
    if "synthetic_requested_vs_predicted" not in b:
        return ""
    rows = []
    for key, label in (
        ("synthetic_requested_vs_predicted", "synthetic: requested vs predicted"),
        ("reference_recorded_vs_predicted", "reference: recorded vs predicted (ceiling)"),
        ("held_out_at_training", "held-out at training"),
    ):
        if b.get(key):
            rows.append([label, b[key]["n"], b[key]["pearson_r"], b[key]["mae"]])
    return f"<h2>Brain age ({html.escape(b['kind'])})</h2>" + _table(["", "n", "Pearson r", "MAE (years)"], rows)


def memorisation_block(mm: dict[str, Any]) -> str:
    return (
        "<h2>Memorisation</h2><p>A synthetic sample is flagged when it is more similar to a training image "
        f"({html.escape(mm['similarity'])}) than any real held-out image is (max {mm['threshold_max_heldout_similarity']:.4f}). "
        f"<b>{mm['n_flagged']} of {mm.get('n_synthetic', '?')} flagged ({100 * mm['fraction_flagged']:.1f} %)</b>; "
        f"median similarity {mm['synthetic_similarity_median']:.4f} (synthetic) vs {mm['heldout_similarity_median']:.4f} (held-out).</p>"
    )


def generic_block(name: str, x: Any) -> str:
    """A metric without its own renderer: its scalar numbers, one row each."""
    rows: list[list[Any]] = []

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, w in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), w)
        elif isinstance(v, (int, float, str, bool)) or v is None:
            rows.append([html.escape(prefix), v])

    walk("", x)
    return f"<h2>{html.escape(name.replace('_', ' '))}</h2>" + _table(["", "value"], rows)


RENDERERS: dict[str, Callable[[Any], str]] = {
    "psnr": psnr_block,
    "conditioning": conditioning_block,
    "extrapolation": extrapolation_block,
    "brain_age": brain_age_block,
    "memorisation": memorisation_block,
}
HANDLED = {*ROWS, "ms_ssim", "4gr_ssim", "variance"}  # in the realism/diversity tables or as figures


def write_html(report: dict[str, Any], out: Path) -> Path:
    m = report["metrics"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>synthkit audit</title><style>{STYLE}</style></head><body>",
        "<h1>synthkit audit</h1>",
        f"<p>Store <code>{html.escape(report['store'])}</code> ({html.escape(str(report['generator'].get('kind')))}) against "
        f"<code>{html.escape(report['reference'])}</code>: {report['counts']['synthetic']} synthetic, "
        f"{report['counts']['reference']} reference images; seed {report['seed']}. Feature extractor: "
        f"<b>{html.escape(str((report.get('feature_extractor') or {}).get('name')))}</b>.</p>",
        verdicts_block(report),
    ]
    parts += [f"<p class='warn'>{html.escape(w)}</p>" for w in report["warnings"]]
    parts += [realism_block(m), diversity_block(m)]
    for key, value in m.items():
        if key in RENDERERS and value:
            parts.append(RENDERERS[key](value))
        elif key not in HANDLED and value:
            parts.append(generic_block(key, value))
    parts.append("<h2>Figures</h2>")
    parts += [_img(out / name, key) for key, name in report["figures"].items() if (out / name).exists()]
    parts.append("<p>Every figure and number is also in <code>report.json</code>.</p></body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
