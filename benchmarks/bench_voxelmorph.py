"""Registration by a VoxelMorph-style network vs per-subject optimisation, per CPU-minute (JSON lines).

Both predict the same thing — a stationary velocity field on the coarse grid, integrated by scaling and
squaring and applied with the same ``Warper`` — and both minimise the same loss (LNCC + bending energy at
half resolution); the only difference is how the field is found. The network (MONAI ``BasicUNet`` on the
template and subject at half resolution, as VoxelMorph: unsupervised, one network for every subject) is trained
on ``--n-train`` phantoms and evaluated on ``--n-eval`` others after each of ``--minutes`` of training; the
optimisation (``synthkit.training.registration.register``, the recipe default) registers the same held-out
phantoms, measured in the same run. Dice is of the warped template labels against the phantoms' own labels.

Usage: ``python benchmarks/bench_voxelmorph.py [--n-train 64] [--n-eval 16] [--minutes 2 5 10] [--threads 1]``
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


def evaluate(v, template_labels, truth, warper) -> dict[str, float]:
    import torch

    from synthkit.models.deformation import folding_fraction, one_hot
    from synthkit.training.registration import dice

    with torch.inference_mode():
        ddf = warper.ddf(v)
        got = warper.warp(one_hot(template_labels), ddf).argmax(1).numpy()
    out = {
        f"dice_{k}": float(np.mean([dice(g, t, lab) for g, t in zip(got, truth, strict=True)]))
        for k, lab in (("gm", 2), ("wm", 3), ("ventricles", 4))
    }
    out["subjects_with_folding"] = int(sum(folding_fraction(d) > 0 for d in ddf.numpy()))
    return out


class Net:
    """A U-Net from (template, subject) at half resolution to the coarse velocity field (coarse voxels)."""

    def __init__(self, coarse: tuple[int, ...]) -> None:
        import torch
        from monai.networks.nets import BasicUNet

        self.coarse = coarse
        self.unet = BasicUNet(3, 2, 3, features=(16, 16, 32, 32, 64, 16))
        last = self.unet.final_conv
        torch.nn.init.zeros_(last.weight)  # start at the identity transform
        torch.nn.init.zeros_(last.bias)

    def __call__(self, tpl, subs):
        import torch
        import torch.nn.functional as F

        x = torch.cat([tpl.expand(subs.shape[0], -1, -1, -1, -1), subs], 1)
        size = x.shape[2:]
        pad = [p for s in reversed(size) for p in (0, -s % 16)]  # four halvings need multiples of 16
        y = self.unet(F.pad(x, pad))[..., : size[0], : size[1], : size[2]]
        return F.adaptive_avg_pool3d(y, self.coarse[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-eval", type=int, default=16)
    ap.add_argument("--minutes", type=float, nargs="+", default=[2, 5, 10])
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--cohort", type=int, default=200, help="subjects in the cohort the cost is counted for")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import nibabel as nib
    import pandas as pd
    import torch
    from monai.losses import BendingEnergyLoss, LocalNormalizedCrossCorrelationLoss

    from synthkit.config import RegistrationConfig
    from synthkit.data import phantom as ph
    from synthkit.models.deformation import Warper, quiet
    from synthkit.training.registration import register, resample, template_volumes

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    quiet()
    warnings.filterwarnings("ignore", category=UserWarning)
    space = ph.default_space(4.0)
    n = args.n_train + args.n_eval
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.read_csv(ph.write_cohort(Path(tmp), n, space=space, seed=23, progress=False))
        load = lambda col, dtype: np.stack([nib.load(Path(tmp) / p).get_fdata().astype(dtype) for p in table[col]])  # noqa: E731
        images = torch.from_numpy(load("image", np.float32))[:, None]
        truth = load("label", np.uint8)[args.n_train :]
    cfg = RegistrationConfig()
    template, labels = template_volumes(space, 2)
    coarse = (3, *(s // cfg.grid_factor for s in space.shape))
    half = tuple((s - 1) // cfg.downsample + 1 for s in space.shape)
    tpl_h, subs_h = resample(template, half), resample(images, half)
    warper, warper_h = Warper(space.shape, cfg.integration_steps), Warper(half, cfg.integration_steps)
    machine = f"{platform.machine()}, {args.threads} CPU thread(s)"
    base = {"bench": "voxelmorph", "train_subjects": args.n_train, "eval_subjects": args.n_eval, "machine": machine}

    t0 = time.perf_counter()
    v_opt = register(template, images[args.n_train :], cfg, coarse)
    opt_s = (time.perf_counter() - t0) / args.n_eval
    row = {"method": "per-subject optimisation (default)", "seconds_per_subject": round(opt_s, 2)}
    row["cpu_minutes_for_cohort"] = round(args.cohort * opt_s / 60, 1)
    print(json.dumps({**base, **row, **evaluate(v_opt, labels, truth, warper)}), flush=True)

    net = Net(coarse)
    adam = torch.optim.Adam(net.unet.parameters(), lr=1e-3)
    sim = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=cfg.ncc_kernel)
    bending = BendingEnergyLoss(normalize=True)
    g = torch.Generator().manual_seed(1)
    steps, trained, marks = 0, 0.0, sorted(args.minutes)
    while marks:
        t0 = time.perf_counter()
        idx = torch.randint(0, args.n_train, (args.batch_size,), generator=g)
        adam.zero_grad(set_to_none=True)
        ddf = warper_h.ddf(net(tpl_h, subs_h[idx]))
        loss = sim(warper_h.warp(tpl_h, ddf), subs_h[idx]) + cfg.bending_weight * bending(ddf)
        loss.backward()
        adam.step()
        steps, trained = steps + 1, trained + time.perf_counter() - t0
        if trained < marks[0] * 60:
            continue
        marks.pop(0)
        t1 = time.perf_counter()
        with torch.inference_mode():
            v_net = net(tpl_h, subs_h[args.n_train :])
        infer_s = (time.perf_counter() - t1) / args.n_eval
        row = {"method": "VoxelMorph-style network", "train_minutes": round(trained / 60, 2), "steps": steps}
        row.update(seconds_per_subject=round(infer_s, 3), train_loss=float(loss))
        row["cpu_minutes_for_cohort"] = round((trained + args.cohort * infer_s) / 60, 1)
        print(json.dumps({**base, **row, **evaluate(v_net, labels, truth, warper)}), flush=True)


if __name__ == "__main__":
    main()
