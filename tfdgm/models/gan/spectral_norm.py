"""Spectral normalization of a layer's kernel (Miyato et al., 2018).

```none
W      the kernel reshaped to a matrix [fan_in, units] (fan_in = prod(kernel.shape[:-1]))
u      the running estimate [units] of W's top right singular vector (unit norm, not trained)
train: repeat power_iterations times:  v = W u / ||W u||,  u = W^T v / ||W^T v||;  store u
sigma  = ||W u||                        (= v^T W u, the estimate of the largest singular value)
W_SN   = W / sigma                      (the layer computes with W_SN; the gradient flows
                                         through sigma(W), u and v are held constant)
```

#### Why not `keras.layers.SpectralNormalization`

Keras 3.15's wrapper writes `W / sigma` back into the trainable kernel inside the forward pass
(`self.kernel.assign(...)`): the optimizer then updates the normalized kernel rather than `W`,
the gradient ignores `sigma`'s dependence on `W` (the paper's Eq. 12 term), and the assignment
of a mirrored trainable variable inside a replica's step is not defined under
`tf.distribute.MirroredStrategy` (`aggregation="none"`). Here `W` is left alone, only `u`
changes, and `u` is a non-trainable Keras weight (so `save_weights` keeps it) with
`aggregation="only_first_replica"`: every replica computes the same `u` from the same mirrored
`W` and `u`, so the replicas stay consistent.

#### Mixed precision

The power iteration, `sigma` and `W / sigma` are computed in the variables' float32 (the wrapper
does not autocast its variables), so `u` is stored unrounded; the product with the inputs runs
in the layer's compute dtype (bfloat16 or float16 under a mixed policy).

#### References

[1]: Takeru Miyato, Toshiki Kataoka, Masanori Koyama and Yuichi Yoshida. Spectral Normalization
     for Generative Adversarial Networks. In _International Conference on Learning
     Representations_, 2018. https://arxiv.org/abs/1802.05957
"""

import keras
import tensorflow as tf

__all__ = ["SpectralNormalization"]


def _normalize(x):
    return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(x)), 1e-24))


@keras.saving.register_keras_serializable("tfdgm")
class SpectralNormalization(keras.layers.Layer):
    """Wraps a `Dense` or `Conv2D` layer so that it computes with `W / sigma(W)`.

    See the module docstring for the math. The wrapped layer's own kernel and bias are the
    trainable weights; the wrapper adds the non-trainable `u` `[units]`.

    Args:
      layer: an unbuilt `keras.layers.Dense` or `keras.layers.Conv2D` (channels last).
      power_iterations: power-iteration steps per training call (1 in the paper).

    Example:

    ```python
    critic_layer = SpectralNormalization(keras.layers.Conv2D(64, 4, strides=2, padding="same"))
    h = critic_layer(x, training=True)          # [B, H/2, W/2, 64]; advances u
    critic_layer.sigma()                        # ~ the kernel's largest singular value
    ```
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        # autocast=False: inside `call` the kernel and `u` are read in float32 (module docstring).
        super().__init__(autocast=False, **kwargs)
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            raise TypeError(f"SpectralNormalization wraps Dense or Conv2D layers, got "
                            f"{type(layer).__name__}.")
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {power_iterations}.")
        self.layer = layer
        self.power_iterations = int(power_iterations)

    def build(self, input_shape):
        self.layer.build(input_shape)
        units = self.layer.kernel.shape[-1]
        self.u = self.add_weight(name="u", shape=(units,), trainable=False,
                                 initializer=keras.initializers.RandomNormal(stddev=1.0),
                                 aggregation="only_first_replica")
        self.built = True

    def _matrix(self):
        kernel = self.layer.kernel
        return tf.reshape(kernel, [-1, kernel.shape[-1]])

    def _power_iteration(self, matrix, u):
        for _ in range(self.power_iterations):
            v = _normalize(tf.linalg.matvec(matrix, u))
            u = _normalize(tf.linalg.matvec(matrix, v, transpose_a=True))
        return u

    def sigma(self, training=False):
        """The spectral-norm estimate `||W u||` (after the power iteration when `training`:
        then `u` is also stored)."""
        matrix = self._matrix()
        u = _normalize(tf.convert_to_tensor(self.u))
        if training:
            u = tf.stop_gradient(self._power_iteration(matrix, u))
            self.u.assign(u)
        return tf.norm(tf.linalg.matvec(matrix, u))

    def normalized_kernel(self, training=False):
        """`W / sigma`, shaped like the wrapped layer's kernel."""
        return self.layer.kernel / tf.cast(self.sigma(training), self.layer.kernel.dtype)

    def call(self, inputs, training=False):
        layer = self.layer
        dtype = layer.compute_dtype
        inputs = tf.cast(inputs, dtype)
        kernel = tf.cast(self.normalized_kernel(training), dtype)
        if isinstance(layer, keras.layers.Conv2D):
            outputs = layer.convolution_op(inputs, kernel)
        else:
            outputs = tf.matmul(inputs, kernel) if inputs.shape.rank == 2 else tf.tensordot(
                inputs, kernel, axes=1)
        if layer.use_bias:
            outputs = outputs + tf.cast(layer.bias, dtype)
        return layer.activation(outputs) if layer.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations,
                "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
