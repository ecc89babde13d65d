"""Bits per dimension and the dequantization bounds, against exact answers.

* A model whose density is exactly uniform on [0, 1]^D scores exactly n_bits bits/dim.
* Variational dequantization's bound never exceeds the exact discrete log-likelihood of a tiny
  flow (D = 2 pixels, 4 levels, P(x) by quadrature over each bin), the importance-weighted
  estimate improves on it with S, and converges to log P(x).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm.models.flows import DensityFlow, RealNVP, bits_per_dim, quantize


class UniformDensity(DensityFlow):
    """`p(y) = 1` on `[0, 1]^D`: the flow space is `y - 1/2` and its density is 0 nats."""

    def _flow_log_prob(self, z, training=None):
        return tf.zeros(tf.shape(z)[:1], z.dtype)

    def _flow_to_noise(self, z):
        return tf.reshape(z, [tf.shape(z)[0], -1])

    def _flow_from_noise(self, eps):
        return tf.reshape(eps, [-1, *self.image_shape])


def _images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.float32) / 255.


def _perturb(model, scale, seed, layer=None):
    """Moves every trainable weight (of `layer`, default the model) off its initial value
    (zero-initialized output layers make an untrained flow nearly trivial)."""
    rng = np.random.default_rng(seed)
    for variable in (layer or model).trainable_variables:
        variable.assign(variable.numpy() + scale * rng.standard_normal(variable.shape))


@pytest.mark.parametrize("n_bits", [8, 5, 2])
def test_uniform_density_scores_exactly_n_bits(n_bits):
    model = UniformDensity((4, 4, 3), n_bits=n_bits, logit_alpha=0.)
    model.build()
    x = _images((6, 4, 4, 3))
    bpd = model.bound_terms(x, tf.constant([1, 2], tf.int64))["bits_per_dim"].numpy()
    np.testing.assert_allclose(bpd, n_bits, rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.log_prob(x)[1].numpy(), n_bits, rtol=0, atol=1e-5)
    # D log K nats in all: the bin width is 1 / K on the [0, 1] scale.
    np.testing.assert_allclose(model.log_prob(x)[0].numpy(), -48 * n_bits * np.log(2.),
                               rtol=1e-6)


def test_bits_per_dim_is_nats_over_d_log_2():
    np.testing.assert_allclose(bits_per_dim(-784 * np.log(2.) * 1.25, 784), 1.25)


def test_quantize_drops_low_bits_like_glow():
    k = np.arange(256, dtype=np.float32)
    for n_bits in (8, 5, 3, 1):
        np.testing.assert_array_equal(quantize(k / 255., n_bits).numpy(),
                                      np.floor(k / 2 ** (8 - n_bits)))


def test_dequantized_points_lie_in_their_bins():
    model = RealNVP((4, 4, 1), num_scales=1, hidden_channels=4, num_final_couplings=2, n_bits=3,
                    dequantization="variational", dequantization_steps=2,
                    dequantization_hidden=4)
    model.build()
    _perturb(model, 0.3, seed=3)
    x = _images((64, 4, 4, 1))
    for dequantization in ("variational", "uniform"):  # then without the dequantizer
        if dequantization == "uniform":
            model.dequantizer = None
        x_q, y, _ = model.dequantize(x, tf.constant([4, 5], tf.int64))
        u = y.numpy() * 8 - x_q.numpy()  # float32: u = 1 - 2^-24 may round to the bin's edge
        assert np.all((u >= 0) & (u <= 1)), dequantization
        assert np.all(quantize(x, 3).numpy() == x_q.numpy())


def _tiny_flow():
    """RealNVP on 1 x 2 images (one checkerboard pixel conditions the other), n_bits = 2,
    variational dequantization; every weight moved off its initial value."""
    keras.utils.set_random_seed(11)
    model = RealNVP((1, 2, 1), num_scales=1, hidden_channels=8, num_final_couplings=2,
                    n_bits=2, logit_alpha=0.05, dequantization="variational",
                    dequantization_steps=2, dequantization_hidden=8, seed=0)
    model.build()
    _perturb(model, 0.15, seed=1, layer=model.flow)
    _perturb(model, 0.1, seed=2, layer=model.dequantizer)
    return model


def _exact_log_probabilities(model, points=200):
    """`log P(x)` of the 16 images, `P(x) = int_bin p(y) dy` by the midpoint rule with
    `points^2` nodes per bin."""
    levels = model.levels
    centres = (np.arange(points) + 0.5) / points
    u = np.stack(np.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
    images, log_p = [], []
    for a in range(levels):
        for b in range(levels):
            y = (np.array([a, b]) + u) / levels
            log_density = model.log_density(tf.constant(y.reshape(-1, 1, 2, 1), tf.float32))
            log_p.append(float(tf.reduce_logsumexp(tf.cast(log_density, tf.float64)))
                         - np.log(len(u)) - 2 * np.log(levels))
            images.append(np.array([a, b]) * (256 // levels) / 255.)
    return np.array(images, np.float32).reshape(-1, 1, 2, 1), np.array(log_p)


def test_variational_bound_is_below_the_exact_log_likelihood():
    model = _tiny_flow()
    images, log_p = _exact_log_probabilities(model)
    assert np.exp(log_p).sum() <= 1.0 + 1e-4  # some mass of p lies outside [0, 1]^2
    samples = 4096
    log_w = model.log_weights(images, samples, tf.constant([3, 4], tf.int64)).numpy()
    log_w = log_w.astype(np.float64)  # [S, 16]
    bound = log_w.mean(axis=0)
    stderr = log_w.std(axis=0) / np.sqrt(samples)
    assert np.all(bound <= log_p + 4 * stderr + 1e-3), (bound - log_p, stderr)
    gap = log_p - bound
    assert gap.mean() > 0.01  # q is not the exact posterior: the bound is strictly below
    # Importance weighting: E[log-mean-exp] grows with S (log q has infinite-variance
    # weights at the bin edges, so the S = 4096 estimate is not compared with log P(x) itself).
    groups = log_w.reshape(64, 64, -1)
    iw_64 = (np.log(np.mean(np.exp(groups - groups.max(1, keepdims=True)), 1))
             + groups.max(1)).mean(0)
    iw_all = np.log(np.mean(np.exp(log_w - log_w.max(0)), 0)) + log_w.max(0)
    assert bound.mean() < iw_64.mean() <= iw_all.mean() + 1e-3
    assert np.mean(iw_64 - bound) > 0.5 * gap.mean()


def test_variational_log_q_is_the_change_of_variables_density():
    """`log q(u | x) = log N(eps) - log|det du/deps|` (the couplings' and the sigmoid's
    log-dets), against the autodiff Jacobian of `eps -> u`."""
    model = _tiny_flow()
    x_q = tf.constant(np.random.default_rng(0).integers(0, 4, (32, 1, 2, 1)), tf.float32)
    eps = tf.constant(np.random.default_rng(1).standard_normal((32, 1, 2, 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(eps)
        u, log_q = model.dequantizer(x_q, eps, levels=4)
    jacobian = tape.batch_jacobian(u, eps).numpy().reshape(32, 2, 2).astype(np.float64)
    expected = (-0.5 * np.sum(eps.numpy().reshape(32, 2) ** 2, -1) - np.log(2 * np.pi)
                - np.linalg.slogdet(jacobian)[1])
    np.testing.assert_allclose(log_q.numpy(), expected, rtol=1e-5, atol=1e-4)
