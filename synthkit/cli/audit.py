"""Commands: ``audit`` and ``segment``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthkit.cli.app import AUDIT, app, console, err_console, no_empty_folder_on_failure
from synthkit.errors import UsageError


@app.command(rich_help_panel=AUDIT)
def audit(
    store: Annotated[Path, typer.Argument(help="The synthetic cohort store.")],
    reference: Annotated[Path, typer.Option(help="Manifest of real reference images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (report.json, report.html, PNGs, NIfTIs).")],
    recipe: Annotated[Path | None, typer.Option(help="Audit recipe YAML (metrics, sizes, seeds).")] = None,
    n_synthetic: Annotated[int | None, typer.Option(min=2, help="Synthetic samples to use (default 1000).")] = None,
    n_pairs: Annotated[
        int | None, typer.Option(min=1, help="Random pairs for MS-SSIM diversity (default 1000).")
    ] = None,
    med3d_weights: Annotated[
        Path | None, typer.Option(help="MedicalNet weights (resnet_*_23dataset.pth); without them a named fallback.")
    ] = None,
    synthseg_model: Annotated[
        Path | None,
        typer.Option(help="SynthSeg weights (synthseg_2.0.h5) for the conditioning check; else weight-free."),
    ] = None,
    brain_age: Annotated[Path | None, typer.Option(help="A brain-age model (synthkit train brain-age).")] = None,
    training: Annotated[
        Path | None, typer.Option(help="The generator's training manifest: memorisation check.")
    ] = None,
    show_training_ids: Annotated[
        bool, typer.Option("--show-training-ids", help="Name training subjects in the report (off: privacy).")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int | None, typer.Option(min=0, help="Seed for sample and pair selection.")] = None,
) -> None:
    """Audit a synthetic cohort against real data: FID, MMD, MS-SSIM, 4-G-R-SSIM, PSNR, variance maps."""
    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe, load_audit_recipe
    from synthkit.generate.engine import resolve_device

    r = load_audit_recipe(recipe) if recipe is not None else AuditRecipe()
    upd = {k: v for k, v in {"n_synthetic": n_synthetic, "n_pairs": n_pairs, "seed": seed}.items() if v is not None}
    r = r.model_copy(update=upd)
    dev = resolve_device(device)
    if brain_age is not None:  # a bad model file fails now, not after the other metrics
        from synthkit.metrics.brain_age import load_brain_age

        load_brain_age(brain_age)
    with no_empty_folder_on_failure(out):
        res = run_audit(
            store,
            reference,
            out,
            r,
            med3d_weights=med3d_weights,
            synthseg_model=synthseg_model,
            brain_age=brain_age,
            training=training,
            show_training_ids=show_training_ids,
            device=dev,
            echo=lambda m: console.print(m, markup=False, highlight=False),
        )
    for w in res.report["warnings"]:
        err_console.print(f"warning: {w}", markup=False, highlight=False)
    print_audit(res.report)
    console.print(f"[green]report[/green]: {res.out / 'report.html'} (and report.json)")


@app.command(rich_help_panel=AUDIT)
def segment(
    inputs: Annotated[list[Path], typer.Argument(help="NIfTI files, or one cohort store (.zarr).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for label maps and volumes.csv.")],
    synthseg_model: Annotated[
        Path | None, typer.Option(help="SynthSeg weights (synthseg_1.0.h5 / synthseg_2.0.h5); else weight-free.")
    ] = None,
    freesurfer: Annotated[bool, typer.Option("--freesurfer", help="Use mri_synthseg if it is on PATH.")] = False,
    indices: Annotated[str | None, typer.Option(help="For a store: which samples (0:10, 5, ::100).")] = None,
) -> None:
    """Segment images (files or a store): label maps and a volumes CSV (ventricles, brain, GM, WM, CSF, mm³)."""
    import pandas as pd

    from synthkit.data.io import load_nifti, save_nifti
    from synthkit.metrics.segmentation import make_segmenter
    from synthkit.progress import track
    from synthkit.store.writer import is_store

    seg = make_segmenter(synthseg_model, prefer_freesurfer=freesurfer)
    console.print(f"segmenter: {seg.name}", markup=False)
    jobs: list[tuple[str, object]] = []
    if len(inputs) == 1 and is_store(inputs[0]):
        from synthkit.store.export import parse_indices
        from synthkit.store.reader import open_cohort

        cohort = open_cohort(inputs[0], allow_incomplete=True)
        for pos in parse_indices(indices, len(cohort)):
            jobs.append((f"sample_{int(cohort.indices[pos]):06d}", (cohort, pos)))
    else:
        if indices is not None:
            raise UsageError("--indices applies to a store only")
        for p in inputs:
            if not p.exists():
                raise UsageError(f"{p}: file not found")
            jobs.append((p.name.removesuffix(".gz").removesuffix(".nii"), p))
    rows = []
    with no_empty_folder_on_failure(out):
        out.mkdir(parents=True, exist_ok=True)
        for name, src in track(jobs, description="segmenting", transient=True):
            if isinstance(src, Path):
                img, aff = load_nifti(src)
            else:
                cohort, pos = src  # type: ignore[misc]
                img, aff = cohort.image(pos), cohort.space.affine_array
            r = seg.segment(img, aff)
            save_nifti(r.labels.astype("int16"), aff, out / f"{name}_labels.nii.gz", dtype="int16")
            rows.append({"name": name, **r.volumes})
        pd.DataFrame(rows).to_csv(out / "volumes.csv", index=False)
    console.print(f"[green]wrote[/green] {len(rows)} label maps and {out / 'volumes.csv'}")


VERDICT_STYLE = {"close to real": "green", "far from real": "red", "cannot tell": "yellow"}


def print_verdicts(report: dict) -> None:
    """The verdict per question, as the report page opens with it."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="verdict", title_justify="left")
    for c in ("question", "verdict", "why"):
        t.add_column(c)
    for q, v in report.get("verdicts", {}).items():
        word = v["verdict"] + (" (low confidence)" if v.get("confidence") == "low" else "")
        why = "; ".join([v["why"], *[f"flag: {f}" for f in v.get("flags", [])]])
        t.add_row(q.replace("_", " "), f"[{VERDICT_STYLE.get(v['verdict'], 'white')}]{escape(word)}[/]", escape(why))
    console.print(t)


