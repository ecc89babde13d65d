"""Reusable numerical checks for bijectors acting on vectors (`forward_min_event_ndims=1`).

Every check takes points `x` `[..., D]` already broadcast against the bijector's parameters
(`forward(x)` has the shape of `x`) and works in any float dtype; use float64 with non-trivial
random parameters for tolerances near 1e-8. Each raises `AssertionError` with a message naming
the check, and returns the values it compared so a test can check more.

The `image_*` checks do the same for bijectors on images (`forward_min_event_ndims=3`,
`x [..., H, W, C]`): they flatten each event to `[H * W * C]` for the autodiff Jacobian, so the
output may have another event shape of the same size (a squeeze: `[H/2, W/2, 4C]`).

TFP caches `forward`/`inverse` pairs by tensor identity, so `inverse(forward(x))` returns the
cached `x` without running `_inverse`. These checks pass fresh copies (`fresh`) to defeat the
cache; do the same in hand-written tests.
"""

import numpy as np
import tensorflow as tf

__all__ = [
    "assert_image_inverse_log_det",
    "assert_image_inverse_log_det_matches_jacobian",
    "assert_image_log_det_matches_jacobian",
    "assert_inverse_log_det",
    "assert_inverse_log_det_matches_jacobian",
    "assert_log_det_matches_jacobian",
    "assert_round_trip",
    "assert_triangular_jacobian",
    "fresh",
    "image_jacobian",
    "jacobian",
    "randomize_weights",
]


def fresh(t):
    """Returns a new constant with the value of `t`, unknown to any bijector cache."""
    return tf.constant(np.array(t))


def jacobian(fn, x, use_pfor=None):
    """Returns the per-row Jacobians `d fn(x)[..., i] / d x[..., j]`, `[..., D, D]`.

    `fn` maps `[..., D]` to `[..., D]` row by row (each row of the output depends only on the
    same row of the input). The leading dims are flattened for `tape.batch_jacobian`.

    Args:
        fn: Python callable `[..., D] -> [..., D]`.
        x: float `Tensor` `[..., D]`.
        use_pfor: Python `bool`, how `batch_jacobian` runs; default: a loop of `D` gradients
            for `D <= 32` (in eager mode far cheaper than tracing a vectorized graph), `pfor`
            above.

    Returns:
        `Tensor` `[..., D, D]`: `jac[..., i, j] = d y_i / d x_j`.
    """
    x = tf.convert_to_tensor(x)
    d = x.shape[-1]
    flat = tf.reshape(x, [-1, d])
    if use_pfor is None:
        use_pfor = d > 32
    with tf.GradientTape(persistent=not use_pfor) as tape:
        tape.watch(flat)
        y = fn(tf.reshape(flat, tf.shape(x)))
        if y.shape != x.shape:
            raise AssertionError(
                "jacobian: fn(x) has shape {} but x has shape {}; broadcast x against the "
                "parameters first.".format(y.shape, x.shape))
        y_flat = tf.reshape(y, [-1, d])
    jac = tape.batch_jacobian(y_flat, flat, experimental_use_pfor=use_pfor)
    return tf.reshape(jac, tf.concat([tf.shape(x), [d]], axis=0))


def _autodiff_log_abs_det(fn, x):
    _, log_abs_det = tf.linalg.slogdet(jacobian(fn, x))
    return log_abs_det


def assert_log_det_matches_jacobian(bijector, x, atol=1e-8, rtol=0., **kwargs):
    """Checks `forward_log_det_jacobian(x) == log|det J_forward(x)|` from autodiff.

    Also checks that the log-det has shape `x.shape[:-1]`.

    Args:
        bijector: a `tfb.Bijector` with `forward_min_event_ndims=1`.
        x: float `Tensor` `[..., D]`.
        atol, rtol: tolerances of `np.testing.assert_allclose`.
        **kwargs: passed to the bijector's methods (e.g. a conditioning context).

    Returns:
        `(fldj, autodiff)`, numpy arrays `[...]`.
    """
    x = tf.convert_to_tensor(x)
    fldj = bijector.forward_log_det_jacobian(fresh(x), event_ndims=1, **kwargs)
    if tuple(fldj.shape) != tuple(x.shape[:-1]):
        raise AssertionError("log-det shape: got {}, expected {}.".format(
            fldj.shape, x.shape[:-1]))
    expected = _autodiff_log_abs_det(lambda t: bijector.forward(t, **kwargs), x)
    np.testing.assert_allclose(
        fldj.numpy(), expected.numpy(), atol=atol, rtol=rtol,
        err_msg="forward log-det vs autodiff log|det J|")
    return fldj.numpy(), expected.numpy()


