import os
from pathlib import Path

import pytest

from synthkit.errors import RecipeError, UsageError
from synthkit.generate.cluster import connect, load_cluster_config, slurm_cluster

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "cluster-slurm.yaml"


def test_slurm_job_script_from_the_shipped_config():
    cfg = load_cluster_config(RECIPE)
    script = slurm_cluster(cfg).job_script()
    assert "#SBATCH --gres=gpu:1" in script
    assert "#SBATCH -p gpu" in script and "#SBATCH -t 08:00:00" in script
    assert "--resources GPU=1" in script
    assert "source .venv/bin/activate" in script


def test_bad_cluster_config_names_the_field(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("kind: slurm\njobs: 0\ncorez: 3\n")
    with pytest.raises(RecipeError, match="jobs: .*greater than or equal to 1.*corez: unknown key"):
        load_cluster_config(p)


@pytest.mark.parametrize(("cluster", "match"), [("kubernetes", "expected local"), ("slurm", "needs --cluster-config")])
def test_bad_cluster_choices(cluster, match):
    with pytest.raises(UsageError, match=match):
        connect(cluster, workers=1)


def test_unreachable_scheduler():
    with pytest.raises(UsageError, match="cannot reach"):
        connect("tcp://127.0.0.1:9", workers=1, timeout="2s")


def test_local_workers_keep_short_histories(monkeypatch):
    """A long run fills every bounded history a worker keeps: they are shortened for local workers."""
    # a nanny started earlier in this process (another test's cluster) leaves its environment in os.environ
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    client, cluster, _ = connect("local", workers=1)
    try:
        found = client.run(
            lambda dask_worker: (
                dask_worker.state.stimulus_log.maxlen,
                dask_worker.state.log.maxlen,
                dask_worker.monitor.maxlen,
                "MALLOC_TRIM_THRESHOLD_" in os.environ,
            )
        )
    finally:
        client.close()
        cluster.close()
    assert list(found.values()) == [(100, 100, 120, False)]
