"""Logit preprocessing: exact log-det, inverse, and closed-form values."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import Logit
from tfdgm.testing import bijector_checks as checks


@pytest.mark.parametrize("alpha", [0.05, 1e-6])
def test_log_det_and_inverse(alpha):
    rng = np.random.default_rng(60)
    x = tf.constant(rng.uniform(0.01, 0.99, (2, 4, 4, 3)))
    logit = Logit(alpha)
    fldj, _ = checks.assert_image_log_det_matches_jacobian(logit, x, atol=1e-9)
    y, _ = checks.assert_round_trip(logit, x, atol=1e-12)
    checks.assert_image_inverse_log_det(logit, x, atol=1e-9)
    checks.assert_image_inverse_log_det_matches_jacobian(logit, y, atol=1e-9)
    p = alpha + (1. - 2. * alpha) * x.numpy()
    np.testing.assert_allclose(y, np.log(p / (1. - p)), atol=1e-12)
    expected = np.sum(np.log(1. - 2. * alpha) - np.log(p) - np.log(1. - p), axis=(1, 2, 3))
    np.testing.assert_allclose(fldj, expected, rtol=1e-12)


def test_closed_form_at_the_middle_and_the_ends():
    logit = Logit(0.05)
    x = tf.constant([[[[0.5], [0.], [1.]]]], tf.float64)  # [1, 1, 3, 1]
    y = logit.forward(x).numpy().ravel()
    np.testing.assert_allclose(y, [0., np.log(0.05 / 0.95), np.log(0.95 / 0.05)], atol=1e-14)
    # dy/dx = (1 - 2a) / (p (1 - p)): 0.9 / 0.25 at p = 1/2, 0.9 / (0.05 * 0.95) at the ends.
    fldj = logit.forward_log_det_jacobian(x, event_ndims=3).numpy()
    np.testing.assert_allclose(fldj, [np.log(0.9 / 0.25) + 2. * np.log(0.9 / 0.0475)],
                               rtol=1e-12)


def test_alpha_out_of_range():
    with pytest.raises(ValueError, match="alpha"):
        Logit(0.5)
