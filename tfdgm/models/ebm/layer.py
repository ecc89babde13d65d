"""`BernoulliRBM` and `GaussianBernoulliRBM`: the Keras layers that own one RBM's weights, and
their CD estimator.

Contrastive divergence (Hinton 2002) and persistent CD (Tieleman 2008) estimate the
log-likelihood gradient of an RBM

```none
d log p(v) / dW = <v h^T>_data - <v h^T>_model
```

by the surrogate loss `L = mean_data F(v) - mean_neg F(stop_gradient(v~))`, whose autodiff
gradient is exactly `-(<v p(h|v)^T>_data - <v~ p(h|v~)^T>_neg)` (and likewise for the biases),
with `v~` the negative samples: `k` Gibbs sweeps from the data (CD-k) or from the persistent
fantasy chains (PCD). For Gaussian visibles with learned standard deviations the same
surrogate gives the CD gradient of `log sigma^2` too (Cho, Ilin & Raiko 2011).

Precision: the free energies, hence the CD statistics, are computed in the variables' dtype
(float32); only the Gibbs sweeps' matrix products run in the layer's compute dtype (bfloat16
under `training.precision: mixed_bfloat16`), their results cast back before any sum or draw.
"""

import keras
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.models.ebm import energy


class RBMLayer(keras.layers.Layer):
    """What every RBM layer shares: `W [D, H]`, `b [D]`, `c [H]`, the stateless Gibbs chain,
    the CD surrogate and the reconstruction error. Subclasses define the visible units
    (`free_energy`, `hidden_probabilities`, `visible_mean`, `gibbs_step`, `visible_noise`)."""

    def __init__(self, visible_units, hidden_units, init_stddev=0.01, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.visible_units, self.hidden_units = int(visible_units), int(hidden_units)
        self.init_stddev, self.seed = float(init_stddev), seed
        self.kernel = self.add_weight(
            name="kernel", shape=(self.visible_units, self.hidden_units),
            initializer=keras.initializers.RandomNormal(stddev=self.init_stddev, seed=seed))
        self.visible_bias = self.add_weight(name="visible_bias", shape=(self.visible_units,),
                                            initializer="zeros")
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(self.hidden_units,),
                                           initializer="zeros")

    @property
    def sampling_dtype(self):
        """The dtype of the Gibbs sweeps' matrix products (the layer's compute dtype)."""
        return self.compute_dtype

    def visible_noise(self, shape, seed, dtype):
        """The noise `gibbs_step` takes for the visible draw (this replica's rows)."""
        raise NotImplementedError

    def gibbs_chain(self, v, steps, seed, inverse_temperature=1.0):
        """`steps` Gibbs sweeps from `v [B, D]` with stateless noise; sweep `t` draws the
        noise of the global batch from `fold_in(seed, t)` and takes this replica's rows
        (`tfdgm.random.uniform`, `tfdgm.random.normal`), so one device and N replicas run the same
        chains.

        Returns:
          `(v_k [B, D], E[v_k | h_k] [B, D])`; with `steps = 0`, `(v, v)`.
        """
        batch = tf.shape(v)[0]

        def sweep(t, state, _):
            step_seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(t, tf.int64))
            seeds = tf.random.experimental.stateless_split(step_seed, 2)
            uniform_h = tfdgm_random.uniform([batch, self.hidden_units], seeds[0], dtype=v.dtype)
            noise_v = self.visible_noise([batch, self.visible_units], seeds[1], v.dtype)
            _, state, mean = self.gibbs_step(state, uniform_h, noise_v, inverse_temperature)
            return t + 1, state, mean

        _, v, mean = tf.while_loop(
            lambda t, *_: t < steps, sweep, (tf.constant(0), v, v),
            maximum_iterations=steps)
        return v, mean

    def contrastive_divergence_loss(self, v_data, v_negative, free_energy_data=None):
        """The CD surrogate `mean F(v_data) - mean F(v_negative)` over this replica's rows, with
        the negative samples held constant (`tf.stop_gradient`): its gradient is the CD estimate
        of the negative log-likelihood gradient (module docstring). `free_energy_data`: `F(v_data)`
        `[B]` if the caller has it (computed here otherwise)."""
        if free_energy_data is None:
            free_energy_data = self.free_energy(v_data)
        return (tf.reduce_mean(free_energy_data)
                - tf.reduce_mean(self.free_energy(tf.stop_gradient(v_negative))))

    def reconstruction_error(self, v):
        """Squared error `||v - E[v | p(h | v)]||^2` of the mean-field reconstruction, `[B]`
        (Hinton 2010, section 5: easy to compute, a poor measure of the likelihood)."""
        reconstruction = self.visible_mean(self.hidden_probabilities(v))
        return tf.reduce_sum(tf.square(v - reconstruction), axis=-1)

    def get_config(self):
        return {**super().get_config(), "visible_units": self.visible_units,
                "hidden_units": self.hidden_units, "init_stddev": self.init_stddev,
                "seed": self.seed}


