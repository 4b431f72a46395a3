"""Damaged stores: ``verify`` names every damaged sample (exit 1, no traceback); ``verify --repair`` then
``generate --resume`` gives back a store byte-identical to one never damaged."""

import json
import shutil

import numpy as np
import pytest
import zarr

from synthkit.cli import main
from synthkit.generate.engine import GenerateOptions, run
from synthkit.store import checksum
from synthkit.store import format as fmt

from .conftest import array_bytes

N, SHARD = 40, 4


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dask_address):
    out = tmp_path_factory.mktemp("integrity") / "ref.zarr"
    o = GenerateOptions(out=out, n=N, shard_size=SHARD, batch_size=4, seed=3, spacing=8.0, device="cpu",
                        cluster=dask_address)
    run(o, progress=False, echo=lambda m: None)
    return out


@pytest.fixture
def store(tmp_path, reference):
    p = tmp_path / "c.zarr"
    shutil.copytree(reference, p)
    return p


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text, text
    return code, text


def reported(text: str) -> set[int]:
    return {int(line.split()[2].rstrip(":")) for line in text.splitlines() if line.startswith("error: sample ")}


def repair_and_resume(capsys, store, reference, dask_address):
    code, text = cli(capsys, "verify", store, "--repair")
    assert code == 0 and "repaired:" in text, text
    assert cli(capsys, "generate", "--out", store, "--resume", "--cluster", dask_address)[0] == 0
    assert cli(capsys, "verify", store)[0] == 0
    assert array_bytes(store) == array_bytes(reference)


def shard_file(store, name, k):
    g = zarr.open_group(str(store), mode="r")
    coords = (k, 0, 0, 0) if name in ("images", "labels") else (k,)
    return checksum.chunk_file(store, name, g[name], coords)


def test_an_intact_store_verifies(capsys, reference):
    code, text = cli(capsys, "verify", reference)
    assert code == 0 and f"{N} samples checked" in text
    assert cli(capsys, "verify", reference, "--quick")[0] == 0


def test_deleted_shards_and_chunks_are_named_and_repaired(capsys, store, reference, dask_address):
    shard_file(store, "images", 2).unlink()  # samples 8–11
    shard_file(store, "labels", 4).unlink()  # 16–19
    shard_file(store, "meta/qc_pass", 1).unlink()  # 4–7
    shard_file(store, "meta/age", 7).unlink()  # 28–31: the plan, restored from plan_copy
    data = bytearray(shard_file(store, "images", 9).read_bytes())
    data[-10] ^= 0x01  # the shard index: every sample of shard 9 (36–39)
    shard_file(store, "images", 9).write_bytes(bytes(data))
    expected = {*range(4, 12), *range(16, 20), *range(28, 32), *range(36, 40)}
    for quick in ((), ("--quick",)):
        code, text = cli(capsys, "verify", store, *quick)
        assert code == 1 and reported(text) == expected, text
    repair_and_resume(capsys, store, reference, dask_address)


def _chunks(store):
    """Every chunk of the store as (file, byte range or None for the whole file, damaged samples)."""
    g = zarr.open_group(str(store), mode="r")
    info = fmt.StoreInfo.from_json(dict(g.attrs[fmt.ATTRS_KEY]))
    out = []
    for k in range(info.n_shards):
        a, b = info.shard_range(k)
        for name in ("images", "labels"):
            data = shard_file(store, name, k).read_bytes()
            index = np.frombuffer(data[-(16 * SHARD + 4) : -4], "<u8").reshape(SHARD, 2)
            out += [(shard_file(store, name, k), (int(o), int(o + n)), {a + j}) for j, (o, n) in enumerate(index)]
        for name in [*info.plan_arrays(), *info.task_meta_arrays()]:
            f = shard_file(store, f"meta/{name}", k)
            if f.exists():
                out.append((f, None, set(range(a, b))))
    return out


def test_one_bit_flipped_in_each_of_100_random_chunks(capsys, store, reference, dask_address):
    rng = np.random.default_rng(14)
    chunks = _chunks(store)
    assert len(chunks) >= 100
    expected = set()
    for i in rng.choice(len(chunks), 100, replace=False):
        f, span, samples = chunks[i]
        data = bytearray(f.read_bytes())
        lo, hi = span or (0, len(data))
        byte = int(rng.integers(lo, hi))
        data[byte] ^= 1 << int(rng.integers(8))
        f.write_bytes(bytes(data))
        expected |= samples
    code, text = cli(capsys, "verify", store)
    assert code == 1
    assert reported(text) == expected  # 100 % found, nothing else accused
    repair_and_resume(capsys, store, reference, dask_address)


def test_undecodable_chunks_are_one_line_in_export(capsys, store, tmp_path):
    f = shard_file(store, "images", 3)
    data = bytearray(f.read_bytes())
    data[20:28] = b"\xff" * 8  # inside sample 12's blosc header
    f.write_bytes(bytes(data))
    code, text = cli(capsys, "verify", store)
    assert code == 1 and 12 in reported(text) and "does not decode" in text
    code, text = cli(capsys, "export", store, tmp_path / "nii", "--indices", "12")
    assert code == 1 and "sample 12" in text and len(text.strip().splitlines()) == 1, text


def test_a_version_1_store_is_read_and_verified_without_checksums(capsys, store):
    shutil.rmtree(store / "checksums")
    shutil.rmtree(store / "plan_copy")
    meta = json.loads((store / "zarr.json").read_text())
    meta.pop("consolidated_metadata", None)
    meta["attributes"]["synthkit"]["format_version"] = 1
    meta["attributes"]["synthkit"].pop("checksum_columns")
    (store / "zarr.json").write_text(json.dumps(meta))
    code, text = cli(capsys, "verify", store)
    assert code == 0 and "no checksums" in text, text
    shard_file(store, "images", 2).unlink()
    code, text = cli(capsys, "verify", store)
    assert code == 1 and reported(text) == {8, 9, 10, 11}, text


def test_the_reader_refuses_to_serve_zeros_for_a_missing_chunk(store):
    from synthkit import open_cohort
    from synthkit.errors import StoreError

    shard_file(store, "images", 2).unlink()
    cohort = open_cohort(store)
    assert cohort[7]["image"].any()  # the shard before is untouched
    for read in (lambda: cohort[9], lambda: cohort.image(8), lambda: cohort.images([3, 10])):
        with pytest.raises(StoreError, match="chunk is missing"):
            read()


def test_damaged_plan_checksums_are_recorded_again(capsys, store, reference, dask_address):
    f = store / "checksums" / "plan" / "c" / "0" / "0"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x10
    f.write_bytes(bytes(data))
    code, text = cli(capsys, "verify", store)
    assert code == 1 and "checksums/plan" in text and reported(text) == set(), text
    repair_and_resume(capsys, store, reference, dask_address)
