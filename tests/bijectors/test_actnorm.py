"""ActNorm bijector: log-det, inverse, and the data-dependent initialization statistics."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import ActNorm, actnorm_initial_parameters, actnorm_parameters_from_sums
from tfdgm.testing import bijector_checks as checks


def _normal(rng, *shape, scale=1.):
    return tf.constant(scale * rng.standard_normal(shape))


@pytest.mark.parametrize("x_shape", [(2, 4, 4, 3), (2, 3, 2, 5), (2, 2, 2, 2, 3)])
def test_log_det_and_inverse(x_shape):
    rng = np.random.default_rng(40)
    channels = x_shape[-1]
    actnorm = ActNorm(_normal(rng, channels), _normal(rng, channels, scale=0.7))
    x = _normal(rng, *x_shape)
    fldj, _ = checks.assert_image_log_det_matches_jacobian(actnorm, x, atol=1e-10)
    height, width = x_shape[-3:-1]
    np.testing.assert_allclose(fldj, height * width * np.sum(actnorm.log_scale.numpy()),
                               atol=1e-12)
    y, _ = checks.assert_round_trip(actnorm, x, atol=1e-12)
    checks.assert_image_inverse_log_det(actnorm, x, atol=1e-12)
    checks.assert_image_inverse_log_det_matches_jacobian(actnorm, y, atol=1e-10)
    np.testing.assert_allclose(
        y, (x.numpy() + actnorm.shift.numpy()) * np.exp(actnorm.log_scale.numpy()), atol=1e-12)


def test_initial_parameters_normalize_the_batch_per_channel():
    rng = np.random.default_rng(41)
    means, stds = np.array([3., -1., 0.5]), np.array([0.1, 2., 5.])
    x = tf.constant(means + stds * rng.standard_normal((6, 4, 4, 3)))
    shift, log_scale = actnorm_initial_parameters(x)
    y = ActNorm(shift, log_scale).forward(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0., atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1., atol=1e-4)  # up to epsilon / std
    np.testing.assert_allclose(
        ActNorm(*actnorm_initial_parameters(x, epsilon=0.)).forward(x).numpy().var(
            axis=(0, 1, 2)), 1., atol=1e-12)
    # The same parameters from sums, as replicas all-reduce them.
    flat = x.numpy().reshape(-1, 3)
    from_sums = actnorm_parameters_from_sums(
        tf.constant(flat.sum(0)), tf.constant((flat ** 2).sum(0)),
        tf.constant(float(flat.shape[0]), tf.float64))
    for a, b in zip(from_sums, (shift, log_scale)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


def test_constant_channel_gets_finite_scale():
    x = tf.ones([2, 2, 2, 1], tf.float64)
    shift, log_scale = actnorm_initial_parameters(x)
    np.testing.assert_allclose(shift.numpy(), [-1.])
    np.testing.assert_allclose(log_scale.numpy(), [-np.log(1e-6)])
