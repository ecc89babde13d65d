"""Radial flow: log-det, closed-form inverse, beta >= -alpha, parameter and sample shapes."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import Radial
from tfdgm.testing import bijector_checks as checks

B, S, D = 3, 2, 4


def _normal(rng, *shape, scale=1.):
    return tf.constant(scale * rng.standard_normal(shape))


@pytest.mark.parametrize("amortized, x_shape", [
    (True, (B, D)), (True, (S, B, D)), (False, (S, B, D))])
def test_log_det_and_inverse(amortized, x_shape):
    rng = np.random.default_rng(4)
    batch = (B,) if amortized else ()
    flow = Radial(_normal(rng, *batch, D), _normal(rng, *batch), _normal(rng, *batch, scale=2.))
    x = _normal(rng, *x_shape, scale=2.)
    checks.assert_log_det_matches_jacobian(flow, x)
    y, _ = checks.assert_round_trip(flow, x, atol=1e-10)
    checks.assert_inverse_log_det(flow, x)
    checks.assert_inverse_log_det_matches_jacobian(flow, y)
    assert flow.experimental_batch_shape() == batch


def test_beta_at_least_minus_alpha_for_adversarial_parameters():
    alpha_raw = tf.constant([-30., -3., 0., 3., 30., 5.], tf.float64)
    beta_raw = tf.constant([-30., -40., 0., -5., -30., 40.], tf.float64)
    flow = Radial(tf.zeros([6, D], tf.float64), alpha_raw, beta_raw)
    assert np.all(flow.alpha.numpy() > 0.)
    assert np.all(flow.beta.numpy() >= -flow.alpha.numpy())


def test_strong_contraction_near_the_boundary():
    # beta close to -alpha: nearly all of a ball around z0 collapses; still invertible.
    rng = np.random.default_rng(5)
    flow = Radial(_normal(rng, B, D), tf.constant([0.5, 1., 2.], tf.float64),
                  tf.constant([-6., -4., -3.], tf.float64))
    x = _normal(rng, S, B, D)
    checks.assert_log_det_matches_jacobian(flow, x)
    checks.assert_round_trip(flow, x, atol=1e-9)
