"""Learned Gaussian priors of multi-scale flows: Glow's split prior and top prior."""

import keras
from keras import ops

from tfdgm.precision import FullPrecision

__all__ = ["ConditionalGaussianPrior", "LearnedGaussianPrior"]


@keras.saving.register_keras_serializable(package="tfdgm")
class ConditionalGaussianPrior(FullPrecision, keras.layers.Layer):
    """Glow's split prior: `p(z_out | z_kept) = N(mean, diag(exp(log_std))^2)`.

    ```none
    (mean, log_std - initial_log_std) = conv3x3_zero(z_kept)
    ```

    At a split, the flow factors out `z_out` and keeps `z_kept` for the deeper levels; the
    factored-out half gets a Gaussian whose mean and log-std a zero-initialized 3x3 convolution
    of the kept half produces (Kingma & Dhariwal, 2018, `split2d` of the reference code), so the
    prior starts as `N(0, exp(initial_log_std)^2 I)`: `N(0, I)` as in the paper with 0, or
    std `e^-2` with -2, where TFP's `tfb.Glow` exit bijectors start.

    Shapes: `z_kept` is `[B, H, W, C_kept]`; returns `(mean, log_std)`, each
    `[B, H, W, channels]`.

    #### Example

    ```python
    prior = ConditionalGaussianPrior(channels=6)
    mean, log_std = prior(tf.zeros([8, 8, 8, 6]))      # 0 and 0 at initialization
    ```
    """

    def __init__(self, channels, initial_log_std=0.0, **kwargs):
        """Creates the split prior.

        Args:
            channels: Python `int`, the channels of the factored-out half.
            initial_log_std: Python `float`, the log-std at initialization (an offset of the
                convolution's log-std output).
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.initial_log_std = float(initial_log_std)
        self.conv = keras.layers.Conv2D(2 * self.channels, 3, padding="same",
                                        kernel_initializer="zeros", bias_initializer="zeros",
                                        dtype=self.network_policy, name="conv")

    def build(self, kept_shape):
        self.conv.build(tuple(kept_shape))

    def call(self, z_kept):
        out = self.full_precision(self.conv(z_kept))
        return out[..., :self.channels], out[..., self.channels:] + self.initial_log_std

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "initial_log_std": self.initial_log_std}


@keras.saving.register_keras_serializable(package="tfdgm")
class LearnedGaussianPrior(FullPrecision, keras.layers.Layer):
    """Glow's learned top prior: `N(mean, diag(exp(log_std))^2)`, per-channel parameters.

    Weights `mean` `[C]` and `log_std` `[C]`, zero-initialized (`N(0, I)`), shared by every
    position (the reference code's `learntop`: a zero-initialized convolution of a zero input,
    i.e. a learned per-channel bias).

    Shapes: called on `z [B, H, W, C]` (only its shape is used); returns `(mean, log_std)`,
    each `[C]`, broadcasting against `z`.

    #### Example

    ```python
    prior = LearnedGaussianPrior()
    mean, log_std = prior(tf.zeros([8, 4, 4, 48]))      # [48], [48]
    ```
    """

    def build(self, input_shape):
        channels = input_shape[-1]
        self.mean = self.add_weight(shape=(channels,), initializer="zeros", name="mean")
        self.log_std = self.add_weight(shape=(channels,), initializer="zeros", name="log_std")

    def call(self, z):
        return ops.convert_to_tensor(self.mean), ops.convert_to_tensor(self.log_std)
