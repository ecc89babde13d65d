"""Radial flow bijector (Rezende & Mohamed, 2015)."""

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util

tfb = tfp.bijectors

__all__ = ["Radial"]


class Radial(tfb.Bijector):
    """Radial flow: contracts or expands space around a reference point `z0`.

    ```none
    y = z + beta h(alpha, r) (z - z0),    h(alpha, r) = 1 / (alpha + r),    r = ||z - z0||
    alpha = softplus(alpha_raw) > 0,      beta = -alpha + softplus(beta_raw) >= -alpha
    ```

    `beta >= -alpha` is the invertibility condition of Rezende & Mohamed (2015, appendix A.2).
    With `h'(r) = -1 / (alpha + r)^2` and `D` the event size,

    ```none
    log|det dy/dz| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r)
                   = (D - 1) [log(s + r) - log(alpha + r)]
                     + log(alpha s + 2 alpha r + r^2) - 2 log(alpha + r),    s = alpha + beta
    ```

    The second form (with `s = softplus(beta_raw) > 0`) is the one computed: every log takes a
    sum of positive terms.

    Inverse (closed form): `r_y = ||y - z0|| = r (s + r) / (alpha + r)` is strictly increasing in
    `r`; its positive root is `r = (-c + sqrt(c^2 + 4 alpha r_y)) / 2` with `c = s - r_y`
    (computed as `2 alpha r_y / (c + sqrt(c^2 + 4 alpha r_y))` when `c > 0`), and then
    `z = z0 + (y - z0) (alpha + r) / (s + r)`.

    Shapes: `z0` is `[..., D]` and `alpha_raw`, `beta_raw` are `[...]`, where `...` is empty
    (global) or a batch shape such as `[B]` (amortized). `z` is `[..., D]` broadcasting against
    the parameters (e.g. `[S, B, D]` with `[B, D]` parameters); the log-det is `[S, B]`.

    The gradient of `r` is undefined at `z = z0` exactly (a set of measure zero).

    #### References

    [1]: Danilo Jimenez Rezende and Shakir Mohamed. Variational Inference with Normalizing Flows.
         In _International Conference on Machine Learning_, 2015.
         https://arxiv.org/abs/1505.05770
    """

    def __init__(self, z0, alpha_raw, beta_raw, validate_args=False, name="radial"):
        """Creates a radial flow.

        Args:
            z0: float `Tensor` `[..., D]`, the reference point.
            alpha_raw: float `Tensor` `[...]`, unconstrained; `alpha = softplus(alpha_raw)`.
            beta_raw: float `Tensor` `[...]`, unconstrained;
                `beta = -alpha + softplus(beta_raw)`.
            validate_args: Python `bool`, unused (every parameter value is valid).
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([z0, alpha_raw, beta_raw], dtype_hint=tf.float32)
            self._z0 = tf.convert_to_tensor(z0, dtype=dtype, name="z0")
            self._alpha_raw = tf.convert_to_tensor(alpha_raw, dtype=dtype, name="alpha_raw")
            self._beta_raw = tf.convert_to_tensor(beta_raw, dtype=dtype, name="beta_raw")
            super().__init__(
                forward_min_event_ndims=1,
                validate_args=validate_args,
                dtype=dtype,
                parameters=parameters,
                name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict(
            z0=tfp.util.ParameterProperties(event_ndims=1),
            alpha_raw=tfp.util.ParameterProperties(event_ndims=0),
            beta_raw=tfp.util.ParameterProperties(event_ndims=0))

    @property
    def z0(self):
        return self._z0

    @property
    def alpha(self):
        """`alpha = softplus(alpha_raw) > 0`, `[...]`."""
        return tf.math.softplus(self._alpha_raw)

    @property
    def beta(self):
        """`beta = -alpha + softplus(beta_raw) >= -alpha`, `[...]`."""
        return tf.math.softplus(self._beta_raw) - self.alpha

    def _forward(self, x):
        diff = x - self._z0
        r = tf.norm(diff, axis=-1)
        h = 1. / (self.alpha + r)
        return x + (self.beta * h)[..., tf.newaxis] * diff

    def _forward_log_det_jacobian(self, x):
        r = tf.norm(x - self._z0, axis=-1)
        alpha = self.alpha
        s = tf.math.softplus(self._beta_raw)
        d = tf.cast(tf.shape(x)[-1], x.dtype)
        log_alpha_r = tf.math.log(alpha + r)
        return ((d - 1.) * (tf.math.log(s + r) - log_alpha_r)
                + tf.math.log(alpha * s + 2. * alpha * r + tf.square(r)) - 2. * log_alpha_r)

    def _inverse(self, y):
        diff = y - self._z0
        r_y = tf.norm(diff, axis=-1)
        alpha = self.alpha
        s = tf.math.softplus(self._beta_raw)
        c = s - r_y
        root = tf.sqrt(tf.square(c) + 4. * alpha * r_y)
        positive = c > 0.
        denominator = tf.where(positive, c + root, tf.ones_like(root))
        r = tf.where(positive, 2. * alpha * r_y / denominator, 0.5 * (root - c))
        return self._z0 + ((alpha + r) / (s + r))[..., tf.newaxis] * diff
