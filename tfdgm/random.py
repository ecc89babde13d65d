"""Stateless, replica-aware randomness.

Reparameterization noise is a pure function of a seed `[2]` (derived from the config seed and the
training step) and of each example's position in the *global* batch. Under `tf.distribute` every
replica therefore draws different noise for its own examples, and one device and N replicas draw
exactly the same noise for the same example: the two take the same optimization step.
"""

import tensorflow as tf


def replica_position():
    """Returns `(replica_id, num_replicas)` of the current replica context (0, 1 outside one)."""
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context
        return tf.constant(0, tf.int32), 1
    return tf.cast(context.replica_id_in_sync_group, tf.int32), context.num_replicas_in_sync


def step_seed(seed: int, step, stream: int = 0) -> tf.Tensor:
    """A stateless seed `[2]` for training step `step` of run `seed`; `stream` separates uses."""
    step = tf.cast(step, tf.int64)
    return tf.stack([tf.constant(seed * 1000003 + stream, tf.int64), step])


def normal(shape, seed, batch_axis: int, dtype=tf.float32) -> tf.Tensor:
    """Standard-normal noise for this replica's slice of the global batch.

    Args:
      shape: the local shape, whose `batch_axis` entry is this replica's batch size `B`.
      seed: a stateless seed `[2]`.
      batch_axis: which axis of `shape` indexes examples.

    Returns:
      A `[*shape]` tensor equal to rows `[r B, (r + 1) B)` of the noise one device would draw for
      the global batch of `N B` examples, where `r` is the replica id and `N` the replica count.
    """
    replica_id, num_replicas = replica_position()
    if num_replicas == 1:
        return tf.random.stateless_normal(shape, seed, dtype=dtype)
    shape = tf.unstack(tf.convert_to_tensor(shape, tf.int32)) if not isinstance(
        shape, (list, tuple)) else list(shape)
    local = shape[batch_axis]
    global_shape = list(shape)
    global_shape[batch_axis] = local * num_replicas
    noise = tf.random.stateless_normal(tf.stack(global_shape), seed, dtype=dtype)
    begin = [0] * len(shape)
    begin[batch_axis] = replica_id * local
    return tf.slice(noise, tf.stack(begin), tf.stack(shape))


def replica_seed(seed) -> tf.Tensor:
    """Folds the replica id into `seed`, for samplers that cannot draw for the global batch."""
    replica_id, num_replicas = replica_position()
    if num_replicas == 1:
        return seed
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed[0], seed[1] * num_replicas + tf.cast(replica_id, tf.int64)])
