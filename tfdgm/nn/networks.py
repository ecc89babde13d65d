"""Encoders `x [B, H, W, C] -> h [B, F]` and decoders `z [..., D] -> params [..., H, W, C * P]`.

Registered by name for configs (`model.encoder: {name: gated_mlp, hidden_units: [300, 300]}`).
Decoders accept any number of leading sample axes, so `z` of shape `[S, B, D]` decodes in one call.
"""


import keras
from keras import ops

from tfdgm.errors import ConfigError
from tfdgm.nn.gated import GatedConv2D, GatedDense
from tfdgm.registry import DECODERS, ENCODERS


def _dense_stack(hidden_units, activation, gated, prefix):
    if gated:
        return [GatedDense(u, name=f"{prefix}_{i}") for i, u in enumerate(hidden_units)]
    return [keras.layers.Dense(u, activation=activation, name=f"{prefix}_{i}")
            for i, u in enumerate(hidden_units)]


@ENCODERS.register("mlp")
@keras.saving.register_keras_serializable("tfdgm")
class MLPEncoder(keras.layers.Layer):
    """Flattens the image and applies dense layers: `[B, H, W, C] -> [B, hidden_units[-1]]`."""

    gated = False

    def __init__(self, hidden_units=(300, 300), activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units, self.activation = list(hidden_units), activation
        if not self.hidden_units:
            raise ConfigError("an MLP encoder needs at least one hidden layer (hidden_units).")
        self.hidden = _dense_stack(self.hidden_units, activation, self.gated, "hidden")

    @property
    def output_dim(self):
        return self.hidden_units[-1]

    def call(self, x):
        h = ops.reshape(x, (ops.shape(x)[0], -1))
        for layer in self.hidden:
            h = layer(h)
        return h

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units,
                "activation": self.activation}


@ENCODERS.register("gated_mlp")
@keras.saving.register_keras_serializable("tfdgm")
class GatedMLPEncoder(MLPEncoder):
    """MLP of gated dense layers (the VampPrior paper's encoder)."""

    gated = True


@DECODERS.register("mlp")
@keras.saving.register_keras_serializable("tfdgm")
class MLPDecoder(keras.layers.Layer):
    """Dense layers then a linear map to the likelihood parameters: `[..., D] -> [..., H, W, C P]`."""

    gated = False

    def __init__(self, event_shape, params_per_pixel, hidden_units=(300, 300),
                 activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.event_shape, self.params_per_pixel = tuple(event_shape), params_per_pixel
        self.hidden_units, self.activation = list(hidden_units), activation
        self.hidden = _dense_stack(self.hidden_units, activation, self.gated, "hidden")
        height, width, channels = self.event_shape
        self.out = keras.layers.Dense(height * width * channels * params_per_pixel, name="params")

    def call(self, z):
        h = z
        for layer in self.hidden:
            h = layer(h)
        params = self.out(h)
        height, width, channels = self.event_shape
        leading = ops.shape(z)[:-1]
        return ops.reshape(params, (*leading, height, width, channels * self.params_per_pixel))

    def get_config(self):
        return {**super().get_config(), "event_shape": self.event_shape,
                "params_per_pixel": self.params_per_pixel, "hidden_units": self.hidden_units,
                "activation": self.activation}


@DECODERS.register("gated_mlp")
@keras.saving.register_keras_serializable("tfdgm")
class GatedMLPDecoder(MLPDecoder):
    """MLP of gated dense layers (the VampPrior paper's decoder)."""

    gated = True


def _check_divisible(event_shape, where):
    height, width, _ = event_shape
    if height % 4 or width % 4:
        raise ConfigError(f"{where}: the gated convolutional networks downsample by 4; image "
                          f"height and width must be multiples of 4, got {event_shape[:2]}.")


@ENCODERS.register("gated_conv")
@keras.saving.register_keras_serializable("tfdgm")
class GatedConvEncoder(keras.layers.Layer):
    """The Sylvester-flow paper's encoder (van den Berg et al. 2018, appendix).

    Five 5x5 gated convolutions (32, 32, 64, 64, 64 filters; strides 1, 2, 1, 2, 1) then a gated
    convolution with a kernel the size of the remaining `H/4 x W/4` map and `output_dim` filters:
    `[B, H, W, C] -> [B, output_dim]` (256 in the paper).
    """

    def __init__(self, event_shape, output_dim=256, **kwargs):
        super().__init__(**kwargs)
        self.event_shape, self._output_dim = tuple(event_shape), output_dim
        _check_divisible(self.event_shape, "model.encoder")
        height, width, _ = self.event_shape
        spec = [(32, 1), (32, 2), (64, 1), (64, 2), (64, 1)]
        self.convs = [GatedConv2D(f, 5, strides=s, name=f"conv_{i}") for i, (f, s) in enumerate(spec)]
        self.last = GatedConv2D(output_dim, (height // 4, width // 4), padding="valid", name="conv_out")

    @property
    def output_dim(self):
        return self._output_dim

    def call(self, x):
        h = x
        for conv in self.convs:
            h = conv(h)
        h = self.last(h)
        return ops.reshape(h, (ops.shape(x)[0], self._output_dim))

    def get_config(self):
        return {**super().get_config(), "event_shape": self.event_shape,
                "output_dim": self._output_dim}


@DECODERS.register("gated_conv")
@keras.saving.register_keras_serializable("tfdgm")
class GatedConvDecoder(keras.layers.Layer):
    """The Sylvester-flow paper's decoder: the encoder mirrored with transposed gated convolutions.

    `z [..., D]` is mapped by a gated transposed convolution with an `H/4 x W/4` kernel to a 64-channel
    map, then 5x5 gated transposed convolutions (64, 32, 32, 32, 32 filters; strides 1, 2, 1, 2, 1)
    and a 1x1 convolution to the likelihood parameters `[..., H, W, C P]`.
    """

    def __init__(self, event_shape, params_per_pixel, **kwargs):
        super().__init__(**kwargs)
        self.event_shape, self.params_per_pixel = tuple(event_shape), params_per_pixel
        _check_divisible(self.event_shape, "model.decoder")
        height, width, channels = self.event_shape
        self.first = GatedConv2D(64, (height // 4, width // 4), padding="valid", transpose=True,
                                 name="deconv_in")
        spec = [(64, 1), (32, 2), (32, 1), (32, 2), (32, 1)]
        self.deconvs = [GatedConv2D(f, 5, strides=s, transpose=True, name=f"deconv_{i}")
                        for i, (f, s) in enumerate(spec)]
        self.out = keras.layers.Conv2D(channels * params_per_pixel, 1, name="params")

    def call(self, z):
        leading = ops.shape(z)[:-1]
        h = ops.reshape(z, (-1, 1, 1, ops.shape(z)[-1]))
        h = self.first(h)
        for deconv in self.deconvs:
            h = deconv(h)
        params = self.out(h)
        height, width, channels = self.event_shape
        return ops.reshape(params, (*leading, height, width, channels * self.params_per_pixel))

    def get_config(self):
        return {**super().get_config(), "event_shape": self.event_shape,
                "params_per_pixel": self.params_per_pixel}
