"""The RBM's energy functions against brute force, in float64 with random non-initial parameters:
free energy, exact log Z, the CD gradient's closed form, pseudo-likelihood, the Gibbs step."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.models.ebm import ais, energy
from tfdgm.models.ebm.layer import BernoulliRBM


def random_rbm(num_visible, num_hidden, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, scale, (num_visible, num_hidden)), rng.normal(0, 0.5, num_visible),
            rng.normal(0, 0.5, num_hidden))


def all_states(units):
    return np.array(list(itertools.product([0.0, 1.0], repeat=units)))


def float64_layer(weights, visible_bias, hidden_bias):
    layer = BernoulliRBM(*weights.shape, dtype="float64")
    layer.kernel.assign(weights)
    layer.visible_bias.assign(visible_bias)
    layer.hidden_bias.assign(hidden_bias)
    return layer


def test_free_energy_is_minus_log_sum_over_h_of_exp_minus_energy():
    w, b, c = random_rbm(6, 5)
    v = all_states(6)[::5]
    h = all_states(5)
    energies = np.stack([energy.energy(tf.constant(np.repeat(vi[None], len(h), 0)),
                                       tf.constant(h), w, b, c).numpy() for vi in v])
    brute = -np.log(np.exp(-energies).sum(axis=1))
    np.testing.assert_allclose(energy.free_energy(tf.constant(v), w, b, c).numpy(), brute,
                               rtol=1e-12)
    # At inverse temperature beta, F is that of the energies beta E.
    brute_beta = -np.log(np.exp(-0.3 * energies).sum(axis=1))
    np.testing.assert_allclose(energy.free_energy(tf.constant(v), w, b, c, 0.3).numpy(),
                               brute_beta, rtol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (3, 5)])
def test_exact_log_partition_matches_the_sum_over_v_and_h(shape):
    w, b, c = random_rbm(*shape, seed=1, scale=1.5)
    brute = ais.brute_force_log_partition(w, b, c)
    assert ais.exact_log_partition(w, b, c) == pytest.approx(brute, abs=1e-10)
    # Small chunks give the same sum.
    assert ais.exact_log_partition(w, b, c, chunk=3) == pytest.approx(brute, abs=1e-10)
    with pytest.raises(ValueError, match="at most 2 units"):
        ais.exact_log_partition(w, b, c, max_units=2)


def test_exact_log_normalizes_the_free_energy():
    w, b, c = random_rbm(8, 12, seed=2)
    log_z = ais.exact_log_partition(w, b, c)
    log_p = -energy.free_energy(tf.constant(all_states(8)), w, b, c).numpy() - log_z
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-12)


def test_cd_loss_gradient_is_the_closed_form_cd_statistics():
    w, b, c = random_rbm(7, 4, seed=3)
    layer = float64_layer(w, b, c)
    rng = np.random.default_rng(4)
    v_data = tf.constant(rng.integers(0, 2, (9, 7)).astype(np.float64))
    v_model = tf.constant(rng.integers(0, 2, (5, 7)).astype(np.float64))
    with tf.GradientTape() as tape:
        loss = layer.contrastive_divergence_loss(v_data, v_model)
    grads = tape.gradient(loss, [layer.kernel, layer.visible_bias, layer.hidden_bias])

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    h_data, h_model = sigmoid(v_data.numpy() @ w + c), sigmoid(v_model.numpy() @ w + c)
    positive = v_data.numpy().T @ h_data / 9
    negative = v_model.numpy().T @ h_model / 5
    # The loss decreases along <v h^T>_data - <v h^T>_model (gradient ascent on the CD estimate).
    np.testing.assert_allclose(grads[0].numpy(), -(positive - negative), atol=1e-12)
    np.testing.assert_allclose(grads[1].numpy(), -(v_data.numpy().mean(0)
                                                   - v_model.numpy().mean(0)), atol=1e-12)
    np.testing.assert_allclose(grads[2].numpy(), -(h_data.mean(0) - h_model.mean(0)),
                               atol=1e-12)


def test_pseudo_log_likelihood_is_the_sum_of_exact_conditionals():
    w, b, c = random_rbm(6, 4, seed=5)
    layer = float64_layer(w, b, c)
    v = all_states(6)[[3, 17, 40, 63]]
    log_z = ais.exact_log_partition(w, b, c)
    states = all_states(6)
    log_p = dict(zip(map(tuple, states),
                     -energy.free_energy(tf.constant(states), w, b, c).numpy() - log_z))
    expected = []
    for x in v:
        total = 0.0
        for i in range(6):
            flipped = x.copy()
            flipped[i] = 1 - flipped[i]
            total += log_p[tuple(x)] - np.logaddexp(log_p[tuple(x)], log_p[tuple(flipped)])
        expected.append(total)
    exact = layer.pseudo_log_likelihood(tf.constant(v)).numpy()
    np.testing.assert_allclose(exact, expected, atol=1e-10)
    # The stochastic estimate is unbiased: with many coordinates it approaches the exact sum.
    estimate = layer.pseudo_log_likelihood(tf.constant(v), tf.constant([1, 2], tf.int64),
                                           coordinates=20000).numpy()
    np.testing.assert_allclose(estimate, expected, rtol=0.03)


def test_gibbs_step_is_a_function_of_its_noise_and_draws_the_conditionals():
    w, b, c = random_rbm(5, 3, seed=6)
    rng = np.random.default_rng(7)
    v = tf.constant(rng.integers(0, 2, (4000, 5)).astype(np.float64))
    u_h = tf.constant(rng.uniform(size=(4000, 3)))
    u_v = tf.constant(rng.uniform(size=(4000, 5)))
    h, v_new, p_v = energy.gibbs_step(v, u_h, u_v, w, b, c)
    again = energy.gibbs_step(v, u_h, u_v, w, b, c)
    np.testing.assert_array_equal(h.numpy(), again[0].numpy())
    np.testing.assert_array_equal(v_new.numpy(), again[1].numpy())
    p_h = energy.hidden_probabilities(v, w, c).numpy()
    np.testing.assert_array_equal(h.numpy(), (u_h.numpy() < p_h).astype(float))
    np.testing.assert_allclose(p_v.numpy(), energy.visible_probabilities(h, w, b).numpy())
    # Averaged over the noise, the draws have the conditional probabilities as means.
    assert np.abs(h.numpy().mean(0) - p_h.mean(0)).max() < 0.03
    assert np.abs(v_new.numpy().mean(0) - p_v.numpy().mean(0)).max() < 0.03
