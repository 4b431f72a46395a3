import numpy as np
import torch
from torch.utils.data import DataLoader

from synthkit import open_cohort
from synthkit.store.torch import ShardShuffleSampler
from synthkit.store.writer import create_store

from .test_store import fill, make_info, plan


def small_store(tmp_path, n=12, shard=4):
    path = tmp_path / "c.zarr"
    info = make_info(n=n, shard=shard)
    create_store(path, info, conditions=plan(n)[0], seeds=plan(n)[1])
    images = np.stack([np.full((4, 5, 6), i / 20, np.float32) for i in range(n)])
    fill(path, info, images, np.zeros((n, 4, 5, 6), np.uint8))
    return path


def test_multiworker_dataloader_returns_monai_style_dicts(tmp_path):
    ds = open_cohort(small_store(tmp_path)).torch_dataset(with_labels=True)
    loader = DataLoader(ds, batch_size=3, num_workers=2, sampler=ds.sampler(buffer_shards=2, seed=1))
    seen = []
    for batch in loader:
        assert batch["image"].shape[1:] == (1, 4, 5, 6) and batch["image"].dtype == torch.float32
        assert batch["label"].dtype == torch.int64
        assert set(batch) >= {"image", "label", "age", "sex", "index"}
        for img, idx, age in zip(batch["image"], batch["index"], batch["age"], strict=True):
            assert abs(float(img.mean()) - int(idx) / 20) < 1e-3
            assert abs(float(age) - np.linspace(40, 80, 12)[int(idx)]) < 1e-4
        seen.extend(int(i) for i in batch["index"])
    assert sorted(seen) == list(range(12))


def test_shard_sampler_covers_everything_once_and_stays_local():
    shard_of = np.repeat(np.arange(10), 8)
    s = ShardShuffleSampler(shard_of, buffer_shards=2, seed=0)
    order = list(s)
    assert sorted(order) == list(range(80))
    # each run of 16 draws comes from only 2 shards
    for g in range(0, 80, 16):
        assert len(set(shard_of[order[g : g + 16]])) == 2
    s.set_epoch(1)
    assert list(s) != order


def test_transform_and_keys(tmp_path):
    ds = open_cohort(small_store(tmp_path)).torch_dataset(
        keys=["age"], transform=lambda d: {**d, "image": d["image"] * 2}
    )
    item = ds[5]
    assert set(item) == {"image", "age", "index"} and abs(float(item["image"].mean()) - 0.5) < 1e-3
