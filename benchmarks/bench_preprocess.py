"""Real-scan preprocessing on the head phantom (JSON lines): cost per subject and accuracy, at 2 mm and 1 mm.

For each scan (N subjects × RAS/LPS/PSR × two sites, rendered at ``--spacing``) the ``register`` pipeline
(N4, affine to MNI152, brain mask, standardisation) is timed against the ``resample`` pipeline (what
preprocessing did before: reorient, resample, centre, percentiles) on the same scan in the same run, and
checked against the truth: brain voxels on the grid's faces, offset of the true brain's centre from the grid
centre in voxels (the centre of its bounding box, and its centroid), Dice of the brain mask brought back to the
scan vs the true mask, and brain median/mean per site (inside the extracted mask, whose median is a landmark,
and inside the true brain mask, which is not).

``--compare`` also registers each N4-corrected scan with SimpleITK (synthkit's rigid then affine) and with
ANTsPy (``antspyx``, if importable: its ``TRSAA`` — translation, rigid, similarity, two affine stages), both
with Mattes MI inside the template brain from the same initial translation, and reports time and Dice of the
brain mask brought back: how the registration library was chosen.

Usage: ``python benchmarks/bench_preprocess.py [--n 2] [--spacing 2] [--compare]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from synthkit.data import head_phantom as hp
from synthkit.data import register as reg
from synthkit.data.preprocess import PreprocessParams, preprocess
from synthkit.space import ImageSpace


def _faces(m: np.ndarray) -> int:
    faces = (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1], np.s_[:, :, 0], np.s_[:, :, -1])
    return sum(int(m[s].sum()) for s in faces)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.sum(a & b) / (a.sum() + b.sum()))


def _ants_register(data, affine, t0):
    """ANTsPy's multi-stage affine registration with the same metric, mask and start as ``register.register``."""
    import tempfile

    import ants

    tpl = reg.template()
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])

    def to_ants(arr, aff):
        a = flip @ aff
        sp = np.linalg.norm(a[:3, :3], axis=0)
        origin, direction = a[:3, 3].tolist(), a[:3, :3] / sp
        return ants.from_numpy(arr.astype(np.float32), origin=origin, spacing=sp.tolist(), direction=direction)

    small, small_aff = reg.downsample(data, affine, reg.MOVING_SPACING)
    init = ants.create_ants_transform(
        transform_type="AffineTransform",
        dimension=3,
        center=(flip[:3, :3] @ tpl.brain_center).tolist(),
        translation=(flip[:3, :3] @ t0).tolist(),
    )
    with tempfile.TemporaryDirectory() as d:
        fn = os.path.join(d, "init.mat")
        ants.write_transform(init, fn)
        out = ants.registration(
            to_ants(tpl.t1, tpl.affine),
            to_ants(small, small_aff),
            type_of_transform="TRSAA",
            initial_transform=[fn],
            mask=to_ants(tpl.mask.astype(np.float32), tpl.affine),
            aff_metric="mattes",
            aff_sampling=32,
            aff_random_sampling_rate=0.25,
            aff_iterations=(200, 200, 100),
            aff_shrink_factors=(4, 2, 1),
            aff_smoothing_sigmas=(2, 1, 0),
        )
        tx = ants.read_transform(out["fwdtransforms"][0])
    p = np.asarray(tx.parameters)
    a, t, c = p[:9].reshape(3, 3), p[9:], np.asarray(tx.fixed_parameters)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = a, t + c - a @ c
    return flip @ m @ flip


