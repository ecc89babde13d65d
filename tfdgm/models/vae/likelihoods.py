"""Observation models p(x | z) on images `x [..., H, W, C]`.

A likelihood is a Keras layer without weights (the decoder makes its parameters). The decoder
emits `params [..., H, W, C * P]` with `P = params_per_pixel`; `log_prob(x, params)` sums over the
pixels and returns `[...]`; `data_kinds` lists the data it models, checked against the dataset's
kind before training.

Likelihoods are density layers (`tfdgm.precision.FullPrecision`): under a mixed-precision policy
the decoder's parameters arrive in the low precision and are cast to float32 before any
log-probability is computed.
"""

import math

import keras
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.precision import FullPrecision
from tfdgm.registry import LIKELIHOODS


class Likelihood(FullPrecision, keras.layers.Layer):
    params_per_pixel = 1
    data_kinds = ()

    def split(self, params):
        """The `params_per_pixel` parameter maps `[..., H, W, C]` of `params`, in full
        precision."""
        return tf.split(self.full_precision(params), self.params_per_pixel, axis=-1)


@LIKELIHOODS.register("bernoulli")
@keras.saving.register_keras_serializable("tfdgm")
class BernoulliLikelihood(Likelihood):
    """p(x | z) = prod_i Bernoulli(x_i; sigmoid(logit_i)), for binary images."""

    params_per_pixel = 1
    data_kinds = ("binary",)

    def log_prob(self, x, params):
        (logits,) = self.split(params)
        x = tf.broadcast_to(self.full_precision(x), tf.shape(logits))
        return -tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=[-3, -2, -1])

    def mean(self, params):
        (logits,) = self.split(params)
        return tf.sigmoid(logits)

    def sample(self, params, seed):
        (logits,) = self.split(params)
        u = tfdgm_random.stateless_uniform(tf.shape(logits), seed, dtype=logits.dtype)
        return tf.cast(u < tf.sigmoid(logits), logits.dtype)


@LIKELIHOODS.register("discretized_logistic")
@keras.saving.register_keras_serializable("tfdgm")
class DiscretizedLogisticLikelihood(Likelihood):
    """A logistic density integrated over the 256 bins of 8-bit pixels (Kingma et al. 2016).

    Pixels are `x = k / 255`, `k in {0, ..., 255}`; the bin of `x` is `[x - 1/510, x + 1/510]`,
    widened to `(-inf, .]` for k = 0 and `[., inf)` for k = 255, so the 256 probabilities sum to
    one: `p(x | mu, s) = sigmoid((x + 1/510 - mu) / s) - sigmoid((x - 1/510 - mu) / s)`.
    The decoder gives `mu` and `log s` per pixel (`P = 2`).
    """

    params_per_pixel = 2
    data_kinds = ("grey",)
    half_bin = 1.0 / 510.0

    def split(self, params):
        mean, log_scale = super().split(params)
        return mean, tf.maximum(log_scale, -7.0)

    def log_prob(self, x, params):
        mean, log_scale = self.split(params)
        x = self.full_precision(x)
        inv_scale = tf.exp(-log_scale)
        upper = (x + self.half_bin - mean) * inv_scale
        lower = (x - self.half_bin - mean) * inv_scale
        log_cdf_upper = tf.math.log_sigmoid(upper)            # log F(upper)
        log_survival_lower = tf.math.log_sigmoid(-lower)      # log (1 - F(lower))
        # sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - e^{-(u - l)}): stable in both tails.
        log_mass = (tf.math.log(-tf.math.expm1(-(upper - lower))) + log_cdf_upper
                    + log_survival_lower)
        log_prob = tf.where(x < self.half_bin, log_cdf_upper,
                            tf.where(x > 1.0 - self.half_bin, log_survival_lower, log_mass))
        return tf.reduce_sum(log_prob, axis=[-3, -2, -1])

    def mean(self, params):
        mean, _ = self.split(params)
        return tf.clip_by_value(mean, 0.0, 1.0)

    def sample(self, params, seed):
        mean, log_scale = self.split(params)
        u = tfdgm_random.stateless_uniform(tf.shape(mean), seed, dtype=mean.dtype)  # (0, 1)
        x = mean + tf.exp(log_scale) * (tf.math.log(u) - tf.math.log1p(-u))
        return tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0) / 255.0


@LIKELIHOODS.register("gaussian")
@keras.saving.register_keras_serializable("tfdgm")
class GaussianLikelihood(Likelihood):
    """p(x | z) = prod_i N(x_i; mu_i, sigma_i^2), a density over continuous pixel values.

    On 8-bit data it is a density, not a probability: its log-likelihood is not comparable with the
    discrete likelihoods' (use `discretized_logistic` for that).
    """

    params_per_pixel = 2
    data_kinds = ("grey", "continuous")

    def split(self, params):
        mean, log_scale = super().split(params)
        return mean, tf.maximum(log_scale, -7.0)

    def log_prob(self, x, params):
        mean, log_scale = self.split(params)
        z = (self.full_precision(x) - mean) * tf.exp(-log_scale)
        return tf.reduce_sum(-0.5 * tf.square(z) - log_scale - 0.5 * math.log(2 * math.pi),
                             axis=[-3, -2, -1])

    def mean(self, params):
        return self.split(params)[0]

    def sample(self, params, seed):
        mean, log_scale = self.split(params)
        noise = tfdgm_random.stateless_normal(tf.shape(mean), seed, dtype=mean.dtype)
        return mean + tf.exp(log_scale) * noise