def print_audit(report: dict) -> None:
    from rich.table import Table

    print_verdicts(report)
    m = report["metrics"]
    t = Table(title="audit", title_justify="left")
    for c in ("metric", "synthetic", "real (reference)"):
        t.add_column(c, justify="left" if c == "metric" else "right")
    for k in ("fid", "mmd", "mmd_images"):
        if k in m:
            t.add_row(k, f"{m[k]['synthetic_vs_real']:.4g}", f"{m[k]['real_vs_real']:.4g}")
    for k in ("ms_ssim", "4gr_ssim"):
        if k in m:
            t.add_row(k + " (diversity)", f"{m[k]['synthetic']['mean']:.4g}", f"{m[k]['real']['mean']:.4g}")
    for name, rows in (m.get("conditioning") or {}).get("conditions", {}).items():
        s = rows["synthetic_requested_vs_measured"]
        ceiling = rows.get("reference_recorded_vs_measured", {}).get("pearson_r")
        t.add_row(
            f"{name}: r(requested, measured)", f"{s['pearson_r']:.3f}", "–" if ceiling is None else f"{ceiling:.3f}"
        )
    if m.get("brain_age", {}).get("synthetic_requested_vs_predicted"):
        b = m["brain_age"]
        ceiling = (b.get("reference_recorded_vs_predicted") or b.get("held_out_at_training") or {}).get("pearson_r")
        t.add_row(
            "age: r(requested, predicted)",
            f"{b['synthetic_requested_vs_predicted']['pearson_r']:.3f}",
            "–" if ceiling is None else f"{ceiling:.3f}",
        )
    if m.get("memorisation"):
        t.add_row("memorisation: flagged", f"{100 * m['memorisation']['fraction_flagged']:.1f} %", "0 % by definition")
    if "psnr" in m:
        t.add_row(
            "psnr vs nearest real",
            f"{m['psnr']['synthetic_vs_nearest_real']['psnr']:.4g}",
            f"{m['psnr']['real_vs_nearest_real']['psnr']:.4g}",
        )
    console.print(t)