def _compare(scan, space) -> dict:
    """Registration only, both libraries, on the same N4-corrected scan; Dice of the brain brought back."""
    from synthkit.data.preprocess import Preprocessed

    data = scan.image.astype(np.float32)
    head = reg.head_mask(data)
    data = data / reg.bias_field(data, scan.affine, head, grids=[(data.shape, scan.affine)])[0]
    t0 = reg.initial_translation(head, scan.affine)
    row = {}
    for lib in ("sitk", "ants"):
        t = time.perf_counter()
        try:
            m = reg.register(data, scan.affine, t0)[0] if lib == "sitk" else _ants_register(data, scan.affine, t0)
        except ImportError:
            continue
        secs = time.perf_counter() - t
        res = Preprocessed(np.empty(0), "register", None, None, m)
        dice = _dice(res.native_brain_mask(scan.brain_mask.shape, scan.affine), scan.brain_mask > 0)
        row[lib] = {"seconds": round(secs, 2), "dice": round(dice, 4)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--spacing", type=float, default=2.0)
    ap.add_argument("--compare", action="store_true")
    args = ap.parse_args()
    shape = tuple(round(e / args.spacing) for e in (160, 224, 160))
    space = ImageSpace.centered(shape, args.spacing)
    medians: dict[tuple[int, str], list[float]] = {}
    truth_medians: dict[tuple[int, str], list[float]] = {}
    for i in range(args.n):
        for o in hp.ORIENTATIONS:
            for site in (0, 1):
                scan = hp.render_head(hp.draw_head_params(500 + i, orientation=o, site=site, spacing=args.spacing))
                t = time.perf_counter()
                preprocess(scan.image, scan.affine, space, PreprocessParams(mode="resample"))
                base = time.perf_counter() - t
                t = time.perf_counter()
                res = preprocess(scan.image, scan.affine, space)
                secs = time.perf_counter() - t
                truth = res.to_output_grid(scan.brain_mask, scan.affine) > 0.5
                idx = np.argwhere(truth)
                signed = (idx.min(0) + idx.max(0)) / 2 - (np.array(shape) - 1) / 2  # along x, y, z (RAS grid)
                centre = np.abs(signed)
                centroid = np.abs(idx.mean(0) - (np.array(shape) - 1) / 2)
                in_truth = float(np.median(res.image[truth]))
                truth_medians[(i, o)] = [*truth_medians.get((i, o), []), in_truth]
                native = res.native_brain_mask(scan.brain_mask.shape, scan.affine)
                brain = res.image[res.brain_mask]
                medians[(i, o)] = [*medians.get((i, o), []), float(np.median(brain)), float(brain.mean())]
                row = {
                    "bench": "preprocess",
                    "scan": f"head{i}_{o}_site{site}",
                    "spacing_mm": args.spacing,
                    "scan_voxels": int(scan.image.size),
                    "register_s": round(secs, 2),
                    "resample_s": round(base, 2),
                    "ratio_register_vs_resample": round(secs / base, 1),
                    "brain_voxels_on_faces": _faces(truth),
                    "brain_centre_offset_vox": round(float(centre.max()), 2),
                    "brain_centre_offset_xyz_vox": [round(float(v), 2) for v in signed],
                    "brain_centroid_offset_vox": round(float(centroid.max()), 2),
                    "dice_brain_mask": round(_dice(native, scan.brain_mask > 0), 4),
                    "brain_median": round(float(np.median(brain)), 4),
                    "brain_mean": round(float(brain.mean()), 4),
                    "median_in_true_brain": round(in_truth, 4),
                    "threads": os.environ.get("OMP_NUM_THREADS", "all"),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                }
                if args.compare:
                    row["registration_only"] = _compare(scan, space)
                print(json.dumps(row), flush=True)
    for (i, o), (m0, a0, m1, a1) in medians.items():
        print(
            json.dumps(
                {
                    "bench": "preprocess-sites",
                    "subject": i,
                    "orientation": o,
                    "median_rel_diff": round(abs(m0 - m1) / max(m0, m1), 4),
                    "mean_rel_diff": round(abs(a0 - a1) / max(a0, a1), 4),
                    "true_brain_median_rel_diff": round(
                        abs(truth_medians[(i, o)][0] - truth_medians[(i, o)][1]) / max(truth_medians[(i, o)]), 4
                    ),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
