"""Inverse autoregressive flow bijector (Kingma et al., 2016)."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm.nn.made import made_degrees

tfb = tfp.bijectors

__all__ = ["IAF"]


class IAF(tfb.Bijector):
    """One step of inverse autoregressive flow, in the numerically stable gated form.

    ```none
    (m, s) = made_fn(z)
    sigma = sigmoid(s + forget_bias)
    y = sigma * z + (1 - sigma) * m
    log|det dy/dz| = sum_i log sigma_i
    ```

    `made_fn` must be autoregressive: `m_i` and `s_i` depend only on the `z_j` that precede
    `z_i` in its ordering (e.g. `tfdgm.nn.MADE` with `input_order='left-to-right'` or
    `'right-to-left'`). The Jacobian is then triangular in that ordering with diagonal `sigma`,
    hence the log-det. Reverse the ordering from one step to the next (Kingma et al., 2016).

    A positive `forget_bias` (1 to 2) starts the flow near `y = z` while `s` is small, the
    initialization recommended in the paper (section 4); `s` and `m` may come from a conditioner
    that also sees a context `h(x)` from the encoder.

    Forward (sampling, density of the sample) is one pass of `made_fn`. The inverse needs `D`
    sequential passes in the conditioner's order, so it needs that order (`input_order`, the
    MADE's: pass `made.input_order` or `made.degrees`): starting from `z = 0`, pass `i`
    (`i = 1..D`) solves only the coordinate `k` of degree `i`,

    ```none
    z_k <- (y_k - (1 - sigma_k(z)) m_k(z)) / sigma_k(z)
    ```

    whose inputs (the coordinates of degree `< i`) are already exact; it is exact after `D`
    passes (a `tf.while_loop`). The other coordinates keep their current values (exact or `0`):
    updating them too would be wasted work and, worse, their undetermined values can overflow,
    and `inf * 0` in the next masked matmul makes the whole row NaN. Use the inverse for tests
    and density evaluation of external points.

    Keyword arguments given to `forward`, `inverse` and the log-det methods are passed on to
    `made_fn`, e.g. `iaf.forward(z, context=h)` calls `made_fn(z, context=h)`.

    Shapes: `z` is `[..., D]` (e.g. `[B, D]` or `[S, B, D]`); `made_fn` returns `m`, `s` of the
    same shape (a conditioner with per-example context produces amortized parameters); the
    log-det is `[...]`.

    The bijector holds no weights: pass a Keras layer as `lambda z: made(z, context)`, built
    inside the owning layer's `call()`.

    #### References

    [1]: Diederik P. Kingma, Tim Salimans, Rafal Jozefowicz, Xi Chen, Ilya Sutskever and Max
         Welling. Improving Variational Inference with Inverse Autoregressive Flow. In _Neural
         Information Processing Systems_, 2016. https://arxiv.org/abs/1606.04934

    [2]: Mathieu Germain, Karol Gregor, Iain Murray and Hugo Larochelle. MADE: Masked
         Autoencoder for Distribution Estimation. In _International Conference on Machine
         Learning_, 2015. https://arxiv.org/abs/1502.03509
    """

    def __init__(self, made_fn, forget_bias=1., input_order=None, validate_args=False,
                 name="iaf"):
        """Creates one IAF step.

        Args:
            made_fn: Python `callable`, `made_fn(z, **kwargs) -> (m, s)` with `m`, `s` shaped
                like `z` `[..., D]`, autoregressive in some ordering.
            forget_bias: Python `float` added to `s` before the sigmoid.
            input_order: the ordering of `made_fn`, as `tfdgm.nn.MADE` takes it:
                `'left-to-right'`, `'right-to-left'`, or the degrees, a permutation of `1..D`
                (`made.degrees`). Needed by `inverse` only; `None` leaves the bijector
                forward-only (the inverse raises).
            validate_args: Python `bool`, unused.
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            if not callable(made_fn):
                raise TypeError("`made_fn` must be callable, got {!r}.".format(made_fn))
            self._made_fn = made_fn
            self._forget_bias = forget_bias
            self._input_order = (input_order if input_order is None or isinstance(input_order, str)
                                 else [int(d) for d in np.asarray(input_order).ravel()])
            super().__init__(
                forward_min_event_ndims=1,
                validate_args=validate_args,
                parameters=parameters,
                name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict()

    @property
    def made_fn(self):
        return self._made_fn

    @property
    def forget_bias(self):
        return self._forget_bias

    @property
    def input_order(self):
        return self._input_order

    def _gate_logits_and_shift(self, z, **kwargs):
        m, s = self._made_fn(z, **kwargs)
        return s + tf.cast(self._forget_bias, s.dtype), m

    def _forward(self, x, **kwargs):
        logits, m = self._gate_logits_and_shift(x, **kwargs)
        # 1 - sigmoid(l) = sigmoid(-l), without the cancellation.
        return tf.sigmoid(logits) * x + tf.sigmoid(-logits) * m

    def _forward_log_det_jacobian(self, x, **kwargs):
        logits, _ = self._gate_logits_and_shift(x, **kwargs)
        return tf.reduce_sum(tf.math.log_sigmoid(logits), axis=-1)

    def forward_and_log_det(self, x, **kwargs):
        """Returns `(y, log|det dy/dx|)` from a single `made_fn` pass.

        `forward` and `forward_log_det_jacobian` each call `made_fn`; a flow that needs both
        (a posterior computing `z_K` and `log q(z_K | x)`) can save one pass with this.

        Args:
            x: `Tensor` `[..., D]`.
            **kwargs: passed to `made_fn`.

        Returns:
            y: `Tensor` `[..., D]`.
            fldj: `Tensor` `[...]`.
        """
        with tf.name_scope(self.name):
            x = tf.convert_to_tensor(x, dtype_hint=tf.float32, name="x")
            logits, m = self._gate_logits_and_shift(x, **kwargs)
            y = tf.sigmoid(logits) * x + tf.sigmoid(-logits) * m
            return y, tf.reduce_sum(tf.math.log_sigmoid(logits), axis=-1)

    def _inverse(self, y, **kwargs):
        event_size = tf.compat.dimension_value(y.shape[-1])
        if self._input_order is None:
            raise ValueError("IAF.inverse needs the conditioner's order: create the bijector "
                             "with `input_order=made.input_order` (or `made.degrees`).")
        if event_size is None:
            raise ValueError("IAF.inverse needs a static event size; got y of shape {}."
                             .format(y.shape))
        degrees = made_degrees(event_size, [], self._input_order)[0]
        # Row i: the one-hot position of the coordinate of degree i + 1, solved at pass i.
        passes = tf.constant(np.eye(event_size, dtype=bool)[np.argsort(degrees)])

        def body(i, z):
            logits, m = self._gate_logits_and_shift(z, **kwargs)
            solved = (y - tf.sigmoid(-logits) * m) * (1. + tf.exp(-logits))
            return i + 1, tf.where(tf.gather(passes, i), solved, z)

        _, z = tf.while_loop(
            lambda i, z: True, body, (tf.constant(0), tf.zeros_like(y)),
            maximum_iterations=event_size)
        return z
