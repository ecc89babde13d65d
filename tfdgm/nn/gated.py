"""Gated layers: `h = A(x) * sigmoid(B(x))`.

Gated dense layers are the VampPrior paper's building block (Tomczak & Welling 2018, "VAE with a
VampPrior"); gated (transposed) convolutions are the Sylvester-flow paper's encoder/decoder units
(van den Berg et al. 2018), after the gated units of Dauphin et al. (2017).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable("tfdgm")
class GatedDense(keras.layers.Layer):
    """`h = act(W1 x + b1) * sigmoid(W2 x + b2)`; `[..., F_in] -> [..., units]`."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.linear = keras.layers.Dense(units, name="linear")
        self.gate = keras.layers.Dense(units, name="gate")

    def build(self, input_shape):
        self.linear.build(input_shape)
        self.gate.build(input_shape)

    def call(self, x):
        return self.activation(self.linear(x)) * ops.sigmoid(self.gate(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable("tfdgm")
class GatedConv2D(keras.layers.Layer):
    """`h = act(conv_1(x)) * sigmoid(conv_2(x))` on `[B, H, W, C]` images.

    With `transpose=True` both branches are transposed convolutions (the decoder's upsampling).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="same", transpose=False,
                 activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.padding, self.transpose = padding, transpose
        self.activation = keras.activations.get(activation)
        conv = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
        self.linear = conv(filters, kernel_size, strides=strides, padding=padding, name="linear")
        self.gate = conv(filters, kernel_size, strides=strides, padding=padding, name="gate")

    def build(self, input_shape):
        self.linear.build(input_shape)
        self.gate.build(input_shape)

    def call(self, x):
        return self.activation(self.linear(x)) * ops.sigmoid(self.gate(x))

    def compute_output_shape(self, input_shape):
        return self.linear.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "transpose": self.transpose,
                "activation": keras.activations.serialize(self.activation)}
