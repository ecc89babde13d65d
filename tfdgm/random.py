"""Stateless, replica-aware randomness that is the same with and without XLA.

Reparameterization, Gibbs and dequantization noise is a pure function of a seed `[2]` (derived
from the config seed and the training step) and of each example's position in the *global*
batch. Under `tf.distribute` every replica therefore draws different noise for its own examples,
and one device and N replicas draw exactly the same noise for the same example: the two take the
same optimization step.

The floats are built here from Philox's integer bits rather than by TensorFlow's float samplers.
`tf.random.stateless_uniform` and `stateless_normal` map the same seed to *other* floats inside
an XLA cluster than outside one (measured on TF 2.21, `alg="philox"` included), and their default
algorithm runs about 50x slower under XLA on a CPU; the uint32 bits
(`stateless_uniform(dtype=tf.uint32, minval=None, maxval=None, alg="philox")`) are identical on
both paths and as fast. So a step compiled with XLA draws the noise the plain step draws, up to
the last-bit rounding of `log`, `sqrt`, `cos` and `sin`:

* uniform: the top 23 bits `k` of a word give `u = (k + 1/2) 2^-23`, every value exact in
  float32 and strictly inside `(0, 1)` (`2^-24 <= u <= 1 - 2^-24`); float64 uses all 32 bits,
  `u = (k + 1/2) 2^-32`;
* normal: the Box-Muller transform of two such uniforms (Box and Muller 1958),
  `z1 = r cos(2 pi u2)`, `z2 = r sin(2 pi u2)` with `r = sqrt(-2 log u1)`, exact in distribution
  up to the grid of `u`: `|z| <= sqrt(2 log 2^24) = 5.77` in float32 (a tail of mass `2^-24`).

Example:

```python
seed = tfdgm.random.step_seed(seed=0, step=12)
eps = tfdgm.random.normal([B, 32], seed, batch_axis=0)            # [B, 32], this replica's rows
u = tfdgm.random.stateless_uniform([B, 784], seed)                 # [B, 784] in (0, 1)
```
"""

import math

import tensorflow as tf

_MANTISSA_BITS = {tf.float32: 23, tf.float64: 32}


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


def uniform_bits(shape, seed) -> tf.Tensor:
    """Philox's uint32 words for `seed` `[2]`: the same with and without XLA."""
    return tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.uint32,
                                       alg="philox")


def _compute_dtype(dtype):
    """float64 for float64, float32 otherwise (16-bit noise is drawn in float32 and rounded)."""
    return tf.float64 if tf.as_dtype(dtype) == tf.float64 else tf.float32


def _uniform_from_bits(bits, dtype):
    """`(k + 1/2) 2^-m` from the top `m` bits `k` of `bits` (`m` = 23 in float32, 32 in float64)."""
    mantissa = _MANTISSA_BITS[dtype]
    if mantissa < 32:
        bits = tf.bitwise.right_shift(bits, tf.constant(32 - mantissa, tf.uint32))
    return (tf.cast(bits, dtype) + 0.5) * (2.0 ** -mantissa)


def stateless_uniform(shape, seed, dtype=tf.float32) -> tf.Tensor:
    """`U(0, 1)` noise `[*shape]` from the Philox bits of `seed` (module docstring).

    Strictly inside `(0, 1)` in float32 and float64, so `log u` and `log(1 - u)` are finite;
    16-bit dtypes are rounded from float32 and may reach 0 or 1.
    """
    compute_dtype = _compute_dtype(dtype)
    u = _uniform_from_bits(uniform_bits(shape, seed), compute_dtype)
    return tf.cast(u, dtype)


def stateless_normal(shape, seed, dtype=tf.float32) -> tf.Tensor:
    """`N(0, 1)` noise `[*shape]`: Box-Muller on the Philox bits of `seed` (module docstring).

    The `n` draws are the first `n` of `r cos(2 pi u2)` followed by `r sin(2 pi u2)` over
    `ceil(n / 2)` pairs, flattened in row-major order.
    """
    compute_dtype = _compute_dtype(dtype)
    shape = tf.convert_to_tensor(shape, tf.int32)
    count = tf.reduce_prod(shape)
    pairs = (count + 1) // 2
    u = _uniform_from_bits(uniform_bits(tf.stack([2, pairs]), seed), compute_dtype)
    radius = tf.sqrt(-2.0 * tf.math.log(u[0]))
    angle = (2.0 * math.pi) * u[1]
    z = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)[:count]
    return tf.cast(tf.reshape(z, shape), dtype)


def _global_noise(sampler, shape, seed, batch_axis, dtype):
    """This replica's slice, along `batch_axis`, of `sampler`'s noise for the global batch."""
    replica_id, num_replicas = replica_position()
    if num_replicas == 1:
        return sampler(shape, seed, dtype=dtype)
    shape = tf.unstack(tf.convert_to_tensor(shape, tf.int32)) if not isinstance(
        shape, (list, tuple)) else list(shape)
    local = shape[batch_axis]
    global_shape = list(shape)
    global_shape[batch_axis] = local * num_replicas
    noise = sampler(tf.stack(global_shape), seed, dtype=dtype)
    begin = [0] * len(shape)
    begin[batch_axis] = replica_id * local
    return tf.slice(noise, tf.stack(begin), tf.stack(shape))


def normal(shape, seed, batch_axis: int, dtype=tf.float32) -> tf.Tensor:
    """Standard-normal noise for this replica's slice of the global batch.

    Args:
      shape: the local shape, whose `batch_axis` entry is this replica's batch size `B`.
      seed: a stateless seed `[2]`.
      batch_axis: which axis of `shape` indexes examples.

    Returns:
      A `[*shape]` tensor equal to rows `[r B, (r + 1) B)` of the noise one device would draw for
      the global batch of `N B` examples (`stateless_normal`), where `r` is the replica id and
      `N` the replica count.
    """
    return _global_noise(stateless_normal, shape, seed, batch_axis, dtype)


def uniform(shape, seed, batch_axis: int = 0, dtype=tf.float32) -> tf.Tensor:
    """`U(0, 1)` noise for this replica's slice of the global batch: the uniform counterpart of
    `normal` (`stateless_uniform` of the global batch, rows `[r B, (r + 1) B)`)."""
    return _global_noise(stateless_uniform, shape, seed, batch_axis, dtype)


def replica_seed(seed) -> tf.Tensor:
    """Folds the replica id into `seed`, for samplers that cannot draw for the global batch."""
    replica_id, num_replicas = replica_position()
    if num_replicas == 1:
        return seed
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed[0], seed[1] * num_replicas + tf.cast(replica_id, tf.int64)])
