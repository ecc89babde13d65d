"""Householder flow: volume preservation, inverse, the matrix product, shapes."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import Householder, householder_product
from tfdgm.testing import bijector_checks as checks

B, S, D, K = 3, 2, 5, 4


def _normal(rng, *shape):
    return tf.constant(rng.standard_normal(shape))


@pytest.mark.parametrize("amortized, x_shape", [
    (True, (B, D)), (True, (S, B, D)), (False, (S, B, D))])
def test_log_det_and_inverse(amortized, x_shape):
    rng = np.random.default_rng(6)
    batch = (B,) if amortized else ()
    flow = Householder(_normal(rng, *batch, K, D))
    x = _normal(rng, *x_shape)
    fldj, autodiff = checks.assert_log_det_matches_jacobian(flow, x)
    np.testing.assert_array_equal(fldj, np.zeros(x_shape[:-1]))
    y, _ = checks.assert_round_trip(flow, x, atol=1e-12)
    checks.assert_inverse_log_det(flow, x)
    checks.assert_inverse_log_det_matches_jacobian(flow, y)
    # The product of reflections applied as a matrix is the forward map.
    q = householder_product(flow.v)
    np.testing.assert_allclose(tf.linalg.matvec(q, x).numpy(), flow.forward(x).numpy(),
                               atol=1e-12)


def test_product_is_orthogonal_with_determinant_sign():
    rng = np.random.default_rng(7)
    q = householder_product(_normal(rng, B, K, D)).numpy()
    assert q.shape == (B, D, D)
    np.testing.assert_allclose(np.swapaxes(q, -1, -2) @ q, np.broadcast_to(np.eye(D), q.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(q), (-1.) ** K, atol=1e-12)
