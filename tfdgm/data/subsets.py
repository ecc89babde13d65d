"""Evenly spaced subsets of an evaluation split.

Costly estimators (importance-sampled NLL, ELBO surgery) run on `limit` of a split's `N`
examples. Taking the first `limit` inherits the order of the file (the first 1000 static-MNIST
test digits score 12 nats worse than the rest), so the subset is spread over the whole split:

    index_i = floor(i * N / limit),    i = 0, ..., limit - 1,

`limit` strictly increasing indices from 0 to at most `N - N / limit`, consecutive ones
`floor(N / limit)` or `ceil(N / limit)` apart. (Every `floor(N / limit)`-th example, what
`Dataset.shard` gives, stops spreading once `limit > N / 2`: the stride is 1 and the subset is
the first `limit` examples.)
"""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf


def evenly_spaced_indices(num_examples: int, limit: Optional[int]) -> np.ndarray:
    """The int64 indices `floor(i * N / limit)`, `i < limit`, of `limit` of `N` examples.

    ```python
    evenly_spaced_indices(10, 4)     # [0, 2, 5, 7]
    evenly_spaced_indices(10, None)  # [0, ..., 9]
    ```

    Args:
        num_examples: `N >= 0`.
        limit: how many to keep; None, 0 or `>= N` keeps all `N`.
    """
    if num_examples < 0 or (limit is not None and limit < 0):
        raise ValueError(f"need num_examples >= 0 and limit >= 0, got {num_examples}, {limit}.")
    if not limit or limit >= num_examples:
        return np.arange(num_examples, dtype=np.int64)
    # Integer arithmetic: exact for any N (float i * N / limit can round up across an integer).
    return np.arange(limit, dtype=np.int64) * num_examples // limit


def evenly_spaced(dataset: tf.data.Dataset, num_examples: int,
                  limit: Optional[int]) -> Tuple[tf.data.Dataset, int]:
    """`(unbatched dataset, count)`: the examples of `evenly_spaced_indices(N, limit)`, in order.

    ```python
    subset, count = evenly_spaced(datasets.test, datasets.info.num_examples["test"], 1000)
    ```

    Args:
        dataset: a batched dataset of `num_examples` examples (e.g. `Datasets.test`).
        num_examples: `N`, the number of examples in `dataset`.
        limit: how many to keep; None, 0 or `>= N` keeps all.
    """
    examples = dataset.unbatch()
    indices = evenly_spaced_indices(num_examples, limit)
    if len(indices) == num_examples:
        return examples, num_examples
    keep = np.zeros(num_examples, bool)
    keep[indices] = True
    selected = tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(keep), examples)
    return selected.filter(lambda kept, _: kept).map(lambda _, example: example), len(indices)
