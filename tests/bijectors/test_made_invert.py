"""`MADE.invert`: the coordinate-by-coordinate solution of `z = solve(u, *made(z))` is the fixed
point of the full MADE (exactly, in float64), for one and two hidden layers, every input order,
a context and leading batch dimensions, and equals `D` fixed-point passes from zero."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.nn.made import MADE
from tfdgm.testing.bijector_checks import randomize_weights

D = 6


def affine(u, m, s):
    return u * tf.exp(0.5 * tf.tanh(s)) + m


def random_made(hidden_units, input_order, context_size=None, seed=0):
    made = MADE(D, hidden_units, activation="elu", input_order=input_order, dtype="float64")
    context = None
    if context_size is not None:
        context = tf.constant(np.random.default_rng(seed + 1).standard_normal([3, 4, context_size]))
    made(tf.zeros([3, 4, D], tf.float64), context)
    randomize_weights(made, seed=seed, stddev=0.7)
    return made, context


def fixed_point(made, u, context):
    """`D` passes of `z <- solve(u, *made(z))` from `z = 0`: pass `j` makes the `j`-th
    coordinate of the order exact."""
    z = tf.zeros_like(u)
    for _ in range(D):
        z = affine(u, *made(z, context))
    return z


@pytest.mark.parametrize("hidden_units", [[12], [12, 10]])
@pytest.mark.parametrize("input_order", ["left-to-right", "right-to-left", [3, 6, 1, 5, 2, 4]])
@pytest.mark.parametrize("context_size", [None, 5])
def test_invert_solves_the_autoregressive_system(hidden_units, input_order, context_size):
    made, context = random_made(hidden_units, input_order, context_size)
    u = tf.constant(np.random.default_rng(7).standard_normal([3, 4, D]))  # [S, B, D]
    z = made.invert(u, affine, context)
    assert z.shape == (3, 4, D) and z.dtype == tf.float64
    np.testing.assert_allclose(affine(u, *made(z, context)), z, atol=1e-12)  # z is the fixed point
    np.testing.assert_allclose(z, fixed_point(made, u, context), atol=1e-12)
    assert np.abs(z - u).max() > 0.1  # a non-trivial map


def test_invert_in_float32_agrees_with_the_passes():
    made = MADE(D, [32], activation="relu", dtype="float32")
    made(tf.zeros([1, D]))
    randomize_weights(made, seed=3, stddev=0.3)
    u = tf.constant(np.random.default_rng(2).standard_normal([64, D]).astype(np.float32))
    z = made.invert(u, affine)
    assert z.dtype == tf.float32
    np.testing.assert_allclose(z, fixed_point(made, u, None), atol=1e-5)
