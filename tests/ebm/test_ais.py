"""Annealed importance sampling against exact enumeration, and the beta schedules."""

import numpy as np
import pytest

from tfdgm.models.ebm import ais


def test_paper_schedule():
    betas = ais.beta_schedule()
    assert len(betas) == 15001 and betas[0] == 0.0 and betas[-1] == 1.0
    assert np.all(np.diff(betas) > 0)
    assert betas[1000] == pytest.approx(0.5) and betas[5000] == pytest.approx(0.9)
    np.testing.assert_allclose(np.diff(betas[:1001]), 0.5 / 1000)
    np.testing.assert_allclose(np.diff(betas[5000:]), 0.1 / 10000)
    scaled = ais.beta_schedule(num_betas=150)
    assert len(scaled) == 151 and scaled[10] == pytest.approx(0.5)
    assert scaled[50] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="exactly 1"):
        ais.beta_schedule([(0.5, 10), (0.9, 10)])


def test_base_rate_biases_are_clipped_log_odds():
    data = np.zeros((10, 3))
    data[:3, 0] = 1
    data[:, 1] = 1
    bias = ais.base_rate_visible_bias(data, epsilon=1e-3)
    assert bias[0] == pytest.approx(np.log(0.3 / 0.7))
    assert bias[1] == pytest.approx(np.log(0.999 / 0.001))
    assert bias[2] == pytest.approx(-bias[1])


def test_ais_lands_within_its_stated_error_of_the_exact_log_z():
    rng = np.random.default_rng(0)
    num_visible, num_hidden = 20, 10
    weights = rng.normal(0, 0.7, (num_visible, num_hidden))
    visible_bias = rng.normal(-0.5, 0.5, num_visible)
    hidden_bias = rng.normal(0, 0.5, num_hidden)
    exact = ais.exact_log_partition(weights, visible_bias, hidden_bias)
    data = (rng.uniform(size=(300, num_visible)) < 0.3).astype(np.float64)
    result = ais.ais_log_partition(weights, visible_bias, hidden_bias,
                                   ais.base_rate_visible_bias(data),
                                   ais.beta_schedule(num_betas=2000), num_chains=100, seed=3)
    assert result.log_weights.shape == (100,) and result.num_betas == 2000
    assert 0 < result.std_error < 0.1
    assert result.log_z_lower <= exact <= result.log_z_upper
    assert abs(result.log_z - exact) < 4 * result.std_error
    # The same seed gives the same estimate.
    again = ais.ais_log_partition(weights, visible_bias, hidden_bias,
                                  ais.base_rate_visible_bias(data),
                                  ais.beta_schedule(num_betas=2000), num_chains=100, seed=3)
    assert again.log_z == result.log_z


def test_ais_at_the_base_model_is_exact():
    """With the target equal to the base-rate model every weight is 1: log Z exact, error 0."""
    bias = np.array([0.3, -1.0, 2.0])
    result = ais.ais_log_partition(np.zeros((3, 2)), bias, np.zeros(2), bias,
                                   ais.beta_schedule(num_betas=10), num_chains=7)
    exact = ais.exact_log_partition(np.zeros((3, 2)), bias, np.zeros(2))
    assert result.log_z == pytest.approx(exact, abs=1e-12)
    assert result.std_error == pytest.approx(0.0, abs=1e-12)


def test_summary_statistics():
    log_w = np.log(np.array([1.0, 2.0, 3.0, 6.0]))
    result = ais.summarize_log_weights(log_w, log_z_base=1.5)
    w = np.exp(log_w)
    sigma = w.std(ddof=1) / 2
    assert result.log_z == pytest.approx(1.5 + np.log(3.0))
    assert result.std_error == pytest.approx(sigma / 3.0)
    assert result.log_z_upper == pytest.approx(1.5 + np.log(3.0 + 3 * sigma))
    assert result.log_z_lower == -np.inf  # 3 - 3 sigma < 0
