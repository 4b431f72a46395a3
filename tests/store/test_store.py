import multiprocessing as mp

import nibabel as nib
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthkit import open_cohort
from synthkit.errors import StoreError, UsageError
from synthkit.space import ImageSpace
from synthkit.store import format as fmt
from synthkit.store.export import export_nifti, parse_indices
from synthkit.store.format import StoreInfo
from synthkit.store.verify import verify_store
from synthkit.store.writer import create_store, write_shard


def make_info(n=10, shard=4, shape=(4, 5, 6), dtype="float16", labels=True, measures=("m",)):
    return StoreInfo(
        space=ImageSpace.centered(shape, 2.0),
        n=n,
        shard_size=shard,
        dtype=dtype,
        root_seed=0,
        condition_names=["age", "sex"],
        measure_names=list(measures),
        has_labels=labels,
        generator={"kind": "test", "model": "test"},
    )


def plan(n):
    return {"age": np.linspace(40, 80, n), "sex": (np.arange(n) % 2).astype(float)}, np.arange(n, dtype=np.uint64) + 7


def fill(path, info, images, labels=None):
    for k in range(info.n_shards):
        a, b = info.shard_range(k)
        write_shard(
            path,
            info,
            k,
            images=images[a:b],
            labels=None if labels is None else labels[a:b],
            qc_attempts=np.ones(b - a),
            qc_pass=np.ones(b - a, bool),
            measures={m: np.arange(a, b, dtype=float) for m in info.measure_names},
        )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 9),
    shard=st.integers(1, 4),
    dtype=st.sampled_from(["float16", "uint8"]),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
)
def test_round_trip(tmp_path_factory, n, shard, dtype, shape, seed):
    path = tmp_path_factory.mktemp("rt") / "c.zarr"
    info = make_info(n, shard, shape, dtype)
    cond, seeds = plan(n)
    create_store(path, info, conditions=cond, seeds=seeds)
    rng = np.random.default_rng(seed)
    images = rng.random((n, *shape)).astype(np.float32)
    labels = rng.integers(0, 5, (n, *shape)).astype(np.uint8)
    fill(path, info, images, labels)
    c = open_cohort(path)
    assert len(c) == n
    tol = 1 / 510 + 1e-6 if dtype == "uint8" else 1e-3
    for i in range(n):
        item = c[i]
        assert np.abs(item["image"] - images[i]).max() <= tol
        assert np.array_equal(item["label"], labels[i])
        assert item["age"] == pytest.approx(cond["age"][i]) and item["m"] == i
    assert list(c.conditions["seed"]) == list(seeds)
    order = list(rng.permutation(n))
    assert np.array_equal(c.images(order), np.stack([c.image(i) for i in order]))
    assert verify_store(path).ok


def test_existing_path_is_not_overwritten(tmp_path):
    path = tmp_path / "c.zarr"
    info = make_info()
    create_store(path, info, conditions=plan(10)[0], seeds=plan(10)[1])
    with pytest.raises(StoreError, match="already exists"):
        create_store(path, make_info(), conditions=plan(10)[0], seeds=plan(10)[1])
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(StoreError, match="not a synthkit store"):
        create_store(other, make_info(), conditions=plan(10)[0], seeds=plan(10)[1], overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"


def test_unwritable_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        create_store(blocker / "c.zarr", make_info(), conditions=plan(10)[0], seeds=plan(10)[1])


def _writer(args):
    path, shards = args
    info = StoreInfo.from_json(dict(zarr.open_group(path, mode="r").attrs[fmt.ATTRS_KEY]))
    for k in shards:
        a, b = info.shard_range(k)
        imgs = np.stack([np.full(info.space.shape, (i + 1) / 100, np.float32) for i in range(a, b)])
        write_shard(
            path,
            info,
            k,
            images=imgs,
            labels=np.zeros_like(imgs, np.uint8),
            qc_attempts=np.ones(b - a),
            qc_pass=np.ones(b - a, bool),
            measures={"m": np.zeros(b - a)},
        )


def test_two_processes_writing_one_store_lose_nothing(tmp_path):
    path = tmp_path / "c.zarr"
    info = make_info(n=40, shard=2)
    create_store(path, info, conditions=plan(40)[0], seeds=plan(40)[1])
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_writer, [(str(path), range(0, 20, 2)), (str(path), range(1, 20, 2))])
    c = open_cohort(path)
    means = [float(c.image(i).mean()) for i in range(40)]
    assert means == pytest.approx([(i + 1) / 100 for i in range(40)], abs=1e-3)
    assert verify_store(path).ok


