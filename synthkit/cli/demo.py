"""Commands: ``demo``: the whole pipeline on phantoms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthkit.cli.app import START, app, console
from synthkit.cli.audit import print_audit
from synthkit.errors import SynthkitError


@app.command(rich_help_panel=START)
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("demo-output"),
    n: Annotated[int, typer.Option(min=8, help="Phantom subjects to train on.")] = 64,
    n_samples: Annotated[int, typer.Option(min=1, help="Synthetic samples to generate.")] = 128,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Run the pipeline end to end on phantoms: cohort → train a generator → generate a store → verify → audit."""
    import yaml

    from synthkit.audit.suite import run_audit
    from synthkit.config import AuditRecipe
    from synthkit.data import phantom as ph
    from synthkit.data.manifest import validate_manifest
    from synthkit.generate.engine import GenerateOptions, resolve_device, run
    from synthkit.store.verify import verify_store
    from synthkit.training.run import train as run_training

    say = lambda msg: console.print(msg, markup=False, highlight=False)  # noqa: E731
    space = ph.default_space(4.0)
    console.rule("synthkit demo")
    say("phantom cohort → train a deformation diffusion model → generate a synthetic cohort → verify → audit")
    say(f"1/5 phantom cohort: {n} subjects at {space.describe()}")
    manifest = ph.write_cohort(out / "phantoms", n, space=space, seed=0)
    _, problems = validate_manifest(manifest)
    if problems:
        raise SynthkitError(f"{manifest}: {len(problems)} problems, first: {problems[0]}")
    recipe = yaml.safe_load(DEMO_RECIPE.read_text())
    recipe["data"]["manifest"] = str(manifest.resolve())
    recipe_path = out / DEMO_RECIPE.name
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    say(f"2/5 training the model of {recipe_path} (template registration, then diffusion over the fields)")
    trained = run_training(
        recipe_path,
        out=out / "run",
        device=device,
        echo=lambda m: say("    " + m),
        resume=(out / "run" / "state").exists(),
    )
    store = out / "cohort.zarr"
    say(f"3/5 generating {n_samples} samples from {trained.checkpoint} into {store}")
    res = run(
        GenerateOptions(
            out=store,
            model=str(trained.checkpoint),
            n=n_samples,
            shard_size=16,
            batch_size=8,
            workers=2,
            device=device,
            overwrite=store.exists(),
        ),
        echo=lambda msg: say("    " + msg),
    )
    say("4/5 verifying the store")
    report = verify_store(store)
    if not report.ok:
        raise SynthkitError(f"{store}: {report.errors[0]}")
    say("5/5 auditing the synthetic cohort against the phantom cohort")
    audit_dir = out / "audit"
    audited = run_audit(
        store,
        manifest,
        audit_dir,
        AuditRecipe(n_synthetic=n_samples, n_pairs=200, bootstrap=20, n_segment=64, extrapolation_per_level=2),
        device=resolve_device(device),
        echo=lambda m: say("    " + m),
    )
    print_audit(audited.report)
    console.rule("done")
    say(f"phantom cohort (images, labels, manifest): {out / 'phantoms'}")
    say(f"checkpoint: {trained.checkpoint}")
    say(f"training metrics and loss curve: {trained.out / 'metrics.csv'}, {trained.out / 'loss.png'}")
    say(f"preview images: {trained.out / 'previews'}")
    say(f"synthetic cohort ({res.n} samples, verified): {store}")
    say(f"  look inside: synthkit inspect {store}; in Python: synthkit.open_cohort('{store}')")
    say(f"audit report: {audit_dir / 'report.html'} (numbers in {audit_dir / 'report.json'})")


DEMO_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo-deformation.yaml"
