"""The Bernoulli-Bernoulli RBM's energy, free energy, conditionals and Gibbs step.

With visible units `v in {0, 1}^D`, hidden units `h in {0, 1}^H`, weights `W [D, H]`, visible
biases `b [D]` and hidden biases `c [H]` (Smolensky 1986; Hinton 2002):

```none
E(v, h) = -b^T v - c^T h - v^T W h
F(v)    = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + v^T W_j)
p(h_j = 1 | v) = sigmoid(c_j + v^T W_j),    p(v_i = 1 | h) = sigmoid(b_i + W_i h)
```

At temperature `T` every energy is divided by `T` (`inverse_temperature = 1 / T`): the Gibbs
step then samples the Boltzmann distribution `p_T(v, h) ∝ exp(-E(v, h) / T)`.

Everything here is a pure function of tensors `[B, D]` / `[B, H]` and the parameters, so the
Keras layer (`tfdgm.models.ebm.layer.BernoulliRBM`), annealed importance sampling and the tests
share one implementation. The Gibbs step takes its uniform noise as an input, so a Gibbs chain
is reproducible and exports without a random op.
"""

import tensorflow as tf


def energy(v, h, weights, visible_bias, hidden_bias):
    """`E(v, h) = -b^T v - c^T h - v^T W h`, `[B]`, for `v [B, D]`, `h [B, H]`."""
    return -(tf.linalg.matvec(v, visible_bias) + tf.linalg.matvec(h, hidden_bias)
             + tf.reduce_sum(tf.matmul(v, weights) * h, axis=-1))


def free_energy(v, weights, visible_bias, hidden_bias, inverse_temperature=1.0):
    """`F(v) = -b^T v - sum_j softplus(c_j + v^T W_j)`, `[B]`, for `v [B, D]`.

    With `inverse_temperature = beta`, the free energy of the energies `beta E(v, h)`:
    `-beta b^T v - sum_j softplus(beta (c_j + v^T W_j))`.
    """
    pre = tf.matmul(v, weights) + hidden_bias
    return -(inverse_temperature * tf.linalg.matvec(v, visible_bias)
             + tf.reduce_sum(tf.math.softplus(inverse_temperature * pre), axis=-1))


def hidden_probabilities(v, weights, hidden_bias, inverse_temperature=1.0):
    """`p(h = 1 | v) = sigmoid(beta (c + v^T W))`, `[B, H]`."""
    return tf.sigmoid(inverse_temperature * (tf.matmul(v, weights) + hidden_bias))


def visible_probabilities(h, weights, visible_bias, inverse_temperature=1.0):
    """`p(v = 1 | h) = sigmoid(beta (b + W h))`, `[B, D]`."""
    return tf.sigmoid(inverse_temperature * (tf.matmul(h, weights, transpose_b=True)
                                             + visible_bias))


def bernoulli_from_uniform(probabilities, uniform):
    """The Bernoulli draw `1[u < p]` (float, of `probabilities`' dtype) from given noise
    `uniform ~ U[0, 1)` of the same shape."""
    return tf.cast(uniform < probabilities, probabilities.dtype)


def gibbs_step(v, uniform_h, uniform_v, weights, visible_bias, hidden_bias,
               inverse_temperature=1.0):
    """One block-Gibbs sweep `v -> h ~ p(h | v) -> v' ~ p(v | h)`.

    Args:
      v: `[B, D]` visible states.
      uniform_h: `[B, H]` uniform noise for the hidden draw.
      uniform_v: `[B, D]` uniform noise for the visible draw.
      weights, visible_bias, hidden_bias: `W [D, H]`, `b [D]`, `c [H]`.
      inverse_temperature: `1 / T`.

    Returns:
      `(h [B, H], v' [B, D], p(v' = 1 | h) [B, D])`, states in {0, 1}.
    """
    h = bernoulli_from_uniform(
        hidden_probabilities(v, weights, hidden_bias, inverse_temperature), uniform_h)
    probabilities = visible_probabilities(h, weights, visible_bias, inverse_temperature)
    return h, bernoulli_from_uniform(probabilities, uniform_v), probabilities


def uniform(shape, seed, batch_axis=0, dtype=tf.float32):
    """`U[0, 1)` noise for this replica's slice of the global batch.

    The uniform counterpart of `tfdgm.random.normal`: rows `[r B, (r + 1) B)` (along
    `batch_axis`) of the noise one device draws for the global batch of `N B` examples, so one
    device and N replicas draw the same noise for the same example.
    """
    context = tf.distribute.get_replica_context()
    num_replicas = 1 if context is None else context.num_replicas_in_sync
    if num_replicas == 1:
        return tf.random.stateless_uniform(shape, seed, dtype=dtype)
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
    shape = list(shape)
    global_shape = list(shape)
    global_shape[batch_axis] = shape[batch_axis] * num_replicas
    noise = tf.random.stateless_uniform(tf.stack(global_shape), seed, dtype=dtype)
    begin = [0] * len(shape)
    begin[batch_axis] = replica_id * shape[batch_axis]
    return tf.slice(noise, tf.stack(begin), tf.stack(shape))


__all__ = ["bernoulli_from_uniform", "energy", "free_energy", "gibbs_step",
           "hidden_probabilities", "uniform", "visible_probabilities"]
