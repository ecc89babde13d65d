"""Affine coupling as a Keras layer with a small convolutional conditioner."""

import keras

from tfdgm import bijectors
from tfdgm.bijectors.affine_coupling import MASKS, SCALES, channel_split
from tfdgm.flows.base import FlowLayer

__all__ = ["AffineCoupling", "CouplingConvNet"]


@keras.saving.register_keras_serializable(package="tfdgm")
class CouplingConvNet(keras.layers.Layer):
    """The conditioner CNN of a coupling layer: 3x3 conv, ReLU, 1x1 conv, ReLU, 3x3 conv.

    ```none
    a = relu(conv3x3(x_a)),  b = relu(conv1x1(a)),  out = conv3x3_zero(b)
    ```

    As in Glow (Kingma & Dhariwal, 2018, section 3.3), the last convolution is
    zero-initialized (kernel and bias), so `out = 0` at initialization and the coupling starts
    as the identity (additive, tanh) or a fixed scaling by `sigmoid(2)` (Glow's sigmoid); its
    gradient is nonzero from the first step, and the hidden layers' follow once it moves.

    Shapes: `x_a` is `[B, H, W, C_a]`; returns `[B, H, W, output_channels]`.

    #### Example

    ```python
    net = CouplingConvNet(output_channels=6, hidden_channels=512)
    out = net(tf.zeros([8, 16, 16, 6]))                    # [8, 16, 16, 6], all zero at init
    ```
    """

    def __init__(self, output_channels, hidden_channels=512, **kwargs):
        """Creates the conditioner.

        Args:
            output_channels: Python `int`, the channels of the output.
            hidden_channels: Python `int`, the width of both hidden layers (Glow: 512).
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(**kwargs)
        self.output_channels = int(output_channels)
        self.hidden_channels = int(hidden_channels)
        self.conv_in = keras.layers.Conv2D(self.hidden_channels, 3, padding="same",
                                           activation="relu", dtype=self.dtype_policy,
                                           name="conv_in")
        self.conv_hidden = keras.layers.Conv2D(self.hidden_channels, 1, activation="relu",
                                               dtype=self.dtype_policy, name="conv_hidden")
        self.conv_out = keras.layers.Conv2D(self.output_channels, 3, padding="same",
                                            kernel_initializer="zeros", bias_initializer="zeros",
                                            dtype=self.dtype_policy, name="conv_out")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in (self.conv_in, self.conv_hidden, self.conv_out):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def call(self, x_a):
        return self.conv_out(self.conv_hidden(self.conv_in(x_a)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_channels)

    def get_config(self):
        return {**super().get_config(), "output_channels": self.output_channels,
                "hidden_channels": self.hidden_channels}


@keras.saving.register_keras_serializable(package="tfdgm")
class AffineCoupling(FlowLayer):
    """Affine coupling layer (RealNVP, Glow) owning a `CouplingConvNet` conditioner.

    ```none
    (t, h) = net(x_a)
    y_a = x_a,  y_b = x_b * exp(l(h)) + t,    log|det dy/dx| = sum l(h) over x_b
    ```

    See `tfdgm.bijectors.AffineCoupling` for the masks (`'checkerboard'`: `x_a = b * x`, all
    `C` channels in and `t`, `h` for all `C` out; `'channel'`: the first `ceil(C / 2)` channels
    condition the rest, swapped by `reverse_mask`) and the scales (`'sigmoid'`: Glow's
    `sigmoid(h + 2)`; `'tanh'`: RealNVP's `log_scale_factor * tanh(h)` with a trainable
    per-channel `log_scale_factor` `[C_b]` initialized to 1; `'additive'`: NICE, no scale).

    The conditioner's last layer is zero-initialized, so at initialization `t = h = 0`: the
    layer is the identity (additive, tanh) or scales `x_b` by `sigmoid(2) = 0.88` (sigmoid).

    Shapes: `x` is `[B, H, W, C]`, static `H, W, C`; returns `(y [B, H, W, C], log_det [B])`.

    #### Example

    ```python
    coupling = AffineCoupling(mask="channel", scale="sigmoid", hidden_channels=512)
    y, log_det = coupling(tf.random.normal([8, 16, 16, 6]))
    x_back = coupling.inverse(y)
    ```

    #### References

    [1]: Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
         In _International Conference on Learning Representations_, 2017.
         https://arxiv.org/abs/1605.08803

    [2]: Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
         Convolutions. In _Neural Information Processing Systems_, 2018.
         https://arxiv.org/abs/1807.03039
    """

    def __init__(self, mask="channel", reverse_mask=False, scale="sigmoid", hidden_channels=512,
                 **kwargs):
        """Creates a coupling layer.

        Args:
            mask: `'checkerboard'` or `'channel'`.
            reverse_mask: Python `bool`, swaps the conditioning and transformed parts.
            scale: `'sigmoid'` (Glow), `'tanh'` (RealNVP) or `'additive'` (NICE).
            hidden_channels: Python `int`, the conditioner's width.
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(**kwargs)
        if mask not in MASKS:
            raise ValueError("`mask` must be one of {}, got {!r}.".format(MASKS, mask))
        if scale not in SCALES:
            raise ValueError("`scale` must be one of {}, got {!r}.".format(SCALES, scale))
        self.mask = mask
        self.reverse_mask = bool(reverse_mask)
        self.scale = scale
        self.hidden_channels = int(hidden_channels)

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.mask == "checkerboard":
            in_channels = out_channels = channels
        else:
            cond, moved = channel_split(channels, self.reverse_mask)
            in_channels, out_channels = cond.stop - cond.start, moved.stop - moved.start
        self.transformed_channels = out_channels
        self.conditioner = CouplingConvNet(
            out_channels if self.scale == "additive" else 2 * out_channels,
            self.hidden_channels, dtype=self.network_policy, name="conditioner")
        self.conditioner.build((*input_shape[:-1], in_channels))
        if self.scale == "tanh":
            self.log_scale_factor = self.add_weight(shape=(out_channels,), initializer="ones",
                                                    name="log_scale_factor")

    def _shift_and_raw_scale(self, x_a):
        out = self.full_precision(self.conditioner(x_a))  # the bijector's math in float32
        if self.scale == "additive":
            return out
        c = self.transformed_channels
        return out[..., :c], out[..., c:]

    def bijector(self):
        return bijectors.AffineCoupling(
            lambda x_a, **kwargs: self._shift_and_raw_scale(x_a), mask=self.mask,
            reverse_mask=self.reverse_mask, scale=self.scale,
            log_scale_factor=self.log_scale_factor if self.scale == "tanh" else 1.)

    def call(self, x, training=None):
        return self.bijector().forward_and_log_det(x)

    def get_config(self):
        return {**super().get_config(), "mask": self.mask, "reverse_mask": self.reverse_mask,
                "scale": self.scale, "hidden_channels": self.hidden_channels}
