"""Store benchmarks (JSON lines): write and random-read vs NIfTI, generation scaling, engine overhead.

Every timing is reported with a baseline measured in the same run, as a ratio (these machines are noisy):

* ``store_write``: writing V phantom volumes as sharded float16 Zarr vs as .nii.gz files (nibabel, float32);
* ``store_random_read``: random single-sample reads from the store vs from the .nii.gz files (target ≥ 10×);
* ``generate_workers``: phantom generation samples/s with 2 workers vs 1 (end to end, LocalCluster);
* ``generate_overhead``: end-to-end ``synthkit generate`` samples/s (1 worker, time from submission to the last
  shard) vs the generator's bare ``sample`` in one process (target ≥ 0.9);
* ``shard_flag``: a task's check of its own done flag, reading only that flag vs reading every shard's flag
  (one file each; what every task did before), on stores of 625 and 3,125 shards (20,000 and 100,000 samples).

Usage: ``python benchmarks/bench_store.py [--quick] [--part io|generate|shard_flag]``
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def emit(record: dict) -> None:
    record.setdefault("machine", f"{platform.machine()}, {__import__('os').cpu_count()} cores")
    print(json.dumps(record), flush=True)


def bench_io(tmp: Path, n: int, spacing: float, noise: float) -> None:
    """Write and random-read ``n`` volumes: store (zstd and lz4; float16 and uint8) vs one .nii.gz per volume.

    Volumes are phantoms with Gaussian noise of SD ``noise`` everywhere (real scans are noisy, background
    included, which decides how well they compress); 4 distinct phantoms are reused with fresh noise.
    """
    import nibabel as nib

    from synthkit.data.phantom import default_space, draw_params, render
    from synthkit.store.reader import open_cohort
    from synthkit.store.writer import write_images

    space = default_space(spacing)
    rng = np.random.default_rng(0)
    bases = [render(draw_params(s), space).image for s in range(4)]
    images = np.stack([np.clip(bases[i % 4] + rng.normal(0, noise, space.shape), 0, 1) for i in range(n)]).astype(
        np.float32
    )
    nii = tmp / f"nii-{spacing}-{noise}"
    nii.mkdir()
    t = time.perf_counter()
    for i in range(n):
        nib.save(nib.Nifti1Image(images[i], space.affine_array), str(nii / f"{i:05d}.nii.gz"))
    t_nii_write = time.perf_counter() - t
    order = rng.integers(0, n, size=n)
    t = time.perf_counter()
    for i in order:
        np.asarray(nib.load(str(nii / f"{int(i):05d}.nii.gz")).get_fdata(dtype=np.float32))
    t_nii_read = time.perf_counter() - t
    size_nii = sum(f.stat().st_size for f in nii.glob("*.nii.gz")) / n
    base = {"space": space.describe(), "volumes": n, "noise_sd": noise}
    for codec, dtype in (("zstd", "float16"), ("lz4", "float16"), ("zstd", "uint8"), ("lz4", "uint8")):
        store = tmp / f"bench-{spacing}-{noise}-{codec}-{dtype}.zarr"
        t = time.perf_counter()
        write_images(store, images, space, shard_size=8, codec=codec, dtype=dtype, generator={"kind": "phantom"})
        t_write = time.perf_counter() - t
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / n
        cohort = open_cohort(store)
        ds = cohort.torch_dataset(keys=[], only_qc_pass=False)
        t = time.perf_counter()
        for i in order:
            cohort.image(int(i))
        t_read = time.perf_counter() - t
        t = time.perf_counter()
        for i in order:
            ds[int(i)]
        t_read_torch = time.perf_counter() - t
        emit(
            {
                "bench": "store_write",
                **base,
                "codec": codec,
                "dtype": dtype,
                "store_vol_per_s": n / t_write,
                "nifti_gz_vol_per_s": n / t_nii_write,
                "ratio_store_vs_nifti": t_nii_write / t_write,
                "store_mb_per_vol": size / 1e6,
                "nifti_gz_mb_per_vol": size_nii / 1e6,
            }
        )
        emit(
            {
                "bench": "store_random_read",
                **base,
                "codec": codec,
                "dtype": dtype,
                "store_numpy_samples_per_s": n / t_read,
                "store_torch_dataset_samples_per_s": n / t_read_torch,
                "nifti_gz_samples_per_s": n / t_nii_read,
                "ratio_numpy_vs_nifti": t_nii_read / t_read,
                "ratio_torch_dataset_vs_nifti": t_nii_read / t_read_torch,
                "target": ">= 10",
            }
        )


def bench_generate(tmp: Path, n: int) -> None:
    from synthkit.generate.engine import GenerateOptions, run
    from synthkit.models.phantom import PhantomGenerator
    from synthkit.seeding import sample_seeds

    gen = PhantomGenerator(spacing=4.0)
    seeds = list(sample_seeds(0, range(n)))
    cond = gen.covariates.sample(n, np.random.default_rng(0))
    gen.sample(1, seeds=seeds[:1])  # template load, outside the timing
    t = time.perf_counter()
    for a in range(0, n, 8):
        gen.sample(
            len(seeds[a : a + 8]),
            seeds=seeds[a : a + 8],
            conditions={k: v[a : a + 8] for k, v in cond.items()},
        )
    bare = n / (time.perf_counter() - t)
    rates = {}
    for workers in (1, 2):
        out = tmp / f"gen{workers}.zarr"
        res = run(
            GenerateOptions(out=out, n=n, shard_size=16, batch_size=8, workers=workers, device="cpu"),
            progress=False,
            echo=lambda m: None,
        )
        rates[workers] = (n / res.generation_seconds, n / res.seconds)
        shutil.rmtree(out)
    emit(
        {
            "bench": "generate_workers",
            "model": "phantom 4 mm (40×56×40)",
            "samples": n,
            "samples_per_s_1_worker": rates[1][0],
            "samples_per_s_2_workers": rates[2][0],
            "ratio_2_vs_1": rates[2][0] / rates[1][0],
        }
    )
    emit(
        {
            "bench": "generate_overhead",
            "model": "phantom 4 mm (40×56×40)",
            "samples": n,
            "bare_sample_per_s": bare,
            "generate_1_worker_per_s": rates[1][0],
            "generate_1_worker_wall_per_s": rates[1][1],
            "ratio_generate_vs_bare": rates[1][0] / bare,
            "target": ">= 0.9",
        }
    )


def bench_shard_flag(tmp: Path, shard_counts: tuple[int, ...]) -> None:
    import zarr

    from synthkit.store import format as fmt
    from synthkit.store.reader import is_shard_done, shard_done

    for n in shard_counts:
        root = zarr.open_group(str(tmp / f"flags{n}.zarr"), mode="w")
        root.create_array(fmt.SHARD_DONE, shape=(n,), chunks=(1,), dtype=bool, fill_value=False)[:] = True
        t = time.perf_counter()
        for k in range(3):
            assert shard_done(root)[k]
        every = (time.perf_counter() - t) / 3
        t = time.perf_counter()
        for k in range(30):
            assert is_shard_done(root, k)
        own = (time.perf_counter() - t) / 30
        emit({"bench": "shard_flag", "shards": n, "read_every_flag_s": every, "read_own_flag_s": own,
              "ratio_every_vs_own": every / own})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--part", choices=["all", "io", "generate", "shard_flag"], default="all")
    args = ap.parse_args()
    part = {args.part} if args.part != "all" else {"io", "generate", "shard_flag"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for noise in (0.0, 0.01) if "io" in part else ():
            bench_io(tmp, 8 if args.quick else 32, 2.0 if args.quick else 1.0, noise)
        if "generate" in part:
            bench_generate(tmp, 64 if args.quick else 480)
        if "shard_flag" in part:
            bench_shard_flag(tmp, (100,) if args.quick else (625, 3125))


if __name__ == "__main__":
    main()
