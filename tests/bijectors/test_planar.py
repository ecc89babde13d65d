"""Planar flow: log-det, inverse, invertibility constraint, parameter and sample shapes."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import Planar, constrain_planar_u
from tfdgm.testing import bijector_checks as checks

B, S, D = 3, 2, 4


def _normal(rng, *shape, scale=1.):
    return tf.constant(scale * rng.standard_normal(shape))


def _params(rng, amortized):
    batch = (B,) if amortized else ()
    return (_normal(rng, *batch, D, scale=1.5), _normal(rng, *batch, D),
            _normal(rng, *batch))


@pytest.mark.parametrize("amortized, x_shape", [
    (True, (B, D)), (True, (S, B, D)), (False, (S, B, D))])
def test_log_det_and_inverse(amortized, x_shape):
    rng = np.random.default_rng(1)
    flow = Planar(*_params(rng, amortized))
    x = _normal(rng, *x_shape, scale=2.)
    checks.assert_log_det_matches_jacobian(flow, x)
    y, _ = checks.assert_round_trip(flow, x, atol=1e-10)
    checks.assert_inverse_log_det(flow, x)
    checks.assert_inverse_log_det_matches_jacobian(flow, y)
    assert flow.experimental_batch_shape() == ((B,) if amortized else ())


@pytest.mark.parametrize("scale", [-30., -10., -1., 0.5, 10.])
def test_adversarial_u_keeps_map_invertible(scale):
    rng = np.random.default_rng(2)
    w = _normal(rng, B, D)
    u = scale * w + 0.1 * _normal(rng, B, D)
    u_hat = constrain_planar_u(u, w)
    # w^T u_hat = -1 + softplus(w^T u) > -1 exactly; computed, it carries rounding of ~|w^T u| eps.
    assert np.all(tf.reduce_sum(w * u_hat, axis=-1).numpy() >= -1. - 1e-12)
    flow = Planar(u, w, _normal(rng, B))
    x = _normal(rng, S, B, D)
    fldj, _ = checks.assert_log_det_matches_jacobian(flow, x)
    assert np.all(np.isfinite(fldj))
    checks.assert_round_trip(flow, x, atol=1e-10)


def test_inverse_in_flat_region():
    # w^T u_hat = -1 + softplus(-8) ~ -1 + 3e-4 and w^T z + b close to 0: the scalar equation
    # is nearly flat there and Newton alone would crawl; the bisection safeguard still finds
    # the root. (Closer to -1 the map itself becomes ill-conditioned: no solver can do 1e-10.)
    w = tf.constant([[1., 0., 0.]], tf.float64)
    u = tf.constant([[-8., 0.3, -0.2]], tf.float64)
    b = tf.constant([0.1], tf.float64)
    flow = Planar(u, w, b)
    x = tf.constant([[[-0.1 + 1e-3, 1., 2.]], [[-0.1 - 2e-2, -1., 0.]]], tf.float64)
    checks.assert_round_trip(flow, x, atol=1e-10)


def test_graph_mode_and_float32():
    rng = np.random.default_rng(3)
    u, w, b = (tf.cast(t, tf.float32) for t in _params(rng, True))
    x = tf.cast(_normal(rng, S, B, D), tf.float32)

    @tf.function
    def round_trip(x):
        flow = Planar(u, w, b)
        y = flow.forward(x)
        return flow.inverse(tf.identity(y)), flow.forward_log_det_jacobian(x, event_ndims=1)

    x_back, fldj = round_trip(x)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-5)
    assert fldj.shape == (S, B) and fldj.dtype == tf.float32


def test_inverse_gradient_wrt_parameters_is_exact():
    # The inverse is differentiated implicitly at the root, not through the solver's loop.
    rng = np.random.default_rng(4)
    u, w, b = _params(rng, True)
    y = _normal(rng, S, B, D)
    directions = [_normal(rng, *t.shape) for t in (u, w, b)]
    with tf.GradientTape() as tape:
        tape.watch([u, w, b])
        loss = tf.reduce_sum(tf.sin(Planar(u, w, b).inverse(y)))
    grads = tape.gradient(loss, [u, w, b])
    analytic = sum(tf.reduce_sum(g * d).numpy() for g, d in zip(grads, directions))
    eps = 1e-6

    def value(sign):
        params = [t + sign * eps * d for t, d in zip((u, w, b), directions)]
        return tf.reduce_sum(tf.sin(Planar(*params).inverse(y))).numpy()

    np.testing.assert_allclose(analytic, (value(1.) - value(-1.)) / (2. * eps), rtol=1e-6)
