"""The contract of invertible Keras layers on images, and the Squeeze layer."""

import keras
import numpy as np
import tensorflow as tf

from tfdgm import bijectors
from tfdgm.precision import FullPrecision

__all__ = ["FlowLayer", "Squeeze", "gaussian_log_prob"]

_HALF_LOG_TWO_PI = 0.5 * np.log(2. * np.pi)


def gaussian_log_prob(eps, log_std):
    """`sum log N(z; mean, exp(log_std)^2)` over `[H, W, C]`, given `eps = (z - mean) / std`.

    ```none
    log N(z; m, s^2) = -eps^2 / 2 - log s - log(2 pi) / 2,    eps = (z - m) / s
    ```

    Args:
        eps: float `Tensor` `[B, H, W, C]`, the standardized latent.
        log_std: float `Tensor` broadcastable to `eps` (`[B, H, W, C]`, `[C]` or a scalar).

    Returns:
        `Tensor` `[B]`.
    """
    log_std = tf.broadcast_to(log_std, tf.shape(eps))
    return tf.reduce_sum(-0.5 * tf.square(eps) - log_std - _HALF_LOG_TWO_PI, axis=[1, 2, 3])


class FlowLayer(FullPrecision, keras.layers.Layer):
    """An invertible Keras layer on images that owns its weights and builds its bijector.

    A density layer (`tfdgm.precision.FullPrecision`): under a mixed-precision policy the data
    path, the parameters and the log-dets are float32 and only the conditioner networks it
    owns (built with `dtype=self.network_policy`) compute in the low precision, so `inverse`
    and the log-det are those of exactly the map `call` applies.

    The contract every `tfdgm.flows` layer follows:

    * `layer(x, training=None) -> (y, log_det)`: the normalizing direction (data to latent),
      `x` and `y` `[B, H, W, C]` (`[B, H/2, W/2, 4C]` for `Squeeze`), `log_det = log|det dy/dx|`
      `[B]`. `training=True` is needed only where a layer changes state (ActNorm's
      data-dependent initialization on the first training batch).
    * `layer.inverse(y) -> x`: the generative direction, no state change. It builds the layer
      (from `y`'s shape) if it was never called.
    * `layer.bijector() -> tfb.Bijector`: the TFP bijector of the current weights, created afresh
      on each call (never store it), `forward` = this layer's call direction, with
      `forward_min_event_ndims = 3`.

    * `layer.freeze_inverse()` / `layer.unfreeze_inverse()`: make `inverse` use only ops with
      TFLite builtins, from constants computed now (a no-op for layers whose inverse already
      does: all but the 1x1 convolution).

    Subclasses implement `bijector()` (and `build`); `call` and `inverse` default to the
    bijector's `forward` + `forward_log_det_jacobian` and `inverse`.
    """

    def freeze_inverse(self):
        """Makes `inverse` export to TFLite builtins (see `InvertibleConv1x1`)."""

    def unfreeze_inverse(self):
        """Undoes `freeze_inverse`."""

    def bijector(self):
        """Returns the `tfb.Bijector` of the current weights (normalizing direction)."""
        raise NotImplementedError

    def call(self, x, training=None):
        bijector = self.bijector()
        return bijector.forward(x), bijector.forward_log_det_jacobian(x, event_ndims=3)

    def inverse(self, y):
        """Returns `x` with `layer(x)[0] == y`: `[B, H, W, C]`."""
        y = tf.cast(y, self.compute_dtype)
        self._build_from_output(y.shape)
        return self.bijector().inverse(y)

    def _build_from_output(self, output_shape):
        if not self.built:
            self.build(tuple(output_shape))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="tfdgm")
class Squeeze(FlowLayer):
    """Space-to-depth 2x2, `[B, H, W, C] -> [B, H/2, W/2, 4C]`, log-det 0 (no weights).

    The layer form of `tfdgm.bijectors.Squeeze` (Dinh et al., 2017, section 3.6), so that
    multi-scale flows are lists of `FlowLayer`s.

    #### Example

    ```python
    y, log_det = Squeeze()(tf.zeros([8, 4, 4, 3]))        # [8, 2, 2, 12], [8] of zeros
    ```
    """

    def build(self, input_shape):
        self.compute_output_shape(input_shape)  # checks H and W

    def bijector(self):
        return bijectors.Squeeze()

    def _build_from_output(self, output_shape):
        if not self.built:
            self.built = True

    def compute_output_shape(self, input_shape):
        *batch, height, width, channels = input_shape
        if height is not None and height % 2 or width is not None and width % 2:
            raise ValueError("Squeeze needs even H and W; got input shape {}."
                             .format(tuple(input_shape)))
        return (*batch, None if height is None else height // 2,
                None if width is None else width // 2, None if channels is None else 4 * channels)
