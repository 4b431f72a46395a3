from pathlib import Path

import numpy as np
import pytest
import zarr


@pytest.fixture(scope="session")
def dask_address():
    """One LocalCluster (2 workers) shared by the engine tests; they reach it by address."""
    import logging

    from dask.distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    )
    yield cluster.scheduler_address
    cluster.close()


def array_bytes(path: Path) -> dict[str, bytes]:
    """The bytes of every array in a store (images, labels, shard_done, meta/*, checksums/*, plan_copy/*)."""
    g = zarr.open_group(str(path), mode="r")
    out = {}
    for name in ("images", "labels", "shard_done"):
        if name in g:
            out[name] = np.asarray(g[name][:]).tobytes()
    for group in ("meta", "checksums", "plan_copy"):
        if group in g:
            for name in sorted(g[group].array_keys()):
                out[f"{group}/{name}"] = np.asarray(g[group][name][:]).tobytes()
    return out
