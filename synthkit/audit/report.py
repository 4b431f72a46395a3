"""The audit report: ``report.html``, one self-contained page (figures embedded) that opens in any browser."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

ROWS = {
    "fid": ("FID (Med3D features)", "lower is better"),
    "mmd": ("MMD² (Gaussian kernel on features)", "lower is better"),
    "mmd_images": ("MMD (linear kernel on images, MONAI)", "lower is better"),
}


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
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def write_html(report: dict[str, Any], out: Path) -> Path:
    m = report["metrics"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>synthkit audit</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}",
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}",
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.warn{background:#fff4d6;padding:.6em 1em;",
        "border-left:4px solid #e0a800}figure{display:inline-block;margin:.5em}img{max-width:520px}code{font-size:.9em}",
        "</style></head><body>",
        "<h1>synthkit audit</h1>",
        f"<p>Store <code>{html.escape(report['store'])}</code> ({html.escape(str(report['generator'].get('kind')))}) against "
        f"<code>{html.escape(report['reference'])}</code>: {report['counts']['synthetic']} synthetic, "
        f"{report['counts']['reference']} reference images; seed {report['seed']}. Feature extractor: "
        f"<b>{html.escape(report['feature_extractor']['name'])}</b>.</p>",
    ]
    for w in report["warnings"]:
        parts.append(f"<p class='warn'>{html.escape(w)}</p>")
    dist = [k for k in ROWS if k in m]
    if dist:
        parts.append(
            "<h2>Realism (distribution distances)</h2><table><tr><th>metric</th><th>synthetic vs real</th>"
            "<th>95 % CI</th><th>real vs real</th><th></th></tr>"
        )
        for k in dist:
            name, note = ROWS[k]
            parts.append(
                f"<tr><td>{name}</td><td>{_fmt(m[k]['synthetic_vs_real'])}</td><td>{_fmt(m[k].get('ci95'))}</td>"
                f"<td>{_fmt(m[k]['real_vs_real'])}</td><td>{note}</td></tr>"
            )
        parts.append("</table>")
    div = [k for k in ("ms_ssim", "4gr_ssim") if k in m]
    if div:
        parts.append(
            "<h2>Diversity (mean similarity of random distinct pairs; lower = more diverse)</h2><table>"
            "<tr><th>metric</th><th>synthetic</th><th>95 % CI</th><th>real</th><th>95 % CI</th><th>pairs</th><th>kernel / scales</th></tr>"
        )
        for k in div:
            s, r = m[k]["synthetic"], m[k]["real"]
            label = "MS-SSIM" if k == "ms_ssim" else "4-G-R-SSIM"
            parts.append(
                f"<tr><td>{label}</td><td>{_fmt(s['mean'])}</td><td>{_fmt(s['ci95'])}</td><td>{_fmt(r['mean'])}</td>"
                f"<td>{_fmt(r['ci95'])}</td><td>{s['pairs']}</td><td>{m[k]['kernel_size']} / {m[k]['scales']}</td></tr>"
            )
        parts.append("</table>")
    if "psnr" in m:
        p = m["psnr"]
        parts.append(
            "<h2>Paired comparison with the nearest real image</h2><table><tr><th></th><th>PSNR (dB)</th><th>MSE</th></tr>"
            f"<tr><td>synthetic vs nearest real</td><td>{_fmt(p['synthetic_vs_nearest_real']['psnr'])}</td>"
            f"<td>{_fmt(p['synthetic_vs_nearest_real']['mse'])}</td></tr>"
            f"<tr><td>real vs nearest other real</td><td>{_fmt(p['real_vs_nearest_real']['psnr'])}</td>"
            f"<td>{_fmt(p['real_vs_nearest_real']['mse'])}</td></tr></table>"
        )
    if m.get("conditioning"):
        c = m["conditioning"]
        parts.append(
            f"<h2>Conditioning (segmenter: {html.escape(c['segmenter'])})</h2><table><tr><th>condition</th>"
            "<th>comparison</th><th>n</th><th>Pearson r</th><th>Spearman ρ</th><th>MAE (mm³)</th></tr>"
        )
        labels = {
            "synthetic_requested_vs_measured": "synthetic: requested vs measured",
            "segmenter_vs_true_on_synthetic": "synthetic: true vs measured (segmenter accuracy)",
            "reference_recorded_vs_measured": "reference: recorded vs measured (ceiling)",
        }
        for name, rows in c["conditions"].items():
            for key, label in labels.items():
                if key in rows:
                    s = rows[key]
                    parts.append(
                        f"<tr><td>{html.escape(name)}</td><td>{label}</td><td>{s['n']}</td><td>{_fmt(s['pearson_r'])}</td>"
                        f"<td>{_fmt(s['spearman_rho'])}</td><td>{_fmt(s['mae'])}</td></tr>"
                    )
        parts.append("</table>")
    if m.get("extrapolation"):
        parts.append(
            "<h2>Extrapolation beyond the training range</h2><table><tr><th>condition</th><th>requested</th>"
            "<th>measured means</th><th>monotone below / above</th><th>Spearman ρ</th></tr>"
        )
        for name, e in m["extrapolation"].items():
            if not isinstance(e, dict):
                continue
            req = ", ".join(f"{v / 1000:.0f}" for v in e["requested_levels"])
            mea = ", ".join(f"{v / 1000:.1f}" for v in e["measured_means"])
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td>{req} ml</td><td>{mea} ml</td>"
                f"<td>{e['monotone_below']} / {e['monotone_above']}</td><td>{_fmt(e['spearman_rho'])}</td></tr>"
            )
        parts.append("</table>")
    if m.get("brain_age") and "synthetic_requested_vs_predicted" in m["brain_age"]:
        b = m["brain_age"]
        parts.append(
            f"<h2>Brain age ({html.escape(b['kind'])})</h2><table><tr><th></th><th>n</th><th>Pearson r</th><th>MAE (years)</th></tr>"
        )
        for key, label in (
            ("synthetic_requested_vs_predicted", "synthetic: requested vs predicted"),
            ("reference_recorded_vs_predicted", "reference: recorded vs predicted (ceiling)"),
            ("held_out_at_training", "held-out at training"),
        ):
            if b.get(key):
                s = b[key]
                parts.append(
                    f"<tr><td>{label}</td><td>{s['n']}</td><td>{_fmt(s['pearson_r'])}</td><td>{_fmt(s['mae'])}</td></tr>"
                )
        parts.append("</table>")
    if m.get("memorisation"):
        mm = m["memorisation"]
        parts.append(
            "<h2>Memorisation</h2><p>A synthetic sample is flagged when it is more similar to a training image "
            f"({html.escape(mm['similarity'])}) than any real held-out image is (max {mm['threshold_max_heldout_similarity']:.4f}). "
            f"<b>{mm['n_flagged']} of {report['counts']['synthetic']} flagged ({100 * mm['fraction_flagged']:.1f} %)</b>; "
            f"median similarity {mm['synthetic_similarity_median']:.4f} (synthetic) vs {mm['heldout_similarity_median']:.4f} (held-out).</p>"
        )
    for extra in report.get("sections", []):
        parts.append(extra)
    parts.append("<h2>Figures</h2>")
    for key, name in report["figures"].items():
        f = out / name
        if f.exists():
            parts.append(_img(f, key))
    parts.append("<p>Every figure and number is also in <code>report.json</code>.</p></body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