def test_incomplete_store_is_refused_unless_asked(tmp_path):
    path = tmp_path / "c.zarr"
    info = make_info(n=10, shard=4)
    create_store(path, info, conditions=plan(10)[0], seeds=plan(10)[1])
    write_shard(
        path,
        info,
        1,
        images=np.ones((4, 4, 5, 6), np.float32) / 2,
        labels=np.zeros((4, 4, 5, 6)),
        qc_attempts=np.ones(4),
        qc_pass=np.ones(4, bool),
        measures={"m": np.zeros(4)},
    )
    with pytest.raises(StoreError, match="2 of 3 shards are not written"):
        open_cohort(path)
    c = open_cohort(path, allow_incomplete=True)
    assert len(c) == 4 and c[0]["index"] == 4
    rep = verify_store(path)
    assert not rep.ok and "2 of 3 shards are not written: 0, 2" in rep.errors[0]


def test_verify_finds_nans_and_mismatches(tmp_path):
    path = tmp_path / "c.zarr"
    info = make_info(n=4, shard=2)
    create_store(path, info, conditions=plan(4)[0], seeds=plan(4)[1])
    fill(path, info, np.full((4, 4, 5, 6), 0.5, np.float32), np.zeros((4, 4, 5, 6), np.uint8))
    g = zarr.open_group(str(path), mode="r+")
    bad = np.asarray(g["images"][3])
    bad[0, 0, 0] = np.nan
    g["images"][3] = bad
    rep = verify_store(path)
    assert any("sample(s) 3 hold NaN" in e for e in rep.errors)
    g["meta"].create_array("extra", shape=(3,), dtype="float64")
    del g["meta"]["age"]
    g["meta"].create_array("age", shape=(3,), dtype="float64")
    rep = verify_store(path)
    assert any("meta/age has 3 values for 4 samples" in e for e in rep.errors)


def test_verify_reports_a_folder_that_is_not_a_store(tmp_path):
    rep = verify_store(tmp_path)
    assert not rep.ok and ("not a zarr group" in rep.errors[0] or "synthkit attributes" in rep.errors[0])


def test_export_round_trips_with_nibabel(tmp_path):
    path = tmp_path / "c.zarr"
    info = make_info(n=5, shard=2)
    create_store(path, info, conditions=plan(5)[0], seeds=plan(5)[1])
    images = np.random.default_rng(0).random((5, 4, 5, 6)).astype(np.float32)
    fill(path, info, images, np.ones((5, 4, 5, 6), np.uint8))
    files = export_nifti(path, tmp_path / "out", parse_indices("1:3", 5))
    assert [f.name for f in files] == ["sample_000001.nii.gz", "sample_000002.nii.gz"]
    img = nib.load(files[1])
    assert img.get_data_dtype() == np.float32
    assert np.allclose(img.affine, info.space.affine_array)
    assert np.allclose(np.asarray(img.dataobj), images[2], atol=1e-3)
    assert (tmp_path / "out" / "sample_000002_label.nii.gz").exists()
    assert (tmp_path / "out" / "conditions.csv").read_text().count("\n") == 3


@pytest.mark.parametrize(
    ("spec", "expected"), [("0:3", [0, 1, 2]), ("4", [4]), ("1,3", [1, 3]), ("::2", [0, 2, 4]), ("-1", [4])]
)
def test_parse_indices(spec, expected):
    assert parse_indices(spec, 5) == expected


@pytest.mark.parametrize("spec", ["7", "a:b", "1:2:3:4", "5:9"])
def test_parse_indices_bad(spec):
    with pytest.raises(UsageError):
        parse_indices(spec, 5)


def test_write_images_packs_a_complete_store_with_the_chosen_codec(tmp_path):
    import json

    from synthkit.store.writer import write_images

    images = np.random.default_rng(0).random((5, 4, 5, 6)).astype(np.float32)
    info = write_images(
        tmp_path / "c.zarr",
        images,
        ImageSpace.centered((4, 5, 6), 2.0),
        shard_size=2,
        codec="lz4",
        conditions={"age": np.arange(5.0)},
    )
    assert info.codec == "lz4" and info.n_shards == 3
    meta = json.loads((tmp_path / "c.zarr" / "images" / "zarr.json").read_text())
    assert "lz4" in json.dumps(meta["codecs"])
    c = open_cohort(tmp_path / "c.zarr")
    assert np.allclose(c.images([4, 0]), images[[4, 0]], atol=1e-3) and list(c.conditions["age"]) == [0, 1, 2, 3, 4]
    assert verify_store(tmp_path / "c.zarr").ok
