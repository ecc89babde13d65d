"""Squeeze: exact values and inverse, zero log-det, event shapes, odd sizes rejected."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import Squeeze
from tfdgm.testing import bijector_checks as checks


def _reference_squeeze(x):
    *batch, h, w, c = x.shape
    x = x.reshape(*batch, h // 2, 2, w // 2, 2, c)
    n = len(batch)
    x = np.transpose(x, list(range(n)) + [n, n + 2, n + 1, n + 3, n + 4])
    return x.reshape(*batch, h // 2, w // 2, 4 * c)


@pytest.mark.parametrize("x_shape", [(2, 4, 4, 3), (2, 2, 6, 5), (3, 2, 4, 2, 1)])
def test_values_inverse_and_log_det(x_shape):
    x = tf.constant(np.random.default_rng(50).standard_normal(x_shape))
    squeeze = Squeeze()
    y = squeeze.forward(checks.fresh(x))
    np.testing.assert_array_equal(y.numpy(), _reference_squeeze(x.numpy()))
    # Block (i, j) of channel c lands on channel (2 dh + dw) C + c: space_to_depth's order.
    c = x_shape[-1]
    np.testing.assert_array_equal(y.numpy()[..., 0, 0, 4 * c - 1], x.numpy()[..., 1, 1, c - 1])
    np.testing.assert_array_equal(squeeze.inverse(checks.fresh(y)).numpy(), x.numpy())
    fldj, autodiff = checks.assert_image_log_det_matches_jacobian(squeeze, x, atol=1e-12)
    np.testing.assert_array_equal(fldj, np.zeros(x_shape[:-3]))
    checks.assert_image_inverse_log_det(squeeze, x, atol=0.)
    assert squeeze.forward_event_shape(x_shape[-3:]) == (x_shape[-3] // 2, x_shape[-2] // 2,
                                                        4 * c)
    assert squeeze.inverse_event_shape(y.shape[-3:]) == x_shape[-3:]
    np.testing.assert_array_equal(squeeze.forward_event_shape_tensor(x_shape[-3:]).numpy(),
                                  y.shape[-3:])


@pytest.mark.parametrize("x_shape", [(2, 3, 4, 1), (2, 4, 5, 3)])
def test_odd_height_or_width_raises(x_shape):
    with pytest.raises(ValueError, match="even H and W"):
        Squeeze().forward(tf.zeros(x_shape))


def test_inverse_needs_channels_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        Squeeze().inverse(tf.zeros([2, 2, 2, 6]))
