"""The conditioner of an affine coupling layer (Dinh et al., 2017), a Keras 3 layer."""

import keras
from keras import ops

__all__ = ["CouplingNetwork"]


@keras.saving.register_keras_serializable(package="tfdgm")
class CouplingNetwork(keras.layers.Layer):
    """MLP from the unchanged half of a vector to the shift and log-scale of the other half.

    An affine coupling layer (RealNVP, Dinh et al., 2017) splits `z [..., D]` into the `d`
    conditioning units `z_a` and the `D - d` transformed units `z_b`:

    ```none
    (t, s) = net(z_a)                       # this layer
    y_a = z_a
    y_b = z_b * exp(s) + t                  # (or its inverse, (z_b - t) * exp(-s))
    log|det dy/dz| = sum_j s_j
    ```

    Both directions take one pass of `net` because `net` sees only `z_a`, which the layer leaves
    unchanged. The network is

    ```none
    a_1 = act(W_1 z_a + b_1),  a_l = act(W_l a_{l-1} + b_l),  l = 2..L
    t = W_t a_L + b_t,  s = W_s a_L + b_s
    ```

    `s` is returned raw: the flow that uses it bounds it (e.g. `c tanh(s / c)`). This is the
    input/output convention of `tfb.RealNVP`'s `shift_and_log_scale_fn` (it passes the `d`
    conditioning units, not the whole vector times a binary mask): pass the layer to TFP as
    `lambda z_a, output_units, **kw: net(z_a)`.

    Initialization: as in `tfdgm.nn.MADE`, the output kernels are drawn small
    (`VarianceScaling(1e-4, 'fan_in')`) and their biases are zero, so the coupling starts near
    the identity (`t ~ 0`, `s ~ 0`) while every hidden weight still receives a gradient from the
    first step (an all-zero output kernel would cut them off). No batch normalization: a VAE
    prior is evaluated on the posterior's samples, whose batch statistics change every step.

    Shapes: `z_a` is `[..., d]` (e.g. `[B, d]` or `[S, B, d]`); returns `(t, s)`, each
    `[..., output_units]`.

    #### References

    [1]: Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
         In _International Conference on Learning Representations_, 2017.
         https://arxiv.org/abs/1605.08803
    """

    def __init__(self,
                 output_units,
                 hidden_units,
                 activation="elu",
                 kernel_initializer="glorot_uniform",
                 output_kernel_initializer=None,
                 **kwargs):
        """Creates a coupling network.

        Args:
            output_units: Python `int` `D - d`, the number of transformed units.
            hidden_units: non-empty sequence of Python `int`, the widths of the hidden layers.
            activation: Keras activation name or callable.
            kernel_initializer: initializer of the hidden kernels.
            output_kernel_initializer: initializer of the shift and log-scale kernels; default
                `VarianceScaling(scale=1e-4, mode='fan_in', distribution='truncated_normal')`.
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(**kwargs)
        hidden_units = [int(units) for units in hidden_units]
        if int(output_units) < 1 or not hidden_units or min(hidden_units) < 1:
            raise ValueError("CouplingNetwork needs output_units >= 1 and at least one hidden "
                             "layer; got output_units={!r}, hidden_units={!r}."
                             .format(output_units, hidden_units))
        self.output_units = int(output_units)
        self.hidden_units = hidden_units
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if output_kernel_initializer is None:
            output_kernel_initializer = keras.initializers.VarianceScaling(
                scale=1e-4, mode="fan_in", distribution="truncated_normal")
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer)
        self.hidden_layers = [
            keras.layers.Dense(units, activation=self.activation,
                               kernel_initializer=self.kernel_initializer,
                               dtype=self.dtype_policy, name="hidden_{}".format(i))
            for i, units in enumerate(hidden_units)]
        self.shift_layer = keras.layers.Dense(
            self.output_units, kernel_initializer=self.output_kernel_initializer,
            dtype=self.dtype_policy, name="shift")
        self.log_scale_layer = keras.layers.Dense(
            self.output_units, kernel_initializer=self.output_kernel_initializer,
            dtype=self.dtype_policy, name="log_scale")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = shape[:-1] + (layer.units,)
        self.shift_layer.build(shape)
        self.log_scale_layer.build(shape)

    def call(self, z_a):
        x = ops.cast(z_a, self.compute_dtype)
        for layer in self.hidden_layers:
            x = layer(x)
        return self.shift_layer(x), self.log_scale_layer(x)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)[:-1] + (self.output_units,)
        return shape, shape

    def get_config(self):
        config = super().get_config()
        config.update(
            output_units=self.output_units,
            hidden_units=list(self.hidden_units),
            activation=keras.activations.serialize(self.activation),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            output_kernel_initializer=keras.initializers.serialize(
                self.output_kernel_initializer))
        return config