@keras.saving.register_keras_serializable("tfdgm")
class BernoulliRBM(RBMLayer):
    """One Bernoulli-Bernoulli RBM `E(v, h) = -b^T v - c^T h - v^T W h` (see `energy`).

    Args:
      visible_units: `D`.
      hidden_units: `H`.
      init_stddev: `W ~ N(0, init_stddev^2)` (0.01: Hinton 2010, section 8); biases start at 0
        (the RBM model sets `b` from the data marginals before training).
      seed: seed of the weight initializer.

    Example:

    ```python
    rbm = BernoulliRBM(visible_units=784, hidden_units=500)
    v = tf.cast(tf.random.uniform([8, 784]) < 0.5, tf.float32)
    f = rbm.free_energy(v)                        # [8]
    p = rbm.hidden_probabilities(v)               # [8, 500]
    h, v1, p1 = rbm.gibbs_step(v, tf.random.uniform([8, 500]), tf.random.uniform([8, 784]))
    ```
    """

    def __init__(self, visible_units, hidden_units, init_stddev=0.01, seed=None, **kwargs):
        super().__init__(visible_units, hidden_units, init_stddev, seed, **kwargs)
        self.built = True

    @property
    def parameters(self):
        """`(W [D, H], b [D], c [H])`."""
        return self.kernel, self.visible_bias, self.hidden_bias

    def free_energy(self, v, inverse_temperature=1.0):
        """`F(v)`, `[B]`, for `v [B, D]`."""
        return energy.free_energy(v, *self.parameters, inverse_temperature)

    def hidden_probabilities(self, v, inverse_temperature=1.0):
        """`p(h = 1 | v)`, `[B, H]`."""
        return energy.hidden_probabilities(v, self.kernel, self.hidden_bias, inverse_temperature)

    def visible_probabilities(self, h, inverse_temperature=1.0):
        """`p(v = 1 | h)`, `[B, D]`."""
        return energy.visible_probabilities(h, self.kernel, self.visible_bias,
                                            inverse_temperature)

    def visible_mean(self, h):
        """`E[v | h] = p(v = 1 | h)`, `[B, D]`."""
        return self.visible_probabilities(h)

    def visible_noise(self, shape, seed, dtype):
        """Uniform noise for the Bernoulli draws."""
        return tfdgm_random.uniform(shape, seed, dtype=dtype)

    def gibbs_step(self, v, uniform_h, uniform_v, inverse_temperature=1.0):
        """`(h, v', p(v' | h))` of one Gibbs sweep with the given noise (`energy.gibbs_step`)."""
        return energy.gibbs_step(v, uniform_h, uniform_v, *self.parameters, inverse_temperature,
                                 compute_dtype=self.sampling_dtype)

    def pseudo_log_likelihood(self, v, seed=None, coordinates=None):
        """Pseudo-log-likelihood `sum_i log p(v_i | v_-i)` per example, `[B]` (Besag 1975).

        `log p(v_i | v_-i) = log sigmoid(F(v with bit i flipped) - F(v))`; flipping bit `i`
        moves `v^T W` by `(1 - 2 v_i) W_i`, so each term costs `O(H)`.

        Args:
          v: `[B, D]` binary.
          seed: stateless seed `[2]` of the coordinates (needed with `coordinates`).
          coordinates: None for the exact sum over all `D` coordinates (`O(B D H)` memory);
            `K` for the unbiased estimate `D / K sum_k log p(v_{i_k} | v_-i_k)` with `K`
            coordinates per example drawn uniformly (with replacement).
        """
        pre = tf.matmul(v, self.kernel) + self.hidden_bias                     # [B, H]
        if coordinates is None:
            sign = 1.0 - 2.0 * v                                               # [B, D]
            flipped_pre = pre[:, None, :] + sign[:, :, None] * self.kernel[None]  # [B, D, H]
            bias_change = sign * self.visible_bias
        else:
            batch = tf.shape(v)[0]
            index = tf.random.stateless_uniform([batch, coordinates], seed, 0,
                                                self.visible_units, dtype=tf.int32)
            sign = 1.0 - 2.0 * tf.gather(v, index, batch_dims=1)               # [B, K]
            flipped_pre = (pre[:, None, :]
                           + sign[:, :, None] * tf.gather(self.kernel, index))  # [B, K, H]
            bias_change = sign * tf.gather(self.visible_bias, index)
        # F(v') - F(v) = -(b^T v' - b^T v) - sum_j [softplus(pre'_j) - softplus(pre_j)]
        delta = -bias_change - tf.reduce_sum(
            tf.math.softplus(flipped_pre) - tf.math.softplus(pre)[:, None, :], axis=-1)
        terms = tf.math.log_sigmoid(delta)
        if coordinates is None:
            return tf.reduce_sum(terms, axis=-1)
        return self.visible_units * tf.reduce_mean(terms, axis=-1)