def assert_inverse_log_det_matches_jacobian(bijector, y, atol=1e-8, rtol=0., **kwargs):
    """Checks `inverse_log_det_jacobian(y) == log|det J_inverse(y)|` from autodiff.

    Args:
        bijector: a `tfb.Bijector` with an inverse and `forward_min_event_ndims=1`.
        y: float `Tensor` `[..., D]` in the range of the bijector.
        atol, rtol: tolerances of `np.testing.assert_allclose`.
        **kwargs: passed to the bijector's methods.

    Returns:
        `(ildj, autodiff)`, numpy arrays `[...]`.
    """
    y = tf.convert_to_tensor(y)
    ildj = bijector.inverse_log_det_jacobian(fresh(y), event_ndims=1, **kwargs)
    expected = _autodiff_log_abs_det(lambda t: bijector.inverse(t, **kwargs), y)
    np.testing.assert_allclose(
        ildj.numpy(), expected.numpy(), atol=atol, rtol=rtol,
        err_msg="inverse log-det vs autodiff log|det J|")
    return ildj.numpy(), expected.numpy()


def assert_round_trip(bijector, x, atol=1e-8, rtol=0., **kwargs):
    """Checks `inverse(forward(x)) == x` with the cache defeated.

    Args:
        bijector: a `tfb.Bijector` with an inverse.
        x: float `Tensor` `[..., D]`.
        atol, rtol: tolerances of `np.testing.assert_allclose`.
        **kwargs: passed to the bijector's methods.

    Returns:
        `(y, x_back)`, numpy arrays `[..., D]`.
    """
    x = tf.convert_to_tensor(x)
    y = bijector.forward(fresh(x), **kwargs)
    x_back = bijector.inverse(fresh(y), **kwargs)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=atol, rtol=rtol,
                               err_msg="round trip x -> y -> x")
    return y.numpy(), x_back.numpy()


def assert_inverse_log_det(bijector, x, atol=1e-8, rtol=0., **kwargs):
    """Checks `inverse_log_det_jacobian(y) == -forward_log_det_jacobian(x)` at `y = forward(x)`.

    `y` is a fresh tensor, so the inverse log-det is computed from `y` (through `_inverse`
    where the bijector has no `_inverse_log_det_jacobian`), not read from the cache.

    Args:
        bijector: a `tfb.Bijector` with an inverse.
        x: float `Tensor` `[..., D]`.
        atol, rtol: tolerances of `np.testing.assert_allclose`.
        **kwargs: passed to the bijector's methods.

    Returns:
        `(fldj, ildj)`, numpy arrays `[...]`.
    """
    x = tf.convert_to_tensor(x)
    y = bijector.forward(fresh(x), **kwargs)
    fldj = bijector.forward_log_det_jacobian(fresh(x), event_ndims=1, **kwargs)
    ildj = bijector.inverse_log_det_jacobian(fresh(y), event_ndims=1, **kwargs)
    np.testing.assert_allclose(ildj.numpy(), -fldj.numpy(), atol=atol, rtol=rtol,
                               err_msg="inverse log-det vs -forward log-det")
    return fldj.numpy(), ildj.numpy()


