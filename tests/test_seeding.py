import numpy as np

from synthkit.seeding import plan_rng, retry_seed, sample_seed, sample_seeds


def test_sample_seed_depends_only_on_root_and_index():
    assert sample_seed(7, 3) == sample_seed(7, 3)
    assert sample_seed(7, 3) != sample_seed(7, 4)
    assert sample_seed(7, 3) != sample_seed(8, 3)
    seeds = sample_seeds(7, range(1000))
    assert seeds.dtype == np.uint64 and len(np.unique(seeds)) == 1000
    assert int(seeds.max()) < 2**63
    assert [int(s) for s in sample_seeds(7, [5, 2])] == [sample_seed(7, 5), sample_seed(7, 2)]


def test_retry_seeds_differ_from_the_sample_seed():
    s = sample_seed(0, 0)
    assert retry_seed(s, 0) == s
    assert len({retry_seed(s, a) for a in range(5)}) == 5


def test_plan_stream_is_reproducible_and_separate():
    a = plan_rng(1).random(3)
    assert np.array_equal(a, plan_rng(1).random(3))
    assert not np.array_equal(a, plan_rng(2).random(3))
