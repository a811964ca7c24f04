from __future__ import annotations

import pytest

from rrra_core.data.subsample import carve_dev, subsample_queries
from rrra_core.runtime.errors import ConfigError

QIDS = [f"q{i:03d}" for i in range(150)]


def test_the_dev_split_is_disjoint_fixed_per_seed_and_sized_by_the_fraction():
    train, dev = carve_dev(QIDS, 0.2, seed=0)
    assert len(dev) == 30 and len(train) == 120 and not set(train) & set(dev)
    assert sorted(train + dev) == QIDS
    assert carve_dev(reversed(QIDS), 0.2, seed=0) == (train, dev)  # order of the input does not matter
    assert carve_dev(QIDS, 0.2, seed=1)[1] != dev
    # Its own stream: not the same draw as the max_train_queries subsample of the same seed.
    assert set(dev) != set(subsample_queries(QIDS, 30, seed=0))


def test_a_tiny_collection_keeps_a_query_on_each_side():
    assert carve_dev(["a", "b"], 0.01, seed=0)[1] and carve_dev(["a", "b"], 0.99, seed=0)[0]


@pytest.mark.parametrize(
    ("ids", "fraction", "match"), [(QIDS, 0.0, "dev_fraction"), (QIDS, 1.0, "dev_fraction"), (["a"], 0.2, "at least 2")]
)
def test_bad_dev_settings_are_one_line_errors(ids, fraction, match):
    with pytest.raises(ConfigError, match=match):
        carve_dev(ids, fraction, seed=0)