def assert_triangular_jacobian(fn, x, order, atol=0.):
    """Checks that `fn`'s Jacobian is lower triangular in the ordering `order`.

    Output `order[k]` may depend only on inputs `order[0..k]`, i.e. after permuting rows and
    columns by `order` the Jacobian has no entry above the diagonal. The diagonal must be
    nonzero (otherwise the check would pass for a constant map).

    Args:
        fn: Python callable `[..., D] -> [..., D]`, row-wise.
        x: float `Tensor` `[..., D]`.
        order: sequence of the `D` input indices in autoregressive order, e.g. `range(D)` for
            left-to-right and `reversed(range(D))` for right-to-left.
        atol: largest magnitude allowed above the diagonal (masked nets give exact zeros).

    Returns:
        The permuted Jacobian, a numpy array `[..., D, D]`.
    """
    order = np.asarray(list(order))
    jac = jacobian(fn, x).numpy()
    permuted = jac[..., order, :][..., :, order]
    upper = np.triu(np.ones(permuted.shape[-2:], dtype=bool), k=1)
    worst = np.max(np.abs(permuted[..., upper])) if upper.any() else 0.
    if worst > atol:
        raise AssertionError("Jacobian is not lower triangular in order {}: largest entry above "
                             "the diagonal is {:g}.".format(order.tolist(), worst))
    diagonal = np.diagonal(permuted, axis1=-2, axis2=-1)
    if not np.all(np.abs(diagonal) > 0.):
        raise AssertionError("Jacobian has a zero on its diagonal.")
    # The lower part should not be empty either: an elementwise map is trivially triangular.
    lower = np.tril(np.ones(permuted.shape[-2:], dtype=bool), k=-1)
    if lower.any() and not np.any(np.abs(permuted[..., lower]) > 0.):
        raise AssertionError("Jacobian is diagonal: the map ignores the autoregressive inputs.")
    return permuted


def image_jacobian(fn, x, event_ndims=3, use_pfor=None):
    """Returns the per-example Jacobians of `fn` on flattened events, `[..., D, D]`.

    `x` is `[..., *E]` with `len(E) = event_ndims` and `D = prod(E)`; `fn(x)` is `[..., *E']`
    with `prod(E') = D` (the event shape may change, e.g. a squeeze). Element `[..., i, j]` is
    `d fn(x)_flat[i] / d x_flat[j]` in row-major order; each example's output must depend only on
    the same example's input.

    Args:
        fn: Python callable, `[..., *E] -> [..., *E']`.
        x: float `Tensor` `[..., *E]`, e.g. `[B, H, W, C]`.
        event_ndims: Python `int`, the number of event dims of `x` and of `fn(x)`.
        use_pfor: as in `jacobian`.

    Returns:
        `Tensor` `[..., D, D]`.
    """
    x = tf.convert_to_tensor(x)
    batch_shape = x.shape[:x.shape.rank - event_ndims]
    event_shape = x.shape[x.shape.rank - event_ndims:]
    d = event_shape.num_elements()
    flat = tf.reshape(x, [-1, d])
    if use_pfor is None:
        use_pfor = d > 32
    with tf.GradientTape(persistent=not use_pfor) as tape:
        tape.watch(flat)
        y = fn(tf.reshape(flat, x.shape))
        if y.shape[:y.shape.rank - event_ndims] != batch_shape:
            raise AssertionError("image_jacobian: fn(x) has batch shape {} but x has {}.".format(
                y.shape[:y.shape.rank - event_ndims], batch_shape))
        y_flat = tf.reshape(y, [-1, y.shape[y.shape.rank - event_ndims:].num_elements()])
        if y_flat.shape[-1] != d:
            raise AssertionError("image_jacobian: fn(x) has {} elements per event, x has {}."
                                 .format(y_flat.shape[-1], d))
    jac = tape.batch_jacobian(y_flat, flat, experimental_use_pfor=use_pfor)
    return tf.reshape(jac, batch_shape.as_list() + [d, d])


def _image_autodiff_log_abs_det(fn, x, event_ndims):
    return tf.linalg.slogdet(image_jacobian(fn, x, event_ndims))[1]


