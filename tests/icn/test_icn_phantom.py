"""The ICN phantom: deterministic from its seed, each network's mass at its own nodes; 4D component files
expand into one manifest row per (subject, network)."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from synthkit.data import icn_phantom as ip
from synthkit.data.manifest import read_manifest, validate_manifest
from synthkit.errors import ManifestError


@pytest.fixture(scope="module")
def space():
    return ip.icn_space(8.0)


def test_seitzman_nodes_have_13_networks():
    nodes = ip.seitzman_nodes()
    assert len(nodes.names) == 13 and len(nodes.coords) == 285 and "unassigned" not in nodes.names
    assert set(ip.SEITZMAN_DOMAINS) == set(nodes.names)


def test_the_same_seed_renders_the_same_maps_and_another_differs(space):
    a = ip.render(ip.draw_params(7), space)
    b = ip.render(ip.draw_params(7), space)
    c = ip.render(ip.draw_params(8), space)
    assert a.shape == (*space.shape, 13) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05
    assert a.min() < -0.5 and a.max() > 2.0  # signed, z-like


def test_each_networks_mass_lies_at_its_own_nodes(space):
    nodes = ip.seitzman_nodes()
    maps = ip.render(ip.draw_params(3), space)
    world = space.world_coordinates().reshape(3, -1).T
    for k, name in enumerate(nodes.names):
        x = maps[..., k].reshape(-1)
        strong = np.where(x > 1.5, x, 0.0)  # above the noise (SD ≤ 0.5)
        own = np.linalg.norm(world[:, None] - nodes.of(name)[None], axis=-1).min(1) < 14
        other = nodes.coords[nodes.networks != name]
        assert strong[own].sum() / strong.sum() > 0.85, name
        # and not at the nodes of the other networks (far from its own)
        far = ~own & (np.linalg.norm(world[:, None] - other[None], axis=-1).min(1) < 6)
        assert strong[far].sum() / strong.sum() < 0.1, name


def test_phantom_cohort_expands_to_one_row_per_subject_and_network(tmp_path):
    manifest = ip.write_icn_cohort(tmp_path, 2, spacing=8.0, seed=1, progress=False)
    img = nib.load(tmp_path / "images" / "icn00000_components.nii.gz")
    assert img.shape[3] == 13 and int(img.header["sform_code"]) == 4
    m = read_manifest(manifest)
    assert len(m) == 26 and set(m.table["network"]) == set(ip.seitzman_nodes().names)
    assert m.table["subject_id"].iloc[0] == "icn00000_Auditory" and m.table["volume"].iloc[12] == 12
    assert (m.table["subject"] == "icn00001").sum() == 13
    _, problems = validate_manifest(manifest)
    assert problems == []
    params = pd.read_json(tmp_path / "params.jsonl", lines=True)
    assert {"smoothness_mm", "jitter_mm", "noise_sd", "node_seed"} <= set(params.columns)


def test_a_53_component_file_with_its_table_loads(tmp_path):
    """The NeuroMark form: one 4D file of 53 maps and a component table → 53 rows."""
    aff = np.diag([8.0, 8.0, 8.0, 1.0])
    nib.save(
        nib.Nifti1Image(np.random.default_rng(0).normal(size=(4, 4, 4, 53)).astype(np.float32), aff),
        tmp_path / "sub1.nii.gz",
    )
    pd.DataFrame({"index": range(53), "name": [f"IC{i}" for i in range(53)]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"subject_id": ["sub1"], "image": ["sub1.nii.gz"], "components": ["c.csv"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    m = read_manifest(tmp_path / "m.csv")
    assert len(m) == 53 and m.volumes()[52] == 52 and m.table["network"].iloc[52] == "IC52"


def test_a_bad_component_table_is_one_line(tmp_path):
    pd.DataFrame({"index": [0, 0], "name": ["A", "A"]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"subject_id": ["s"], "image": ["x.nii.gz"], "components": ["c.csv"]}).to_csv(tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="unique"):
        read_manifest(tmp_path / "m.csv", check_files=False)


def test_phantom_kind_icn_on_the_command_line(tmp_path, capsys):
    from synthkit.cli import main

    code = main(["phantom", str(tmp_path / "icn"), "--kind", "icn", "--n", "1", "--spacing", "12"])
    assert code in (0, None) and (tmp_path / "icn" / "components.csv").exists()
    assert len(read_manifest(tmp_path / "icn" / "manifest.csv")) == 13
    capsys.readouterr()
    code = main(["phantom", str(tmp_path / "x"), "--kind", "fmri"])
    text = "".join(capsys.readouterr())
    assert code == 2 and "Traceback" not in text
    assert [line for line in text.splitlines() if line.startswith("synthkit: error:")] == [
        "synthkit: error: --kind 'fmri': expected t1 or icn"
    ]
