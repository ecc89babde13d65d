"""IAF step with the Keras 3 MADE: triangular Jacobian, log-det, sequential inverse, context."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import IAF
from tfdgm.nn import MADE
from tfdgm.nn.made import made_degrees, made_masks
from tfdgm.testing import bijector_checks as checks

B, S, D, F = 3, 2, 5, 4
ORDERS = {"left-to-right": list(range(D)), "right-to-left": list(reversed(range(D)))}


def _normal(rng, *shape, scale=1.):
    return tf.constant(scale * rng.standard_normal(shape))


def _made(input_order, context=None, seed=0, hidden_units=(12, 12), activation="elu"):
    made = MADE(D, list(hidden_units), activation=activation, input_order=input_order,
                dtype="float64")
    made(tf.zeros([B, D], tf.float64), context)  # build
    checks.randomize_weights(made, seed=seed, stddev=0.5)
    return made


@pytest.mark.parametrize("input_order", sorted(ORDERS))
def test_made_is_autoregressive_in_declared_order(input_order):
    rng = np.random.default_rng(20)
    made = _made(input_order, context=_normal(rng, B, F), activation="relu")
    context = _normal(rng, B, F)
    z = _normal(rng, B, D)
    for output in (0, 1):  # m, then s: strictly triangular, output i sees only z_<i.
        jac = checks.jacobian(lambda t: made(t, context)[output], z).numpy()
        permuted = jac[..., ORDERS[input_order], :][..., :, ORDERS[input_order]]
        np.testing.assert_array_equal(np.triu(permuted), 0.)
        assert np.any(np.abs(np.tril(permuted, k=-1)) > 0.)
    np.testing.assert_array_equal(np.argsort(made.degrees), ORDERS[input_order])


@pytest.mark.parametrize("input_order", sorted(ORDERS))
def test_iaf_jacobian_triangular_in_declared_order(input_order):
    rng = np.random.default_rng(21)
    context = _normal(rng, B, F)
    made = _made(input_order, context=context)
    flow = IAF(lambda z: made(z, context))
    checks.assert_triangular_jacobian(flow.forward, _normal(rng, S, B, D), ORDERS[input_order])


@pytest.mark.parametrize("context_shape", [None, (B, F), (S, B, F)])
def test_log_det_and_inverse(context_shape):
    rng = np.random.default_rng(22)
    context = None if context_shape is None else _normal(rng, *context_shape)
    made = _made("right-to-left", context=context, seed=1)
    flow = IAF(lambda z: made(z, context), forget_bias=1.5, input_order=made.input_order)
    x = _normal(rng, S, B, D, scale=2.)
    checks.assert_log_det_matches_jacobian(flow, x)
    checks.assert_round_trip(flow, x, atol=1e-10)
    checks.assert_inverse_log_det(flow, x)
    y, fldj = flow.forward_and_log_det(x)
    np.testing.assert_allclose(y.numpy(), flow.forward(x).numpy(), atol=1e-14)
    np.testing.assert_allclose(fldj.numpy(),
                               flow.forward_log_det_jacobian(x, event_ndims=1).numpy(),
                               atol=1e-14)


def test_context_passed_as_keyword_and_in_graph():
    rng = np.random.default_rng(23)
    context = _normal(rng, B, F)
    made = _made("left-to-right", context=context, seed=2)
    x = _normal(rng, S, B, D)

    @tf.function
    def run(x, context):
        flow = IAF(lambda z, context: made(z, context), input_order=made.degrees)
        y = flow.forward(x, context=context)
        x_back = flow.inverse(tf.identity(y), context=context)
        return x_back, flow.forward_log_det_jacobian(x, event_ndims=1, context=context)

    x_back, fldj = run(x, context)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-10)
    assert fldj.shape == (S, B)
    checks.assert_log_det_matches_jacobian(IAF(lambda z, context: made(z, context)), x,
                                           context=context)


@pytest.mark.parametrize("event_size, input_order, stddev, seed", [
    (5, "left-to-right", 0.7, 2), (5, "right-to-left", 0.7, 0),
    (13, "left-to-right", 0.5, 3), (13, "right-to-left", 0.5, 4)])
def test_inverse_finite_and_exact_with_random_weights(event_size, input_order, stddev, seed):
    # Random (not initial) MADE weights put some gates far from 1. Solving every coordinate at
    # every pass overflowed the still undetermined ones, and inf * 0 in the next masked matmul
    # made the row NaN: 2, 5, 3 and 1 of these 64 rows before the fix.
    rng = np.random.default_rng(26)
    made = MADE(event_size, [32, 32], input_order=input_order, dtype="float64")
    made(tf.zeros([1, event_size], tf.float64))
    checks.randomize_weights(made, seed=seed, stddev=stddev)
    flow = IAF(lambda z: made(z), input_order=input_order)
    x = _normal(rng, 64, event_size)
    y = flow.forward(x)
    assert np.all(np.isfinite(y.numpy()))
    x_back = flow.inverse(checks.fresh(y)).numpy()
    assert np.all(np.isfinite(x_back))
    np.testing.assert_allclose(x_back, x.numpy(), atol=1e-7)
    # An explicit permutation of degrees (the MADE's) is the same order.
    x_perm = IAF(lambda z: made(z), input_order=made.degrees).inverse(checks.fresh(y)).numpy()
    np.testing.assert_array_equal(x_perm, x_back)


def test_inverse_needs_the_order():
    made = _made("left-to-right")
    with pytest.raises(ValueError, match="input_order"):
        IAF(lambda z: made(z)).inverse(tf.zeros([B, D], tf.float64))


def test_made_initialization_gates_near_forget_bias_and_all_weights_get_gradients():
    rng = np.random.default_rng(24)
    made = MADE(D, [64, 64], dtype="float64")
    context = _normal(rng, B, F)
    z = _normal(rng, S, B, D)
    with tf.GradientTape() as tape:
        m, s = made(z, context)
        flow = IAF(lambda t: made(t, context), forget_bias=2.)
        y, fldj = flow.forward_and_log_det(z)
        loss = tf.reduce_sum(tf.square(y)) - tf.reduce_sum(fldj)
    assert m.shape == (S, B, D) and s.shape == (S, B, D)
    assert np.max(np.abs(s.numpy())) < 0.1 and np.max(np.abs(m.numpy())) < 0.1
    gate = tf.sigmoid(s + 2.).numpy()
    assert np.all(np.abs(gate - 1. / (1. + np.exp(-2.))) < 0.02)
    # Masked kernels, biases, context kernel, m and s heads: all trainable, all with gradients.
    assert len(made.trainable_weights) == 2 * 2 + 1 + 4
    assert len(made.non_trainable_weights) == 0
    grads = tape.gradient(loss, made.trainable_weights)
    for weight, grad in zip(made.trainable_weights, grads):
        assert grad is not None and np.any(grad.numpy() != 0.), weight.path


def test_made_masks_and_config_round_trip():
    degrees = made_degrees(4, [6], input_order="right-to-left")
    np.testing.assert_array_equal(degrees[0], [4, 3, 2, 1])
    masks = made_masks(degrees)
    assert [mask.shape for mask in masks] == [(4, 6), (6, 4)]
    # Composite connectivity input -> output is strictly "earlier in the order".
    connect = (masks[0] @ masks[1]) > 0
    np.testing.assert_array_equal(connect, degrees[0][:, None] < degrees[0][None, :])

    rng = np.random.default_rng(25)
    made = _made("right-to-left", seed=3)
    clone = MADE.from_config(made.get_config())
    z = _normal(rng, B, D)
    clone(z)
    clone.set_weights(made.get_weights())
    for a, b in zip(made(z), clone(z)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-14)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(made))
    assert isinstance(restored, MADE) and restored.input_order == "right-to-left"


def test_made_rejects_context_mismatch():
    made = _made("left-to-right")
    with pytest.raises(ValueError, match="without a context"):
        made(tf.zeros([B, D], tf.float64), tf.zeros([B, F], tf.float64))