def assert_image_log_det_matches_jacobian(bijector, x, event_ndims=3, atol=1e-8, rtol=0.,
                                          **kwargs):
    """Checks `forward_log_det_jacobian(x)` against autodiff on flattened image events.

    Also checks that the log-det has the batch shape of `x` (`x.shape[:-event_ndims]`).

    Args:
        bijector: a `tfb.Bijector` with `forward_min_event_ndims <= event_ndims`.
        x: float `Tensor` `[..., H, W, C]` (for `event_ndims=3`).
        event_ndims: Python `int`.
        atol, rtol: tolerances of `np.testing.assert_allclose`.
        **kwargs: passed to the bijector's methods.

    Returns:
        `(fldj, autodiff)`, numpy arrays `[...]`.
    """
    x = tf.convert_to_tensor(x)
    fldj = bijector.forward_log_det_jacobian(fresh(x), event_ndims=event_ndims, **kwargs)
    batch_shape = tuple(x.shape[:x.shape.rank - event_ndims])
    if tuple(fldj.shape) != batch_shape:
        raise AssertionError("log-det shape: got {}, expected {}.".format(fldj.shape,
                                                                          batch_shape))
    expected = _image_autodiff_log_abs_det(lambda t: bijector.forward(t, **kwargs), x,
                                           event_ndims)
    np.testing.assert_allclose(
        fldj.numpy(), expected.numpy(), atol=atol, rtol=rtol,
        err_msg="forward log-det vs autodiff log|det J| (flattened events)")
    return fldj.numpy(), expected.numpy()


def assert_image_inverse_log_det_matches_jacobian(bijector, y, event_ndims=3, atol=1e-8,
                                                  rtol=0., **kwargs):
    """Checks `inverse_log_det_jacobian(y)` against autodiff on flattened image events.

    Args:
        bijector: a `tfb.Bijector` with an inverse.
        y: float `Tensor`, `event_ndims` event dims, in the range of the bijector.
        event_ndims: Python `int`.
        atol, rtol: tolerances of `np.testing.assert_allclose`.
        **kwargs: passed to the bijector's methods.

    Returns:
        `(ildj, autodiff)`, numpy arrays `[...]`.
    """
    y = tf.convert_to_tensor(y)
    ildj = bijector.inverse_log_det_jacobian(fresh(y), event_ndims=event_ndims, **kwargs)
    expected = _image_autodiff_log_abs_det(lambda t: bijector.inverse(t, **kwargs), y,
                                           event_ndims)
    np.testing.assert_allclose(
        ildj.numpy(), expected.numpy(), atol=atol, rtol=rtol,
        err_msg="inverse log-det vs autodiff log|det J| (flattened events)")
    return ildj.numpy(), expected.numpy()


def assert_image_inverse_log_det(bijector, x, event_ndims=3, atol=1e-8, rtol=0., **kwargs):
    """`assert_inverse_log_det` for events of `event_ndims` dims (images: 3).

    Checks `inverse_log_det_jacobian(y) == -forward_log_det_jacobian(x)` at a fresh
    `y = forward(x)`.

    Returns:
        `(fldj, ildj)`, numpy arrays `[...]`.
    """
    x = tf.convert_to_tensor(x)
    y = bijector.forward(fresh(x), **kwargs)
    fldj = bijector.forward_log_det_jacobian(fresh(x), event_ndims=event_ndims, **kwargs)
    ildj = bijector.inverse_log_det_jacobian(fresh(y), event_ndims=event_ndims, **kwargs)
    np.testing.assert_allclose(ildj.numpy(), -fldj.numpy(), atol=atol, rtol=rtol,
                               err_msg="inverse log-det vs -forward log-det")
    return fldj.numpy(), ildj.numpy()


def randomize_weights(layer, seed=0, stddev=0.5):
    """Sets every weight of a built Keras layer to `N(0, stddev^2)` noise (in place).

    Use it so tests exercise non-trivial parameters rather than a near-identity initialization.

    Args:
        layer: a built `keras.layers.Layer`.
        seed: Python `int`, numpy seed.
        stddev: Python `float`.
    """
    rng = np.random.default_rng(seed)
    layer.set_weights([stddev * rng.standard_normal(w.shape) for w in layer.get_weights()])
