"""The VAE and its components: densities against TFP, gradients, steps, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm.testing.models import random_images, small_vae

tfd = tfp.distributions
SEED = tf.constant([3, 4], tf.int64)


@pytest.mark.parametrize("posterior, likelihood, network", [
    ("diagonal_gaussian", "bernoulli", "mlp"),
    ("diagonal_gaussian", "bernoulli", "gated_mlp"),
    ("full_covariance_gaussian", "discretized_logistic", "mlp"),
    ("diagonal_gaussian", "gaussian", "gated_conv"),
])
def test_every_trainable_weight_gets_a_gradient(posterior, likelihood, network):
    kind = "binary" if likelihood == "bernoulli" else "grey"
    model = small_vae(posterior=posterior, likelihood=likelihood, encoder=network, decoder=network)
    x = tf.constant(random_images(8, kind=kind))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.bound_terms(x, SEED)["loss"])
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads)
               if g is None or not np.any(g.numpy())]
    assert not missing, f"no gradient reaches {missing}"
    assert len(model.trainable_variables) >= 6


def test_train_step_changes_weights_and_test_step_does_not():
    model = small_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = random_images(64)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.evaluate(x, batch_size=32, verbose=0)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights))
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights))


def test_diagonal_gaussian_matches_tfp():
    model = small_vae(latent_dim=5)
    x = tf.constant(random_images(6))
    h = model.encoder(x)
    q = model.posterior(h, num_samples=3, seed=SEED)
    loc, scale = model.posterior.loc_and_scale(h)
    reference = tfd.MultivariateNormalDiag(loc, scale)
    np.testing.assert_allclose(q.log_q, reference.log_prob(q.z), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(model.posterior.log_prob(q.z, h), q.log_q, rtol=1e-5, atol=1e-4)
    kl = tfd.kl_divergence(tfd.Normal(loc, scale), tfd.Normal(0.0, 1.0))
    np.testing.assert_allclose(q.kl_per_dim, kl, rtol=1e-5, atol=1e-6)


def test_full_covariance_gaussian_matches_tfp():
    model = small_vae(posterior="full_covariance_gaussian", latent_dim=5)
    # Non-trivial off-diagonal entries (the head starts at zero).
    head = model.posterior.lower_head
    head.kernel.assign(tf.random.stateless_normal(head.kernel.shape, [1, 2]) * 0.3)
    x = tf.constant(random_images(6))
    h = model.encoder(x)
    q = model.posterior(h, num_samples=3, seed=SEED)
    loc, scale, cholesky = model.posterior.loc_and_cholesky(h)
    assert np.count_nonzero(np.triu(cholesky.numpy(), 1)) == 0
    assert np.count_nonzero(np.tril(cholesky.numpy(), -1)) > 0
    np.testing.assert_allclose(np.diagonal(cholesky.numpy(), axis1=1, axis2=2), scale, rtol=1e-6)
    reference = tfd.MultivariateNormalTriL(loc, cholesky)
    np.testing.assert_allclose(q.log_q, reference.log_prob(q.z), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.posterior.log_prob(q.z, h), q.log_q, rtol=1e-4, atol=1e-4)


def test_discretized_logistic_is_normalized_over_the_256_levels():
    from tfdgm.models.vae.likelihoods import DiscretizedLogisticLikelihood
    likelihood = DiscretizedLogisticLikelihood()
    levels = tf.reshape(tf.range(256, dtype=tf.float32) / 255.0, [256, 1, 1, 1])
    for mean, log_scale in [(0.3, -3.0), (0.0, -6.0), (1.0, -1.0), (0.5, 1.0), (0.7, -7.0)]:
        params = tf.constant([[[[mean, log_scale]]]], tf.float32)
        total = tf.reduce_sum(tf.exp(likelihood.log_prob(levels, params)))
        assert float(total) == pytest.approx(1.0, abs=1e-4)


def test_bernoulli_and_gaussian_match_tfp():
    from tfdgm.models.vae.likelihoods import BernoulliLikelihood, GaussianLikelihood
    x = tf.constant(random_images(4, image_shape=(3, 2, 1)))
    logits = tf.random.stateless_normal([4, 3, 2, 1], [0, 1])
    expected = tfd.Independent(tfd.Bernoulli(logits=logits), 3).log_prob(x)
    np.testing.assert_allclose(BernoulliLikelihood().log_prob(x, logits), expected, rtol=1e-5)
    params = tf.random.stateless_normal([4, 3, 2, 2], [0, 2])
    mean, log_scale = tf.split(params, 2, -1)
    expected = tfd.Independent(tfd.Normal(mean, tf.exp(log_scale)), 3).log_prob(x)
    np.testing.assert_allclose(GaussianLikelihood().log_prob(x, params), expected, rtol=1e-5)


def test_deterministic_maps_have_the_documented_shapes():
    model = small_vae(latent_dim=3)
    x = tf.constant(random_images(5))
    assert model.encode(x).shape == (5, 3)
    assert model.decode(tf.zeros([5, 3])).shape == (5, 28, 28, 1)
    assert model.decode(tf.zeros([2, 5, 3])).shape == (2, 5, 28, 28, 1)
    assert model.generate(tf.zeros([7, 3])).shape == (7, 28, 28, 1)
    # elbo(x) is the one-sample bound at the fixed seed [0, 0]: a function of x, an estimate
    # that moves with the noise, and below log p(x) <= 0 for binary images.
    elbo = model.elbo(x).numpy()
    np.testing.assert_allclose(elbo, model.bound_terms(x, tf.constant([0, 0], tf.int64),
                                                       num_samples=1)["elbo"], rtol=1e-6)
    assert not np.allclose(model.elbo(x, seed=tf.constant([3, 4], tf.int64)), elbo)
    assert elbo.shape == (5,) and np.all(elbo < 0)


def test_keras_saving_round_trip(tmp_path):
    model = small_vae(posterior="full_covariance_gaussian")
    path = str(tmp_path / "vae.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    x = tf.constant(random_images(4))
    np.testing.assert_allclose(restored.reconstruct(x), model.reconstruct(x), atol=1e-6)
    np.testing.assert_allclose(restored.elbo(x), model.elbo(x), atol=1e-4)


def test_wrong_input_shapes_are_named():
    model = small_vae(latent_dim=3)
    with pytest.raises(ValueError, match=r"expected images of shape \[B, 28, 28, 1\].*got \(2, 784\)"):
        model.encode(tf.zeros([2, 784]))
    with pytest.raises(ValueError, match=r"decode expects codes of shape \[..., 3\]"):
        model.decode(tf.zeros([2, 5]))
