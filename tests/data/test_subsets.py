"""`evenly_spaced`: `limit` of `N` examples spread over the whole split."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.data import evenly_spaced, evenly_spaced_indices


def limits(n):
    return [n - 1, n // 2 + 1, n // 3 + 1, 7, 1]


@pytest.mark.parametrize("n", [1000, 997, 10000])
def test_indices_span_the_whole_set(n):
    for limit in limits(n):
        indices = evenly_spaced_indices(n, limit)
        assert len(indices) == limit and indices.dtype == np.int64
        assert indices[0] == 0 and np.all(np.diff(indices) > 0)
        # Last index at most N - N / limit and within one stride of it.
        assert n - n / limit - 1 < indices[-1] <= n - n / limit
        gaps = set(np.diff(indices).tolist())
        assert gaps <= {n // limit, -(-n // limit)}, (limit, gaps)
        np.testing.assert_array_equal(indices, np.floor(np.arange(limit) * n / limit))


def test_indices_for_limits_that_keep_everything():
    for limit in (None, 0, 1000, 5000):
        np.testing.assert_array_equal(evenly_spaced_indices(1000, limit), np.arange(1000))
    np.testing.assert_array_equal(evenly_spaced_indices(10, 4), [0, 2, 5, 7])
    assert evenly_spaced_indices(0, 5).size == 0
    with pytest.raises(ValueError):
        evenly_spaced_indices(10, -1)


@pytest.mark.parametrize("limit", [None, 600, 334, 5, 1])
def test_dataset_subset_is_the_indexed_examples(limit):
    n = 1000
    images = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    batched = tf.data.Dataset.from_tensor_slices(images).batch(64)
    subset, count = evenly_spaced(batched, n, limit)
    got = np.stack(list(subset.as_numpy_iterator()))
    want = evenly_spaced_indices(n, limit)
    assert count == len(want) == len(got)
    np.testing.assert_array_equal(got, images[want])
    # Batches of (image, label) pairs keep their structure.
    pairs = tf.data.Dataset.from_tensor_slices((images, np.arange(n))).batch(100)
    subset, count = evenly_spaced(pairs, n, limit)
    labels = [int(y) for _, y in subset.as_numpy_iterator()]
    assert labels == want.tolist()
