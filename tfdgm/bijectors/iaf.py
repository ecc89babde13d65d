"""Inverse autoregressive flow bijector (Kingma et al., 2016)."""

import tensorflow as tf
import tensorflow_probability as tfp

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
    sequential passes: starting from `z = 0`, `z <- (y - (1 - sigma(z)) m(z)) / sigma(z)` fixes
    one more coordinate of `z` per pass, in the autoregressive order; it is exact after `D`
    passes (a `tf.while_loop`). Use it for tests and density evaluation of external points.

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

    def __init__(self, made_fn, forget_bias=1., validate_args=False, name="iaf"):
        """Creates one IAF step.

        Args:
            made_fn: Python `callable`, `made_fn(z, **kwargs) -> (m, s)` with `m`, `s` shaped
                like `z` `[..., D]`, autoregressive in some ordering.
            forget_bias: Python `float` added to `s` before the sigmoid.
            validate_args: Python `bool`, unused.
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            if not callable(made_fn):
                raise TypeError("`made_fn` must be callable, got {!r}.".format(made_fn))
            self._made_fn = made_fn
            self._forget_bias = forget_bias
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
        def body(z):
            logits, m = self._gate_logits_and_shift(z, **kwargs)
            return ((y - tf.sigmoid(-logits) * m) * (1. + tf.exp(-logits)),)

        event_size = tf.compat.dimension_value(y.shape[-1])
        if event_size is None:
            event_size = tf.shape(y)[-1]
        (z,) = tf.while_loop(
            lambda z: True, body, (tf.zeros_like(y),), maximum_iterations=event_size)
        return z