@keras.saving.register_keras_serializable("tfdgm")
class GaussianBernoulliRBM(RBMLayer):
    """One Gaussian-Bernoulli RBM over real visible units (Hinton 2010, section 13.2):
    `E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c^T h - sum_ij (v_i / sigma_i) W_ij h_j`
    (see `energy`).

    With `learn_sigma=False` (the default) `sigma = 1`: the guide's advice for data standardized
    to zero mean and unit variance per component, and the stable choice (learned variances
    collapse onto near-constant pixels unless their learning rate is tuned). With
    `learn_sigma=True` the log-variances `z_i = log sigma_i^2` train by the same CD surrogate
    (the parameterization of Cho, Ilin & Raiko 2011).

    Args:
      visible_units, hidden_units, init_stddev, seed: as for `BernoulliRBM`.
      learn_sigma: whether `log_variance` is trainable.

    Example:

    ```python
    rbm = GaussianBernoulliRBM(visible_units=784, hidden_units=500)
    v = tf.random.normal([8, 784])                # standardized pixels
    f = rbm.free_energy(v)                        # [8]
    h, v1, mean = rbm.gibbs_step(v, tf.random.uniform([8, 500]), tf.random.normal([8, 784]))
    ```
    """

    def __init__(self, visible_units, hidden_units, init_stddev=0.01, learn_sigma=False,
                 seed=None, **kwargs):
        super().__init__(visible_units, hidden_units, init_stddev, seed, **kwargs)
        self.learn_sigma = bool(learn_sigma)
        self.log_variance = self.add_weight(name="log_variance", shape=(self.visible_units,),
                                            initializer="zeros", trainable=self.learn_sigma)
        self.built = True

    @property
    def sigma(self):
        """`sigma = exp(z / 2)`, `[D]`."""
        return tf.exp(0.5 * tf.convert_to_tensor(self.log_variance))

    @property
    def parameters(self):
        """`(W [D, H], b [D], c [H], sigma [D])`."""
        return self.kernel, self.visible_bias, self.hidden_bias, self.sigma

    def free_energy(self, v, inverse_temperature=1.0):
        """`F(v)`, `[B]`, for `v [B, D]`."""
        return energy.gaussian_free_energy(v, *self.parameters, inverse_temperature)

    def hidden_probabilities(self, v, inverse_temperature=1.0):
        """`p(h = 1 | v)`, `[B, H]`."""
        return energy.gaussian_hidden_probabilities(v, self.kernel, self.hidden_bias,
                                                    self.sigma, inverse_temperature)

    def visible_mean(self, h):
        """`E[v | h] = b + sigma W h`, `[B, D]`."""
        return energy.gaussian_visible_mean(h, self.kernel, self.visible_bias, self.sigma)

    def visible_noise(self, shape, seed, dtype):
        """Standard-normal noise for the Gaussian draws (this replica's rows of the global
        batch's noise, `tfdgm.random.normal`)."""
        return tfdgm_random.normal(shape, seed, batch_axis=0, dtype=dtype)

    def gibbs_step(self, v, uniform_h, normal_v, inverse_temperature=1.0):
        """`(h, v', E[v' | h])` of one Gibbs sweep with the given noise
        (`energy.gaussian_gibbs_step`)."""
        return energy.gaussian_gibbs_step(v, uniform_h, normal_v, *self.parameters,
                                          inverse_temperature, compute_dtype=self.sampling_dtype)

    def get_config(self):
        return {**super().get_config(), "learn_sigma": self.learn_sigma}


__all__ = ["BernoulliRBM", "GaussianBernoulliRBM", "RBMLayer"]
