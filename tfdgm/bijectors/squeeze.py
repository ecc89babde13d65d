"""Squeeze bijector: 2x2 space-to-depth (Dinh et al., 2017)."""

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["Squeeze"]


class Squeeze(tfb.Bijector):
    """Squeeze: trades spatial resolution for channels, `[H, W, C] -> [H/2, W/2, 4C]`.

    ```none
    y[..., i, j, (2 dh + dw) C + c] = x[..., 2 i + dh, 2 j + dw, c],   dh, dw in {0, 1}
    log|det dy/dx| = 0
    ```

    The map is a permutation of the elements (each 2x2 block of a channel becomes four channels
    at one position), so the log-det is 0; the channel order is that of `tf.nn.space_to_depth`,
    whose inverse is `tf.nn.depth_to_space` (both TFLite builtins). RealNVP's multi-scale
    architecture squeezes between scales (Dinh et al., 2017, section 3.6), as does Glow.

    Shapes: `x` is `[..., H, W, C]` with static, even `H` and `W` (an odd one raises a
    `ValueError`); `y` is `[..., H/2, W/2, 4C]`. `forward_min_event_ndims = 3`: the event shape
    changes, and the log-det is `[...]`.

    #### Example

    ```python
    squeeze = Squeeze()
    x = tf.random.normal([8, 4, 4, 3])
    y = squeeze.forward(x)                          # [8, 2, 2, 12]
    squeeze.inverse(y)                              # x, exactly
    squeeze.forward_event_shape([4, 4, 3])          # [2, 2, 12]
    ```

    #### References

    [1]: Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
         In _International Conference on Learning Representations_, 2017.
         https://arxiv.org/abs/1605.08803
    """

    _FACTOR = 2

    def __init__(self, validate_args=False, name="squeeze"):
        """Creates a 2x2 squeeze.

        Args:
            validate_args: Python `bool`, unused (shapes are checked statically).
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            super().__init__(
                forward_min_event_ndims=3,
                validate_args=validate_args,
                parameters=parameters,
                name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict()

    def _squeezed_shape(self, height, width, channels):
        f = self._FACTOR
        if height is not None and height % f or width is not None and width % f:
            raise ValueError("Squeeze needs even H and W; got H={}, W={}.".format(height, width))
        return (None if height is None else height // f, None if width is None else width // f,
                None if channels is None else channels * f * f)

    def _unsqueezed_shape(self, height, width, channels):
        f = self._FACTOR
        if channels is not None and channels % (f * f):
            raise ValueError("The inverse of Squeeze needs C divisible by 4; got C={}."
                             .format(channels))
        return (None if height is None else height * f, None if width is None else width * f,
                None if channels is None else channels // (f * f))

    def _apply(self, x, op, out_event):
        """Runs a rank-4 `op` on `x [..., H, W, C]` with any number of leading dims."""
        if x.shape.rank == 4:
            return op(x, self._FACTOR)
        batch_shape = tf.shape(x)[:-3]
        flat = tf.reshape(x, tf.concat([[-1], tf.shape(x)[-3:]], axis=0))
        return tf.reshape(op(flat, self._FACTOR), tf.concat([batch_shape, out_event], axis=0))

    def _static_event(self, x):
        if x.shape.rank is None or x.shape.rank < 3 or None in x.shape[-3:]:
            raise ValueError("Squeeze needs a static event shape [H, W, C]; got {}."
                             .format(x.shape))
        return x.shape[-3:]

    def _forward(self, x):
        out = self._squeezed_shape(*self._static_event(x))
        return self._apply(x, tf.nn.space_to_depth, out)

    def _inverse(self, y):
        out = self._unsqueezed_shape(*self._static_event(y))
        return self._apply(y, tf.nn.depth_to_space, out)

    def _forward_log_det_jacobian(self, x):
        return tf.zeros(tf.shape(x)[:-3], x.dtype)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros(tf.shape(y)[:-3], y.dtype)

    def _forward_event_shape(self, input_shape):
        return tf.TensorShape(self._squeezed_shape(*input_shape[-3:].as_list()))

    def _inverse_event_shape(self, output_shape):
        return tf.TensorShape(self._unsqueezed_shape(*output_shape[-3:].as_list()))

    def _forward_event_shape_tensor(self, input_shape):
        f = self._FACTOR
        return tf.stack([input_shape[-3] // f, input_shape[-2] // f, input_shape[-1] * f * f])

    def _inverse_event_shape_tensor(self, output_shape):
        f = self._FACTOR
        return tf.stack([output_shape[-3] * f, output_shape[-2] * f,
                         output_shape[-1] // (f * f)])
