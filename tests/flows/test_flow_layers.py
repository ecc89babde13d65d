"""Flow layers: ActNorm init and state, 1x1 conv init and forms, coupling identity and gradients."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.flows import (
    ActNorm, AffineCoupling, GlowStep, InvertibleConv1x1, Squeeze, lu_decompose,
    random_rotation)
from tfdgm.testing import bijector_checks as checks


def _normal(rng, *shape, scale=1.):
    return tf.constant(scale * rng.standard_normal(shape))


def randomize_trainable(layer, seed, stddev=0.3):
    """Random trainable weights (the zero-initialized ones included); fixed state untouched."""
    rng = np.random.default_rng(seed)
    for weight in layer.trainable_weights:
        weight.assign(stddev * rng.standard_normal(weight.shape))


def _assert_layer_log_det_and_inverse(layer, x, atol=1e-9):
    """The layer's log-det equals autodiff's; inverse(call(x)) == x; the bijector agrees."""
    y, log_det = layer(x)
    autodiff = tf.linalg.slogdet(checks.image_jacobian(lambda t: layer(t)[0], x))[1]
    np.testing.assert_allclose(log_det.numpy(), autodiff.numpy(), atol=atol)
    np.testing.assert_allclose(layer.inverse(checks.fresh(y)).numpy(), x.numpy(), atol=1e-10)
    bijector = layer.bijector()
    np.testing.assert_allclose(bijector.forward(x).numpy(), y.numpy(), atol=1e-12)
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(x, event_ndims=3).numpy(),
                               log_det.numpy(), atol=1e-10)
    return y.numpy(), log_det.numpy()


def _assert_all_trainable_get_gradients(layer, x):
    # Called on an `x` the layer has seen outside the tape: a bijector cache shared by equal
    # bijectors would hand back that untaped result and no gradients.
    with tf.GradientTape() as tape:
        y, log_det = layer(x)
        loss = tf.reduce_sum(tf.square(y)) - tf.reduce_sum(log_det)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert grads and len(grads) == len(layer.trainable_weights)
    for weight, grad in zip(layer.trainable_weights, grads):
        assert grad is not None and np.any(grad.numpy() != 0.), weight.path


def test_actnorm_initializes_once_from_the_first_training_batch():
    rng = np.random.default_rng(100)
    layer = ActNorm(dtype="float64")
    x = tf.constant(np.array([2., -1., 0.3]) + np.array([0.5, 3., 1.]) *
                    rng.standard_normal((8, 4, 4, 3)))
    y, _ = layer(x)  # training=None: no initialization
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert not bool(layer.initialized.numpy())
    y, log_det = layer(x, training=True)
    assert bool(layer.initialized.numpy())
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 1, 2)), 0., atol=1e-12)
    np.testing.assert_allclose(y.numpy().var(axis=(0, 1, 2)), 1., atol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), 16. * np.sum(layer.log_scale.numpy()))
    params = [w.numpy().copy() for w in (layer.shift, layer.log_scale)]
    layer(_normal(rng, 8, 4, 4, 3, scale=10.), training=True)  # a second batch changes nothing
    for weight, value in zip((layer.shift, layer.log_scale), params):
        np.testing.assert_array_equal(weight.numpy(), value)
    assert [w.name for w in layer.non_trainable_weights] == ["initialized"]
    randomize_trainable(layer, 1)
    _assert_layer_log_det_and_inverse(layer, _normal(rng, 2, 4, 4, 3))
    _assert_all_trainable_get_gradients(layer, _normal(rng, 2, 4, 4, 3))


def test_actnorm_initializes_inside_tf_function():
    rng = np.random.default_rng(101)
    layer = ActNorm(dtype="float64")
    x = _normal(rng, 4, 2, 2, 5, scale=3.) + 1.
    layer(x)  # build
    step = tf.function(lambda t: layer(t, training=True)[0])
    np.testing.assert_allclose(step(x).numpy().mean(axis=(0, 1, 2)), 0., atol=1e-12)
    shift = layer.shift.numpy().copy()
    step(x * 2.)
    np.testing.assert_array_equal(layer.shift.numpy(), shift)


def test_rotation_and_lu_decomposition():
    rng = np.random.default_rng(102)
    for channels in (3, 5, 12):
        rotation = random_rotation(channels, rng)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(channels), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.)
        p, lower, upper = lu_decompose(rotation)
        np.testing.assert_allclose(p @ lower @ upper, rotation, atol=1e-12)
        np.testing.assert_array_equal(np.triu(lower, 1), 0.)
        np.testing.assert_array_equal(np.diag(lower), 1.)
        np.testing.assert_array_equal(np.tril(upper, -1), 0.)
        np.testing.assert_array_equal(np.sort(p, axis=0)[-1], 1.)  # one 1 per column


@pytest.mark.parametrize("lu", [False, True])
def test_conv_starts_as_a_rotation_then_log_det_inverse_and_gradients(lu):
    rng = np.random.default_rng(103)
    layer = InvertibleConv1x1(lu=lu, seed=3, dtype="float64")
    x = _normal(rng, 2, 4, 4, 5)
    _, log_det = layer(x)
    np.testing.assert_allclose(log_det.numpy(), 0., atol=1e-12)  # |det| of a rotation is 1
    matrix = layer.bijector().matrix().numpy()
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(5), atol=1e-12)
    if lu:
        assert {w.name for w in layer.non_trainable_weights} == {"permutation", "sign"}
        assert len(layer.trainable_weights) == 3
    randomize_trainable(layer, 4)
    _assert_layer_log_det_and_inverse(layer, x)
    _assert_all_trainable_get_gradients(layer, x)
    same_seed = InvertibleConv1x1(lu=lu, seed=3, dtype="float64")
    same_seed(x)
    other_seed = InvertibleConv1x1(lu=lu, seed=4, dtype="float64")
    other_seed(x)
    np.testing.assert_allclose(same_seed.bijector().matrix().numpy(),
                               random_rotation(5, np.random.default_rng(3)), atol=1e-12)
    assert not np.allclose(other_seed.bijector().matrix().numpy(),
                           same_seed.bijector().matrix().numpy())


def test_frozen_inverse_is_a_constant_of_the_weights_at_freezing():
    rng = np.random.default_rng(104)
    layer = InvertibleConv1x1(lu=True, seed=5, dtype="float64")
    x = _normal(rng, 2, 4, 4, 3)
    layer(x)
    randomize_trainable(layer, 6)
    y, _ = layer(x)
    layer.freeze_inverse()
    assert layer.inverse_frozen
    np.testing.assert_allclose(layer.inverse(y).numpy(), x.numpy(), atol=1e-10)
    ops = {op.type for op in tf.function(layer.inverse).get_concrete_function(
        tf.TensorSpec([None, 4, 4, 3], tf.float64)).graph.get_operations()}
    assert not ops & {"MatrixInverse", "MatrixTriangularSolve"}
    randomize_trainable(layer, 7)  # weights move on: the frozen inverse does not follow
    y, _ = layer(x)
    assert not np.allclose(layer.inverse(y).numpy(), x.numpy(), atol=1e-6)
    layer.unfreeze_inverse()
    np.testing.assert_allclose(layer.inverse(y).numpy(), x.numpy(), atol=1e-10)


@pytest.mark.parametrize("mask, reverse, scale, channels", [
    ("checkerboard", False, "tanh", 3), ("checkerboard", True, "sigmoid", 1),
    ("channel", False, "sigmoid", 5), ("channel", True, "tanh", 5),
    ("channel", False, "additive", 3)])
def test_coupling_identity_at_init_then_log_det_inverse_and_gradients(mask, reverse, scale,
                                                                      channels):
    rng = np.random.default_rng(105)
    layer = AffineCoupling(mask=mask, reverse_mask=reverse, scale=scale, hidden_channels=8,
                           dtype="float64")
    x = _normal(rng, 2, 4, 4, channels)
    y, log_det = layer(x)
    if scale == "sigmoid":  # Glow's scale sigmoid(h + 2) at h = 0: x_b * sigmoid(2)
        s = 1. / (1. + np.exp(-2.))
        moved = np.isclose(y.numpy(), s * x.numpy(), rtol=1e-14) & (x.numpy() != 0.)
        assert np.all(moved | (y.numpy() == x.numpy()))
        assert np.count_nonzero(moved) == 2 * 16 * channels - np.count_nonzero(
            y.numpy() == x.numpy())
        np.testing.assert_allclose(log_det.numpy(), np.count_nonzero(moved) / 2 * np.log(s))
    else:
        np.testing.assert_array_equal(y.numpy(), x.numpy())
        np.testing.assert_array_equal(log_det.numpy(), 0.)
    # Conditioner: 3 convolutions (kernel, bias) and, for tanh, the log-scale factor.
    assert len(layer.trainable_weights) == 6 + (scale == "tanh")
    randomize_trainable(layer, 8)
    _assert_layer_log_det_and_inverse(layer, x)
    _assert_all_trainable_get_gradients(layer, x)


def test_glow_step_and_squeeze_layers():
    rng = np.random.default_rng(106)
    step = GlowStep(hidden_channels=8, seed=9, dtype="float64")
    x = _normal(rng, 2, 2, 2, 5) + 0.5
    step(x, training=True)
    assert bool(step.actnorm.initialized.numpy())
    randomize_trainable(step, 10, stddev=0.2)
    _assert_layer_log_det_and_inverse(step, x)
    _assert_all_trainable_get_gradients(step, x)
    squeeze = Squeeze(dtype="float64")
    y, log_det = squeeze(_normal(rng, 2, 4, 4, 3))
    assert y.shape == (2, 2, 2, 12) and squeeze.compute_output_shape((None, 4, 4, 3)) == (
        None, 2, 2, 12)
    np.testing.assert_array_equal(log_det.numpy(), 0.)
    with pytest.raises(ValueError, match="even H and W"):
        Squeeze().compute_output_shape((None, 3, 4, 1))
