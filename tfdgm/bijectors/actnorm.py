"""Activation normalization bijector (Kingma & Dhariwal, 2018)."""

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util

tfb = tfp.bijectors

__all__ = ["ActNorm", "actnorm_initial_parameters", "actnorm_parameters_from_sums"]


def _spatial_size(x):
    """`H * W` of `x [..., H, W, C]`, as a tensor of `x`'s dtype."""
    return tf.cast(tf.reduce_prod(tf.shape(x)[-3:-1]), x.dtype)


class ActNorm(tfb.Bijector):
    """Per-channel affine map of an image: activation normalization (Glow's actnorm).

    ```none
    y[..., h, w, c] = (x[..., h, w, c] + shift[c]) * exp(log_scale[c])
    log|det dy/dx| = H * W * sum_c log_scale[c]
    ```

    Direction: `forward` is the normalizing direction (data to latent), the direction in which
    the data-dependent initialization (`actnorm_initial_parameters`) makes the first batch's
    outputs zero-mean with unit variance per channel. The inverse is
    `x = y * exp(-log_scale) - shift`. Kingma & Dhariwal (2018, section 3.1) introduced actnorm
    as a batch-size independent replacement for batch normalization in flows.

    Shapes: `shift`, `log_scale` are `[C]`; `x` is `[..., H, W, C]` (e.g. `[B, H, W, C]`),
    `forward_min_event_ndims = 3`; the log-det is `[...]` (e.g. `[B]`).

    The bijector holds tensors only: a Keras layer that owns the parameters
    (`tfdgm.flows.ActNorm`) builds it afresh in `call()`. Instances compare by identity, not by
    parameter values as TFP bijectors do: TFP's cache is shared by equal bijectors, and a new
    bijector over the same Keras variables would otherwise return a result cached before an
    assignment to them (ActNorm's initialization) or outside the current `GradientTape`.

    #### Example

    ```python
    x = tf.random.normal([8, 4, 4, 3])
    shift, log_scale = actnorm_initial_parameters(x)
    actnorm = ActNorm(shift, log_scale)
    y = actnorm.forward(x)                                   # per channel: mean 0, variance 1
    fldj = actnorm.forward_log_det_jacobian(x, event_ndims=3)  # [8]
    ```

    #### References

    [1]: Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
         Convolutions. In _Neural Information Processing Systems_, 2018.
         https://arxiv.org/abs/1807.03039
    """

    def __init__(self, shift, log_scale, validate_args=False, name="actnorm"):
        """Creates an actnorm bijector.

        Args:
            shift: float `Tensor` `[C]`, added before scaling.
            log_scale: float `Tensor` `[C]`, the log of the per-channel scale.
            validate_args: Python `bool`, unused (every parameter value is valid).
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([shift, log_scale], dtype_hint=tf.float32)
            self._shift = tf.convert_to_tensor(shift, dtype=dtype, name="shift")
            self._log_scale = tf.convert_to_tensor(log_scale, dtype=dtype, name="log_scale")
            super().__init__(
                forward_min_event_ndims=3,
                validate_args=validate_args,
                dtype=dtype,
                parameters=parameters,
                name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict(
            shift=tfp.util.ParameterProperties(event_ndims=1),
            log_scale=tfp.util.ParameterProperties(event_ndims=1))

    def _get_parameterization(self):
        return id(self)  # identity equality: see the class docstring

    @property
    def shift(self):
        return self._shift

    @property
    def log_scale(self):
        return self._log_scale

    def _forward(self, x):
        return (x + self._shift) * tf.exp(self._log_scale)

    def _inverse(self, y):
        return y * tf.exp(-self._log_scale) - self._shift

    def _forward_log_det_jacobian(self, x):
        log_det = _spatial_size(x) * tf.reduce_sum(self._log_scale)
        return tf.fill(tf.shape(x)[:-3], log_det)

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(y)


def actnorm_parameters_from_sums(sum_x, sum_squares, count, epsilon=1e-6):
    """Returns actnorm's `(shift, log_scale)` from per-channel sums over a batch.

    ```none
    mean = sum_x / n,    var = sum_squares / n - mean^2
    shift = -mean,       log_scale = -log(sqrt(var) + epsilon)
    ```

    Sums rather than moments so that replicas can all-reduce them first: the parameters are
    then those of the global batch (see `tfdgm.flows.ActNorm`).

    Args:
        sum_x: float `Tensor` `[C]`, `sum x` over the batch and spatial positions.
        sum_squares: float `Tensor` `[C]`, `sum x^2` over the same elements.
        count: float `Tensor` `[]`, the number of elements `n` per channel (`B * H * W`).
        epsilon: Python `float` added to the standard deviation (a constant channel gets
            `log_scale = -log(epsilon)`, not infinity).

    Returns:
        shift, log_scale: `Tensor`s `[C]`.
    """
    mean = sum_x / count
    variance = tf.maximum(sum_squares / count - tf.square(mean), 0.)
    return -mean, -tf.math.log(tf.sqrt(variance) + epsilon)


def actnorm_initial_parameters(x, epsilon=1e-6):
    """Returns the data-dependent initial `(shift, log_scale)` of `ActNorm` for a batch `x`.

    With them, `ActNorm(shift, log_scale).forward(x)` has per-channel mean 0 and variance 1 (up
    to `epsilon`) over the batch and spatial positions (Kingma & Dhariwal, 2018, section 3.1).

    Args:
        x: float `Tensor` `[..., H, W, C]`, e.g. the first training batch `[B, H, W, C]`.
        epsilon: Python `float` added to the per-channel standard deviation.

    Returns:
        shift, log_scale: `Tensor`s `[C]` of `x`'s dtype.
    """
    x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
    axes = list(range(len(x.shape) - 1))
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
    return actnorm_parameters_from_sums(
        tf.reduce_sum(x, axis=axes), tf.reduce_sum(tf.square(x), axis=axes), count, epsilon)
