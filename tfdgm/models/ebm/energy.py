"""The RBMs' energies, free energies, conditionals and Gibbs steps.

Bernoulli-Bernoulli:

With visible units `v in {0, 1}^D`, hidden units `h in {0, 1}^H`, weights `W [D, H]`, visible
biases `b [D]` and hidden biases `c [H]` (Smolensky 1986; Hinton 2002):

```none
E(v, h) = -b^T v - c^T h - v^T W h
F(v)    = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + v^T W_j)
p(h_j = 1 | v) = sigmoid(c_j + v^T W_j),    p(v_i = 1 | h) = sigmoid(b_i + W_i h)
```

Gaussian-Bernoulli (Hinton 2010, section 13.2; Cho, Ilin & Raiko 2011 for learned variances),
for real visible units `v in R^D` with standard deviations `sigma [D]`:

```none
E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c^T h - sum_ij (v_i / sigma_i) W_ij h_j
F(v)    = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (v / sigma)^T W_j)
p(h_j = 1 | v) = sigmoid(c_j + (v / sigma)^T W_j),    p(v_i | h) = N(b_i + sigma_i W_i h, sigma_i^2)
log Z   = D/2 log(2 pi) + sum_i log sigma_i
          + logsumexp_h [c^T h + (b / sigma)^T W h + ||W h||^2 / 2]
```

(the last by completing the square in `v`: each `h` contributes a Gaussian integral, so `log Z`
is exact by enumerating `h` for small `H`).

At temperature `T` every energy is divided by `T` (`inverse_temperature = 1 / T`): the Gibbs
step then samples the Boltzmann distribution `p_T(v, h) ∝ exp(-E(v, h) / T)` (for Gaussian
visibles: the hidden logits divided by `T`, `p(v_i | h) = N(b_i + sigma_i W_i h, T sigma_i^2)`).

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


def matmul(a, b, transpose_b=False, compute_dtype=None):
    """`a b` (`a b^T` with `transpose_b`) computed in `compute_dtype` (None: `a`'s dtype) and
    returned in `a`'s dtype: how Gibbs sampling runs its products in bfloat16 under
    `training.precision: mixed_bfloat16` while every sum stays float32."""
    dtype = tf.as_dtype(compute_dtype or a.dtype)
    product = tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype), transpose_b=transpose_b)
    return tf.cast(product, a.dtype)


def hidden_probabilities(v, weights, hidden_bias, inverse_temperature=1.0, compute_dtype=None):
    """`p(h = 1 | v) = sigmoid(beta (c + v^T W))`, `[B, H]` (`compute_dtype`: of `v^T W`)."""
    return tf.sigmoid(inverse_temperature * (matmul(v, weights, compute_dtype=compute_dtype)
                                             + hidden_bias))


def visible_probabilities(h, weights, visible_bias, inverse_temperature=1.0, compute_dtype=None):
    """`p(v = 1 | h) = sigmoid(beta (b + W h))`, `[B, D]` (`compute_dtype`: of `W h`)."""
    return tf.sigmoid(inverse_temperature * (
        matmul(h, weights, transpose_b=True, compute_dtype=compute_dtype) + visible_bias))


def bernoulli_from_uniform(probabilities, uniform):
    """The Bernoulli draw `1[u < p]` (float, of `probabilities`' dtype) from given noise
    `uniform ~ U[0, 1)` of the same shape."""
    return tf.cast(uniform < probabilities, probabilities.dtype)


def gibbs_step(v, uniform_h, uniform_v, weights, visible_bias, hidden_bias,
               inverse_temperature=1.0, compute_dtype=None):
    """One block-Gibbs sweep `v -> h ~ p(h | v) -> v' ~ p(v | h)`.

    Args:
      v: `[B, D]` visible states.
      uniform_h: `[B, H]` uniform noise for the hidden draw.
      uniform_v: `[B, D]` uniform noise for the visible draw.
      weights, visible_bias, hidden_bias: `W [D, H]`, `b [D]`, `c [H]`.
      inverse_temperature: `1 / T`.
      compute_dtype: dtype of the two matrix products (None: `v`'s).

    Returns:
      `(h [B, H], v' [B, D], p(v' = 1 | h) [B, D])`, states in {0, 1}.
    """
    h = bernoulli_from_uniform(
        hidden_probabilities(v, weights, hidden_bias, inverse_temperature, compute_dtype),
        uniform_h)
    probabilities = visible_probabilities(h, weights, visible_bias, inverse_temperature,
                                          compute_dtype)
    return h, bernoulli_from_uniform(probabilities, uniform_v), probabilities


def gaussian_hidden_probabilities(v, weights, hidden_bias, sigma, inverse_temperature=1.0,
                                  compute_dtype=None):
    """`p(h = 1 | v) = sigmoid(beta (c + (v / sigma)^T W))`, `[B, H]`, Gaussian visibles."""
    return tf.sigmoid(inverse_temperature * (
        matmul(v / sigma, weights, compute_dtype=compute_dtype) + hidden_bias))


def gaussian_gibbs_step(v, uniform_h, normal_v, weights, visible_bias, hidden_bias, sigma,
                        inverse_temperature=1.0, compute_dtype=None):
    """One block-Gibbs sweep of the Gaussian-Bernoulli RBM at temperature `T = 1 / beta`:
    `h ~ p(h | v)`, then `v' = b + sigma W h + sqrt(T) sigma normal_v`.

    Args:
      v: `[B, D]` real visible states.
      uniform_h: `[B, H]` uniform noise for the hidden draw.
      normal_v: `[B, D]` standard-normal noise for the visible draw.
      weights, visible_bias, hidden_bias, sigma: `W [D, H]`, `b [D]`, `c [H]`, `sigma [D]`.

    Returns:
      `(h [B, H], v' [B, D], E[v' | h] [B, D])`.
    """
    h = bernoulli_from_uniform(gaussian_hidden_probabilities(
        v, weights, hidden_bias, sigma, inverse_temperature, compute_dtype), uniform_h)
    mean = gaussian_visible_mean(h, weights, visible_bias, sigma, compute_dtype)
    temperature = tf.ones([], v.dtype) / inverse_temperature
    return h, mean + sigma * tf.sqrt(temperature) * normal_v, mean


def gaussian_energy(v, h, weights, visible_bias, hidden_bias, sigma):
    """`E(v, h)` of the Gaussian-Bernoulli RBM (module docstring), `[B]`."""
    return (tf.reduce_sum(tf.square(v - visible_bias) / (2.0 * tf.square(sigma)), axis=-1)
            - tf.linalg.matvec(h, hidden_bias)
            - tf.reduce_sum(tf.matmul(v / sigma, weights) * h, axis=-1))


def gaussian_free_energy(v, weights, visible_bias, hidden_bias, sigma, inverse_temperature=1.0):
    """`F(v) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (v / sigma)^T W_j)`,
    `[B]`, for `v [B, D]`; with `inverse_temperature = beta`, the free energy of `beta E`."""
    pre = tf.matmul(v / sigma, weights) + hidden_bias
    quadratic = tf.reduce_sum(tf.square(v - visible_bias) / (2.0 * tf.square(sigma)), axis=-1)
    return (inverse_temperature * quadratic
            - tf.reduce_sum(tf.math.softplus(inverse_temperature * pre), axis=-1))


def gaussian_visible_mean(h, weights, visible_bias, sigma, compute_dtype=None):
    """`E[v | h] = b + sigma * (W h)`, `[B, D]` (`compute_dtype`: of `W h`)."""
    return visible_bias + sigma * matmul(h, weights, transpose_b=True,
                                         compute_dtype=compute_dtype)


def gaussian_log_partition_terms(h, weights, visible_bias, hidden_bias, sigma):
    """`c^T h + (b / sigma)^T W h + ||W h||^2 / 2`, `[B]` for `h [B, H]`: `log Z` is
    `D/2 log(2 pi) + sum log sigma + logsumexp` of these over all `h` (module docstring)."""
    wh = tf.matmul(h, weights, transpose_b=True)                             # [B, D]
    return (tf.linalg.matvec(h, hidden_bias) + tf.linalg.matvec(wh, visible_bias / sigma)
            + 0.5 * tf.reduce_sum(tf.square(wh), axis=-1))


__all__ = ["bernoulli_from_uniform", "energy", "free_energy", "gaussian_energy",
           "gaussian_free_energy", "gaussian_log_partition_terms", "gaussian_visible_mean",
           "gaussian_gibbs_step", "gaussian_hidden_probabilities", "gibbs_step",
           "hidden_probabilities", "matmul", "visible_probabilities"]
