"""Template → subject registration of the deformation family on phantoms, whose label maps are the truth
(JSON lines): Dice of the warped template labels per tissue, folding fraction, local NCC, whole-image PSNR
and SSIM of the moved template against the subject (beside the unregistered template's), r(true ventricular
volume, ventricular volume of the warped template labels) and seconds per subject, for each setting given.

Usage: ``python benchmarks/bench_registration.py [--n 16] [--spacing 4] [--configs "iterations=100"
"iterations=100,downsample=1" …] [--oversample 1 2] [--threads 1]``; ``--ceiling --oversample 1 2 4``: the
Dice reachable with each phantom's true deformation.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def parse(spec: str) -> dict:
    out = {}
    for part in filter(None, spec.split(",")):
        key, value = part.split("=")
        out[key] = value if value.isalpha() else float(value) if "." in value else int(value)
    return out


def whole_image(moved, subjects) -> dict[str, float]:
    """The paper's registration figures: PSNR (dB, data range 1) and SSIM of the whole moved template
    against the subject, means over subjects."""
    from monai.metrics import SSIMMetric

    from synthkit.metrics.image import psnr

    a, b = moved.numpy(), subjects.numpy()
    ssim = SSIMMetric(spatial_dims=3, data_range=1.0, win_size=7)(moved, subjects)
    return {"psnr_db": float(np.mean(psnr(a, b))), "ssim": float(ssim.mean())}


def ceiling(n: int, space, factor: int) -> dict[str, float]:
    """Dice of the template's labels, kept ``factor`` times finer than the grid, brought to each phantom by
    its *true* deformation (pose and smooth displacement; the template's own ventricles and cortex): the
    best any registration can do when warping that template's labels onto the grid."""
    import dataclasses

    from scipy import ndimage as ndi

    from synthkit.data import phantom as ph
    from synthkit.training.registration import dice

    tp = ph.template_params()
    fine = space.refined(factor)
    labels = ph.render(tp, fine).labels
    onehot = np.stack([(labels == k).astype(np.float32) for k in range(5)])
    to_voxel = np.linalg.inv(fine.affine_array)
    centre = ph.template().center[:, None]
    scores = []
    for i in range(n):
        p = ph.draw_params(seed=1000 + i)
        truth = ph.render(
            dataclasses.replace(p, ventricle_dilation_mm=tp.ventricle_dilation_mm, atrophy_mm=tp.atrophy_mm), space
        )
        src = (ph.template_coordinates(p, space) - centre) * tp.head_scale + centre  # template world → its grid
        vox = to_voxel[:3, :3] @ src + to_voxel[:3, 3:]
        got = np.stack([ndi.map_coordinates(o, vox, order=1, mode="nearest") for o in onehot]).argmax(0)
        scores.append([dice(got.reshape(space.shape), truth.labels, t) for t in (2, 3, 4)])
    m = np.mean(scores, 0)
    return {
        "bench": "registration_ceiling",
        "template_oversample": factor,
        "subjects": n,
        "dice_gm": float(m[0]),
        "dice_wm": float(m[1]),
        "dice_ventricles": float(m[2]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--spacing", type=float, default=4.0)
    ap.add_argument("--configs", nargs="+", default=["iterations=100", "iterations=100,downsample=1"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--oversample", type=int, nargs="+", default=[2], help="template refinement factors")
    ap.add_argument("--ceiling", action="store_true", help="only the Dice reachable with the true deformation")
    args = ap.parse_args()

    import nibabel as nib
    import pandas as pd
    import torch

    from synthkit.config import RegistrationConfig
    from synthkit.data import phantom as ph
    from synthkit.models.deformation import Warper, folding_fraction, one_hot, quiet
    from synthkit.training.registration import dice, local_ncc, register, template_volumes

    torch.set_num_threads(args.threads)
    if args.ceiling:
        for f in args.oversample:
            print(json.dumps(ceiling(args.n, ph.default_space(args.spacing), f)), flush=True)
        return
    quiet()
    warnings.filterwarnings("ignore", category=UserWarning)
    space = ph.default_space(args.spacing)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = ph.write_cohort(Path(tmp), args.n, space=space, seed=11, progress=False)
        table = pd.read_csv(manifest)
        load = lambda col, dtype: np.stack([nib.load(Path(tmp) / p).get_fdata().astype(dtype) for p in table[col]])  # noqa: E731
        subjects = torch.from_numpy(load("image", np.float32))[:, None]
        truth = load("label", np.uint8)
    for spec, oversample in ((s, f) for f in args.oversample for s in args.configs):
        template, labels = template_volumes(space, oversample)
        cfg = RegistrationConfig(**parse(spec))
        coarse = (3, *(s // cfg.grid_factor for s in space.shape))
        t0 = time.perf_counter()
        v = torch.cat(
            [
                register(template, subjects[a : a + cfg.batch_size], cfg, coarse)
                for a in range(0, args.n, cfg.batch_size)
            ]
        )
        seconds = time.perf_counter() - t0
        warper = Warper(space.shape, cfg.integration_steps)
        with torch.inference_mode():
            ddf = warper.ddf(v)
            got = warper.warp(one_hot(labels), ddf).argmax(1).numpy()
            moved = warper.warp(template, ddf)
            ncc = local_ncc(moved, subjects, cfg.ncc_kernel)
            still = warper.warp(template, torch.zeros_like(ddf))  # the template on the grid, unregistered
        quality = {f"{k}_unregistered": v for k, v in whole_image(still, subjects).items()}
        quality.update(whole_image(moved, subjects))
        folds = [folding_fraction(d) for d in ddf.numpy()]
        row = {
            "bench": "registration",
            "config": spec,
            "template_oversample": oversample,
            "subjects": args.n,
            "spacing_mm": args.spacing,
            **{
                f"dice_{k}": float(np.mean([dice(got[i], truth[i], t) for i in range(args.n)]))
                for k, t in (("gm", 2), ("wm", 3), ("ventricles", 4))
            },
            "folding_mean": float(np.mean(folds)),
            "subjects_with_folding": int(np.sum(np.asarray(folds) > 0)),
            "ncc": float(ncc.mean()),
            **quality,
            "r_ventricles": float(np.corrcoef((got == 4).sum((1, 2, 3)), (truth == 4).sum((1, 2, 3)))[0, 1]),
            # how far the warped template's ventricles follow the true ones (1 = all the way)
            "slope_ventricles": float(np.polyfit((truth == 4).sum((1, 2, 3)), (got == 4).sum((1, 2, 3)), 1)[0]),
            "seconds_per_subject": round(seconds / args.n, 2),
            "machine": f"{platform.machine()}, {args.threads} CPU thread(s)",
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
