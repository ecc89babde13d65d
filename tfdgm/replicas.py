"""Statistics of the global batch inside a replica's step under `tf.distribute`.

A `train_step` under a strategy sees its replica's slice of the global batch. Quantities that
must not depend on how the batch is split (free bits' batch-averaged KL, ActNorm's initial
statistics, a persistent chain count) are all-reduced over the replicas:

    global_mean(x)  =  sum_r sum_b x_{r,b}  /  sum_r B_r

Outside a strategy (or in the cross-replica context) it is the plain mean over `axis` 0.
"""

import tensorflow as tf


def global_sum(x):
    """`x` summed over the replicas in sync (`x` itself with one replica)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def global_mean(x, keepdims=False):
    """The mean of `x [B, ...]` over the examples of the global batch, `[...]`."""
    total = global_sum(tf.reduce_sum(x, axis=0, keepdims=keepdims))
    count = global_sum(tf.cast(tf.shape(x)[0], x.dtype))
    return total / count
