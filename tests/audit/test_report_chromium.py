"""report.html opens in headless Chromium with its figures visible (skipped where Chromium is not installed:
`apt-get install chromium`)."""

import shutil
import subprocess

import numpy as np
import pytest

from synthkit.audit.suite import run_audit
from synthkit.config import AuditRecipe

from .conftest import SPACE
from .test_audit import store_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_renders_with_figures(tmp_path, reference):
    from PIL import Image

    from synthkit.data.phantom import draw_params, render

    imgs = np.stack([render(draw_params(s), SPACE).image for s in range(8)])
    res = run_audit(
        store_of(tmp_path / "s.zarr", imgs),
        reference,
        tmp_path / "rep",
        AuditRecipe(n_synthetic=8, n_pairs=10, bootstrap=2, variance_samples=4),
        progress=False,
        echo=lambda m: None,
    )
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
        "--window-size=1200,3000",
        f"--screenshot={shot}",
        (res.out / "report.html").as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    dark = (pixels < 60).mean()  # brain slices on black backgrounds; a page of broken images is nearly white
    assert dark > 0.05, f"only {dark:.3f} of the page is dark: figures did not render"
