"""Invertible 1x1 convolutions: log-det vs autodiff and slogdet(W), LU = plain, frozen inverse."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import InvertibleConv1x1, LUInvertibleConv1x1
from tfdgm.testing import bijector_checks as checks


def _lu_params(rng, channels):
    permutation = np.eye(channels)[rng.permutation(channels)]
    lower = rng.standard_normal((channels, channels))
    upper = rng.standard_normal((channels, channels))
    diagonal = rng.choice([-1., 1.], channels) * rng.uniform(0.3, 2., channels)
    return [tf.constant(t) for t in (permutation, lower, upper, diagonal)]


def _lu_matrix_numpy(permutation, lower, upper, diagonal):
    lower_tri = np.tril(lower.numpy(), -1) + np.eye(len(diagonal))
    upper_tri = np.triu(upper.numpy(), 1) + np.diag(diagonal.numpy())
    return permutation.numpy() @ lower_tri @ upper_tri


@pytest.mark.parametrize("channels, x_shape", [(3, (2, 4, 4)), (5, (2, 2, 3)), (3, (2, 2, 2, 2))])
def test_plain_log_det_inverse_and_values(channels, x_shape):
    rng = np.random.default_rng(70)
    matrix = tf.constant(rng.standard_normal((channels, channels)) + 0.5 * np.eye(channels))
    conv = InvertibleConv1x1(matrix)
    x = tf.constant(rng.standard_normal(x_shape + (channels,)))
    fldj, _ = checks.assert_image_log_det_matches_jacobian(conv, x, atol=1e-9)
    hw = x_shape[-2] * x_shape[-1]
    np.testing.assert_allclose(fldj, hw * np.linalg.slogdet(matrix.numpy())[1], atol=1e-10)
    y, _ = checks.assert_round_trip(conv, x, atol=1e-10)
    np.testing.assert_allclose(y, x.numpy() @ matrix.numpy().T, atol=1e-12)
    checks.assert_image_inverse_log_det(conv, x, atol=1e-10)
    checks.assert_image_inverse_log_det_matches_jacobian(conv, y, atol=1e-9)


@pytest.mark.parametrize("channels", [3, 5])
def test_lu_matches_its_matrix_and_the_plain_form(channels):
    rng = np.random.default_rng(71)
    params = _lu_params(rng, channels)
    conv = LUInvertibleConv1x1(*params)
    expected_matrix = _lu_matrix_numpy(*params)
    np.testing.assert_allclose(conv.matrix().numpy(), expected_matrix, atol=1e-12)
    np.testing.assert_allclose(conv.inverse_matrix().numpy(), np.linalg.inv(expected_matrix),
                               atol=1e-10)
    x = tf.constant(rng.standard_normal((2, 4, 4, channels)))
    fldj, _ = checks.assert_image_log_det_matches_jacobian(conv, x, atol=1e-9)
    # H W sum log|s| = H W log|det W| = the plain form's log-det.
    np.testing.assert_allclose(fldj, 16. * np.sum(np.log(np.abs(params[3].numpy()))),
                               atol=1e-12)
    np.testing.assert_allclose(fldj, 16. * np.linalg.slogdet(expected_matrix)[1], atol=1e-10)
    plain = InvertibleConv1x1(conv.matrix())
    np.testing.assert_allclose(plain.forward_log_det_jacobian(x, event_ndims=3).numpy(), fldj,
                               atol=1e-10)
    np.testing.assert_allclose(plain.forward(x).numpy(), conv.forward(x).numpy(), atol=1e-12)
    y, _ = checks.assert_round_trip(conv, x, atol=1e-10)
    checks.assert_image_inverse_log_det(conv, x, atol=1e-10)
    checks.assert_image_inverse_log_det_matches_jacobian(conv, y, atol=1e-9)


def _op_types(fn, *args):
    graph = tf.function(fn).get_concrete_function(*args).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("lu", [False, True])
def test_precomputed_inverse_is_used_and_needs_no_solver(lu):
    rng = np.random.default_rng(72)
    if lu:
        params = _lu_params(rng, 3)
        make = lambda **kw: LUInvertibleConv1x1(*params, **kw)  # noqa: E731
    else:
        matrix = tf.constant(rng.standard_normal((3, 3)) + np.eye(3))
        make = lambda **kw: InvertibleConv1x1(matrix, **kw)  # noqa: E731
    frozen = make(inverse_matrix=make().inverse_matrix().numpy())
    x = tf.constant(rng.standard_normal((2, 4, 4, 3)))
    checks.assert_round_trip(frozen, x, atol=1e-10)
    # The frozen inverse is used as given (a wrong one gives a wrong inverse) ...
    doubled = make(inverse_matrix=2. * make().inverse_matrix())
    np.testing.assert_allclose(doubled.inverse(frozen.forward(x)).numpy(), 2. * x.numpy(),
                               atol=1e-10)
    # ... and the inverse graph is matmuls only: no op without a TFLite builtin.
    unsupported = {"MatrixInverse", "MatrixTriangularSolve", "LogMatrixDeterminant"}
    spec = tf.TensorSpec([None, 4, 4, 3], tf.float64)
    assert not _op_types(lambda y: frozen.inverse(y), spec) & unsupported
    assert _op_types(lambda y: make().inverse(y), spec) & unsupported
    # The LU forward builds W with masks and matmuls only.
    assert not _op_types(lambda t: make().forward(t), spec) & unsupported
