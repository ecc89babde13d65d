"""Sylvester flows: log-det with the three kinds of Q (O, H, T), constraints, shapes."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import (
    Sylvester, constrain_triangular, householder_product, orthogonalize, reversal_permutation,
    triangular_q)
from tfdgm.testing import bijector_checks as checks

B, S, D = 3, 2, 5


def _normal(rng, *shape, scale=1.):
    return tf.constant(scale * rng.standard_normal(shape))


def _q(kind, rng, batch):
    if kind == "orthogonal":  # O-SNF, bottleneck M = 3 < D
        # A tight tolerance: the log-det formula is exact only for Q^T Q = I.
        return orthogonalize(_normal(rng, *batch, D, 3), tol=1e-13)
    if kind == "householder":  # H-SNF, M = D
        return householder_product(_normal(rng, *batch, 4, D))
    return triangular_q(D, permute=(kind == "reversed"), dtype=tf.float64)  # T-SNF, M = D


@pytest.mark.parametrize("kind", ["orthogonal", "householder", "identity", "reversed"])
@pytest.mark.parametrize("amortized, x_shape", [(True, (S, B, D)), (False, (B, D))])
def test_log_det_matches_jacobian(kind, amortized, x_shape):
    rng = np.random.default_rng(10)
    batch = (B,) if amortized else ()
    q = _q(kind, rng, batch)
    m = q.shape[-1]
    # Large raw values: r1_ii r2_ii close to +-1 and a strong nonlinearity.
    flow = Sylvester(q, _normal(rng, *batch, m, m, scale=2.), _normal(rng, *batch, m, m, scale=2.),
                     _normal(rng, *batch, m))
    x = _normal(rng, *x_shape, scale=2.)
    fldj, _ = checks.assert_log_det_matches_jacobian(flow, x)
    assert np.all(np.isfinite(fldj))
    assert flow.experimental_batch_shape() == batch


def test_global_q_with_amortized_triangular_parameters():
    # T-SNF: one fixed permutation for the whole batch, R1, R2, b per example.
    rng = np.random.default_rng(11)
    flow = Sylvester(triangular_q(D, permute=True, dtype=tf.float64), _normal(rng, B, D, D),
                     _normal(rng, B, D, D), _normal(rng, B, D))
    checks.assert_log_det_matches_jacobian(flow, _normal(rng, S, B, D))


@pytest.mark.parametrize("scale", [3., 50.])
def test_triangular_constraint(scale):
    rng = np.random.default_rng(12)
    r1_raw, r2_raw = _normal(rng, B, 4, 4, scale=scale), _normal(rng, B, 4, 4, scale=scale)
    flow = Sylvester(triangular_q(4, permute=False, dtype=tf.float64), r1_raw, r2_raw,
                     _normal(rng, B, 4))
    for r, raw in ((flow.r1, r1_raw), (flow.r2, r2_raw)):
        r, raw = r.numpy(), raw.numpy()
        np.testing.assert_array_equal(np.tril(r, k=-1), 0.)
        np.testing.assert_array_equal(np.triu(r, k=1), np.triu(raw, k=1))
        np.testing.assert_allclose(np.diagonal(r, axis1=-2, axis2=-1),
                                   np.tanh(np.diagonal(raw, axis1=-2, axis2=-1)))
    np.testing.assert_allclose(constrain_triangular(r1_raw).numpy(), flow.r1.numpy())
    diag = (tf.linalg.diag_part(flow.r1) * tf.linalg.diag_part(flow.r2)).numpy()
    if scale < 10.:
        assert np.all(np.abs(diag) < 1.)
    else:
        # tanh rounds to +-1 here, so r1_ii r2_ii = -1 happens in floating point; the log-det
        # must stay finite anyway (at a = 0, the worst case, and elsewhere).
        assert np.any(diag == -1.)
        x = tf.constant(np.linalg.solve(flow.r2.numpy(), -flow.b.numpy()[..., None])[..., 0])
        fldj = flow.forward_log_det_jacobian(tf.stack([x, 2. * x]), event_ndims=1).numpy()
        assert np.all(np.isfinite(fldj))


def test_orthogonalize_converges_and_is_differentiable():
    rng = np.random.default_rng(13)
    q_raw = _normal(rng, B, 8, 4)
    with tf.GradientTape() as tape:
        tape.watch(q_raw)
        q = orthogonalize(q_raw)  # default: up to 30 steps, stop at ||Q^T Q - I||_F < 1e-6
        loss = tf.reduce_sum(tf.sin(q))
    qtq = tf.linalg.matmul(q, q, transpose_a=True).numpy()
    np.testing.assert_allclose(qtq, np.broadcast_to(np.eye(4), qtq.shape), atol=1e-5)
    grad = tape.gradient(loss, q_raw)
    assert grad is not None and np.all(np.isfinite(grad.numpy()))
    assert np.max(np.abs(grad.numpy())) > 1e-3
    # The gradient is the derivative of the converged map: compare a directional derivative
    # with central finite differences.
    direction = _normal(rng, B, 8, 4)
    eps = 1e-6

    def value(t):
        return tf.reduce_sum(tf.sin(orthogonalize(t, tol=1e-13))).numpy()

    with tf.GradientTape() as tape:
        tape.watch(q_raw)
        loss = tf.reduce_sum(tf.sin(orthogonalize(q_raw, tol=1e-13)))
    analytic = tf.reduce_sum(tape.gradient(loss, q_raw) * direction).numpy()
    numeric = (value(q_raw + eps * direction) - value(q_raw - eps * direction)) / (2. * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_orthogonalize_is_scale_invariant_polar_factor():
    # For a full-rank square matrix the limit is the orthogonal polar factor U V^T.
    rng = np.random.default_rng(14)
    a = _normal(rng, 4, 4)
    u, _, vt = np.linalg.svd(a.numpy())
    np.testing.assert_allclose(orthogonalize(7. * a, num_steps=60, tol=1e-13).numpy(), u @ vt,
                               atol=1e-10)


def test_householder_q_orthogonal_and_reversal_permutation():
    rng = np.random.default_rng(15)
    q = householder_product(_normal(rng, B, 4, D)).numpy()
    np.testing.assert_allclose(np.swapaxes(q, -1, -2) @ q, np.broadcast_to(np.eye(D), q.shape),
                               atol=1e-12)
    p = reversal_permutation(D, tf.float64).numpy()
    z = rng.standard_normal(D)
    np.testing.assert_array_equal(p @ z, z[::-1])
    assert set(np.unique(p)) == {0., 1.}
    np.testing.assert_array_equal(p.sum(axis=0), 1.)
    np.testing.assert_array_equal(p.sum(axis=1), 1.)
    np.testing.assert_array_equal(triangular_q(D, permute=False, dtype=tf.float64).numpy(),
                                  np.eye(D))
    np.testing.assert_array_equal(triangular_q(D, permute=True, dtype=tf.float64).numpy(), p)
