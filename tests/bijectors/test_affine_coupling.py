"""Affine coupling: every mask and scale, odd channel counts, log-det vs autodiff, inverse."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.bijectors import AffineCoupling, channel_split, checkerboard_mask
from tfdgm.testing import bijector_checks as checks

# Odd channel counts matter for the channel split (ceil / floor); the checkerboard ignores C.
CASES = [(mask, reverse, scale, channels)
         for mask in ("checkerboard", "channel") for reverse in (False, True)
         for scale in ("sigmoid", "tanh", "additive")
         for channels in ((3,) if mask == "checkerboard" else (3, 5))]


def _conditioner(rng, in_channels, out_channels):
    """A fixed random two-layer 3x3 conv net: x_a -> (t, h), each [..., out_channels]."""
    k1 = tf.constant(0.5 * rng.standard_normal((3, 3, in_channels, 8)))
    k2 = tf.constant(0.5 * rng.standard_normal((3, 3, 8, 2 * out_channels)))
    bias = tf.constant(rng.standard_normal(2 * out_channels))

    def net(x_a):
        hidden = tf.tanh(tf.nn.conv2d(x_a, k1, 1, "SAME"))
        out = tf.nn.conv2d(hidden, k2, 1, "SAME") + bias
        return out[..., :out_channels], out[..., out_channels:]

    return net


def _coupling(rng, mask, reverse, scale, channels):
    if mask == "checkerboard":
        c_a = c_b = channels
    else:
        cond, moved = channel_split(channels, reverse)
        c_a, c_b = cond.stop - cond.start, moved.stop - moved.start
    factor = tf.constant(rng.uniform(0.5, 2., c_b))
    return AffineCoupling(_conditioner(rng, c_a, c_b), mask=mask, reverse_mask=reverse,
                          scale=scale, log_scale_factor=factor)


@pytest.mark.parametrize("mask, reverse, scale, channels", CASES)
def test_log_det_and_inverse(mask, reverse, scale, channels):
    rng = np.random.default_rng(80)
    coupling = _coupling(rng, mask, reverse, scale, channels)
    x = tf.constant(rng.standard_normal((2, 2, 4, channels)))
    fldj, _ = checks.assert_image_log_det_matches_jacobian(coupling, x, atol=1e-9)
    if scale == "additive":
        np.testing.assert_array_equal(fldj, 0.)
    else:
        assert np.all(np.abs(fldj) > 1e-3)
    y, _ = checks.assert_round_trip(coupling, x, atol=1e-10)
    checks.assert_image_inverse_log_det(coupling, x, atol=1e-10)
    if channels == 3:  # the inverse's own Jacobian; once per mask and scale is enough
        checks.assert_image_inverse_log_det_matches_jacobian(coupling, y, atol=1e-9)
    y_once, fldj_once = coupling.forward_and_log_det(x)
    np.testing.assert_allclose(y_once.numpy(), y, atol=1e-14)
    np.testing.assert_allclose(fldj_once.numpy(), fldj, atol=1e-14)
    x_once, ildj_once = coupling.inverse_and_log_det(checks.fresh(y))
    np.testing.assert_allclose(x_once.numpy(), x.numpy(), atol=1e-10)
    np.testing.assert_allclose(ildj_once.numpy(), -fldj, atol=1e-10)
    # The conditioning part passes unchanged; the rest moves.
    if mask == "checkerboard":
        keep = np.broadcast_to(checkerboard_mask(2, 4, reverse, bool), x.shape)
    else:
        keep = np.zeros(x.shape, bool)
        keep[..., channel_split(channels, reverse)[0]] = True
    np.testing.assert_array_equal(y[keep], x.numpy()[keep])
    assert np.all(y[~keep] != x.numpy()[~keep])


def test_channel_split_is_ceil_floor_and_checkerboard_alternates():
    assert channel_split(5) == (slice(0, 3), slice(3, 5))
    assert channel_split(5, reverse=True) == (slice(3, 5), slice(0, 3))
    assert channel_split(4) == (slice(0, 2), slice(2, 4))
    with pytest.raises(ValueError, match="at least 2 channels"):
        channel_split(1)
    mask = checkerboard_mask(3, 4)[..., 0]
    np.testing.assert_array_equal(mask[0], [1, 0, 1, 0])
    np.testing.assert_array_equal(mask + checkerboard_mask(3, 4, reverse=True)[..., 0], 1.)


def test_scales_at_zero_conditioner_output():
    # h = 0: sigmoid(2) for Glow, exp(0) = 1 for tanh; t = 0.
    x = tf.constant(np.random.default_rng(81).standard_normal((2, 2, 2, 4)))

    def zero(x_a):
        return tf.zeros_like(x_a), tf.zeros_like(x_a)

    glow = AffineCoupling(zero, mask="channel", scale="sigmoid").forward(x).numpy()
    np.testing.assert_allclose(glow[..., :2], x.numpy()[..., :2], atol=0.)
    np.testing.assert_allclose(glow[..., 2:], x.numpy()[..., 2:] / (1. + np.exp(-2.)),
                               rtol=1e-14)
    for scale in ("tanh", "additive"):
        np.testing.assert_array_equal(
            AffineCoupling(zero, mask="channel", scale=scale).forward(x).numpy(), x.numpy())
    additive = AffineCoupling(lambda x_a: x_a[..., :2] ** 2, mask="channel", scale="additive")
    np.testing.assert_allclose(additive.forward(x).numpy()[..., 2:],
                               x.numpy()[..., 2:] + x.numpy()[..., :2] ** 2, atol=1e-14)


def test_conditioner_keywords_and_bad_options():
    x = tf.ones([1, 2, 2, 2], tf.float64)
    coupling = AffineCoupling(lambda x_a, label: (label * x_a, tf.zeros_like(x_a)),
                              scale="tanh")
    y = coupling.forward(x, label=3.).numpy()
    np.testing.assert_allclose(y[..., 1], 4.)
    with pytest.raises(ValueError, match="mask"):
        AffineCoupling(lambda x_a: x_a, mask="stripes")
    with pytest.raises(ValueError, match="scale"):
        AffineCoupling(lambda x_a: x_a, scale="exp")
