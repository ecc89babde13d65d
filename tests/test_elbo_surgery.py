"""ELBO surgery (Hoffman & Johnson 2016): known answers (a posterior that ignores x; a 1-D latent
integrated numerically), the identity average KL = I + marginal KL, chunking, and the VampPrior
and two-level models."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm.models.vae.posteriors import Posterior
from tfdgm.evaluation.elbo_surgery import elbo_surgery
from tfdgm.testing.models import random_images, small_vae


def batches(images, size=16):
    return tf.data.Dataset.from_tensor_slices(images).batch(size)


def test_a_posterior_that_ignores_x_carries_no_information():
    keras.utils.set_random_seed(4)
    model = small_vae(latent_dim=4)
    for layer in model.encoder.hidden:
        layer.kernel.assign(tf.zeros_like(layer.kernel))
    bias = model.encoder.hidden[0].bias
    bias.assign(tf.random.stateless_uniform(bias.shape, [0, 1]))  # q(z | x) = q(z), not N(0, I)
    images = random_images(40)
    result = elbo_surgery(model, batches(images), max_examples=30, samples_per_example=50)
    assert result["num_examples"] == 30
    assert result["mutual_information"] == pytest.approx(0.0, abs=1e-5)
    assert result["marginal_kl"] == pytest.approx(result["average_kl"], abs=1e-5)
    # ... and the average KL is the analytic KL(q || N(0, I)) (Monte Carlo over 1500 samples).
    q = model.posterior(model.encoder(tf.constant(images[:1])), num_samples=1, seed=[0, 0])
    analytic = float(tf.reduce_sum(q.kl_per_dim))
    assert analytic > 0.05
    assert result["average_kl"] == pytest.approx(analytic, abs=0.1 * analytic + 0.02)


def _gauss(z, loc, scale):
    return np.exp(-0.5 * ((z - loc) / scale) ** 2) / (np.sqrt(2 * np.pi) * scale)


def test_one_dimensional_latent_against_numerical_integration():
    keras.utils.set_random_seed(7)
    model = small_vae(latent_dim=1, hidden_units=(8,), seed=2)
    rng = np.random.default_rng(0)
    for variable in model.trainable_weights:  # spread the posterior means apart
        variable.assign(variable.numpy() + rng.standard_normal(variable.shape) * 0.1)
    images = random_images(12, seed=3)
    loc, scale = (t.numpy()[:, 0].astype(np.float64) for t in
                  model.posterior.loc_and_scale(model.encoder(tf.constant(images))))
    assert scale.min() > 0.02 and np.ptp(loc) > 0.5  # a non-degenerate case
    low = min(-8.0, (loc - 12 * scale).min())
    high = max(8.0, (loc + 12 * scale).max())
    grid = np.linspace(low, high, int((high - low) / (scale.min() / 100)) + 1)
    dz = grid[1] - grid[0]
    densities = _gauss(grid[None], loc[:, None], scale[:, None])  # q(z | x_n) on the grid
    aggregate = densities.mean(axis=0)
    prior = _gauss(grid, 0.0, 1.0)
    tiny = 1e-300
    information = np.mean(np.sum(densities * np.log((densities + tiny) / (aggregate + tiny)),
                                 axis=1) * dz)
    marginal = np.sum(aggregate * np.log((aggregate + tiny) / prior)) * dz
    average = np.mean(np.log(1.0 / scale) + 0.5 * (scale ** 2 + loc ** 2 - 1.0))
    assert information == pytest.approx(average - marginal, abs=1e-6)  # the identity, exactly
    assert information > 0.3

    result = elbo_surgery(model, batches(images, 5), max_examples=None, samples_per_example=1000,
                          seed=4)
    assert result["num_examples"] == 12
    # Monte Carlo over 12000 codes: the standard error is about 0.01 nats.
    assert result["mutual_information"] == pytest.approx(information, abs=0.06)
    assert result["marginal_kl"] == pytest.approx(marginal, abs=0.06)
    assert result["average_kl"] == pytest.approx(average, abs=0.06)
    # Blocks of any size give the same estimate (same samples, running logsumexp).
    blocked = elbo_surgery(model, batches(images, 5), max_examples=None,
                           samples_per_example=1000, seed=4, max_pairs=5000)
    for key in ("mutual_information", "marginal_kl", "average_kl"):
        assert blocked[key] == pytest.approx(result[key], abs=1e-6)


def test_vamp_prior_model_with_a_full_covariance_posterior():
    keras.utils.set_random_seed(5)
    model = small_vae(latent_dim=2, encoder="gated_mlp", decoder="gated_mlp",
                      posterior="full_covariance_gaussian", prior="vamp_prior",
                      prior_options={"num_components": 3})
    rng = np.random.default_rng(1)
    for variable in model.trainable_weights:
        variable.assign(variable.numpy() + rng.standard_normal(variable.shape) * 0.05)
    images = random_images(20, seed=5)
    # The generic pairwise path (broadcast log_prob) against TFP.
    loc, _, cholesky = model.posterior.loc_and_cholesky(model.encoder(tf.constant(images)))
    z = tf.random.stateless_normal([7, 2], [2, 3])
    expected = tfp.distributions.MultivariateNormalTriL(loc, cholesky).log_prob(z[:, None, :])
    np.testing.assert_allclose(model.pairwise_log_q(z, tf.constant(images)), expected,
                               rtol=1e-5, atol=1e-4)
    result = elbo_surgery(model, batches(images, 8), max_examples=20, samples_per_example=50)
    # (average = information + marginal KL holds by construction; what can fail is each part's
    # range and the average against an independent estimate of the ELBO's KL term.)
    assert 0.05 < result["mutual_information"] <= np.log(20)
    assert result["marginal_kl"] > -0.05
    terms = model.bound_terms(tf.constant(images), tf.constant([1, 1], tf.int64), num_samples=50)
    assert result["average_kl"] == pytest.approx(float(np.mean(terms["kl"])), rel=0.05, abs=0.05)


def test_posteriors_without_log_prob_are_not_supported():
    class NoLogProb(Posterior):
        pass

    model = small_vae()
    assert model.supports_elbo_surgery
    model.posterior.__class__ = type("Masked", (NoLogProb,), {"has_log_prob": False})
    assert not model.supports_elbo_surgery
