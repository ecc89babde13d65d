"""Bounds: ELBO parts, warm-up, free bits, and the order ELBO <= IWAE_k <= IWAE_k' <= log p(x)."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.models.vae import objectives
from tfdgm.evaluation import importance_sampled_log_likelihood
from tfdgm.testing.models import random_images, small_vae, train_briefly


def test_elbo_parts_and_warmup():
    log_px = tf.constant([[-10.0, -20.0], [-12.0, -18.0]])
    log_pz = tf.constant([[-3.0, -4.0], [-5.0, -2.0]])
    log_q = tf.constant([[-1.0, -1.0], [-2.0, -1.0]])
    terms = objectives.elbo_terms(log_px, log_pz, log_q, beta=0.5)
    np.testing.assert_allclose(terms["reconstruction"], [-11.0, -19.0])
    np.testing.assert_allclose(terms["kl"], [2.5, 2.0])
    np.testing.assert_allclose(terms["elbo"], [-13.5, -21.0])
    np.testing.assert_allclose(terms["loss"], [11.0 + 1.25, 19.0 + 1.0])
    assert objectives.linear_warmup(0, 100) == 0.0
    assert objectives.linear_warmup(50, 100) == 0.5
    assert objectives.linear_warmup(150, 100) == 1.0
    assert objectives.linear_warmup(3, 0) == 1.0


def test_free_bits_floor_the_batch_averaged_kl_per_dimension():
    kl_per_dim = tf.Variable([[0.1, 2.0], [0.3, 4.0]])
    log_px = tf.zeros([1, 2])
    with tf.GradientTape() as tape:
        terms = objectives.elbo_terms(log_px, None, None, kl_per_dim=kl_per_dim, free_bits=0.5)
        loss = tf.reduce_mean(terms["loss"])
    # Dimension 0 averages 0.2 < 0.5 nats: floored, no gradient; dimension 1 averages 3.0.
    assert float(loss) == pytest.approx(0.5 + 3.0)
    np.testing.assert_allclose(tape.gradient(loss, kl_per_dim), [[0.0, 0.5], [0.0, 0.5]])
    np.testing.assert_allclose(terms["kl"], [2.1, 4.3])  # the reported KL is not floored


def test_iwae_bound_of_equal_weights_is_exact():
    log_w = tf.fill([7, 3], -4.2)
    np.testing.assert_allclose(objectives.iwae_bound(log_w), [-4.2] * 3, rtol=1e-6)


@pytest.fixture(scope="module")
def trained_model():
    images = random_images(256, seed=1)
    return train_briefly(small_vae(latent_dim=4, seed=1), images, steps=30), images


def test_bounds_are_ordered(trained_model):
    model, images = trained_model
    data = tf.data.Dataset.from_tensor_slices(images[:64]).batch(32)
    estimates = importance_sampled_log_likelihood(model, data, num_samples=1000, chunk=250,
                                                  bound_ks=(1, 10, 100), verbose=False)
    elbo = float(np.mean(model.elbo(tf.constant(images[:64]))))
    means = {k: float(v.mean()) for k, v in estimates.items()}
    # The NLL estimate is at most -ELBO, and each bound tightens as k grows.
    assert -means["log_likelihood"] <= -means["iwae_1"]
    assert means["iwae_1"] < means["iwae_10"] < means["iwae_100"] <= means["log_likelihood"]
    assert means["iwae_1"] == pytest.approx(elbo, abs=1.0)  # L_1 is the ELBO (Monte Carlo)
    assert estimates["log_likelihood"].shape == (64,)


def test_nll_estimate_does_not_depend_on_the_chunking(trained_model):
    model, images = trained_model
    data = tf.data.Dataset.from_tensor_slices(images[:32]).batch(16)
    a = importance_sampled_log_likelihood(model, data, num_samples=600, chunk=600, verbose=False)
    b = importance_sampled_log_likelihood(model, data, num_samples=600, chunk=100, verbose=False)
    # Different noise, same estimator: agreement within Monte Carlo error.
    assert abs(a["log_likelihood"].mean() - b["log_likelihood"].mean()) < 0.5


def test_nll_estimate_under_xla_is_the_same_estimate(trained_model):
    model, images = trained_model
    data = tf.data.Dataset.from_tensor_slices(images[:32]).batch(16)
    plain = importance_sampled_log_likelihood(model, data, num_samples=200, chunk=100,
                                              verbose=False)
    compiled = importance_sampled_log_likelihood(model, data, num_samples=200, chunk=100,
                                                 verbose=False, jit_compile=True)
    for key in plain:  # the same noise: only the rounding differs
        np.testing.assert_allclose(compiled[key], plain[key], rtol=1e-5)


class GammaWeights:
    """`log_weights` with `tf.random.stateless_gamma`, which XLA cannot compile."""

    def log_weights(self, x, num_samples, seed):
        shape = tf.stack([num_samples, tf.shape(x)[0]])
        return -tf.random.stateless_gamma(shape, seed=seed, alpha=2.0)


def test_nll_estimate_falls_back_without_xla_saying_why(capsys):
    data = tf.data.Dataset.from_tensor_slices(np.zeros([8, 2, 2, 1], np.float32)).batch(4)
    estimates = importance_sampled_log_likelihood(GammaWeights(), data, num_samples=20,
                                                  chunk=10, verbose=False, jit_compile=True)
    assert estimates["log_likelihood"].shape == (8,)
    assert np.all(np.isfinite(estimates["log_likelihood"]))
    out = capsys.readouterr().out
    assert out.count("Importance-sampled NLL without XLA:") == 1 and "Gamma" in out


def test_iwae_objective_trains_and_reports_its_bound():
    model = small_vae(objective="iwae", num_samples=5)
    model = train_briefly(model, random_images(64), steps=3)
    result = model.evaluate(random_images(32), batch_size=32, verbose=0, return_dict=True)
    assert result["iwae"] >= result["elbo"] - 1e-3
