"""Generator, discriminator and encoder networks of the adversarial family.

    network   generator G: z [B, D] -> x            discriminator D: x -> [B]
    dcgan     Dense 7x7x2F, BN, ReLU,                Conv F 4x4/2, LReLU(0.2),
              ConvT F 4x4/2, BN, ReLU,               Conv 2F 4x4/2, [BN], LReLU(0.2),
              ConvT C 4x4/2 -> [B, H, W, C]          Flatten, Dense 1
    mlp       Dense h, ReLU (x len(hidden_units)),   Dense h, LReLU(0.2) (x len(hidden_units)),
              Dense prod(shape) -> [B, *shape]       Dense 1

`dcgan` is the DCGAN recipe (Radford et al. 2016: strided convolutions, batch norm in the
generator, LeakyReLU 0.2 in the discriminator, no pooling) at the 28x28 scale of its MNIST
variants (images `H, W` divisible by 4); `F` is `filters` (64). Image generators end in a sigmoid
(data in [0, 1]), point generators are linear; a layer followed by batch norm has no bias (the
norm's offset replaces it: a bias there gets a zero gradient). The discriminator's optional
batch norm is Keras's `synchronized` one, so under `tf.distribute` it normalizes with the
statistics of the global batch (one device and N replicas compute the same thing). With
`spectral_norm` every Dense and Conv2D of the discriminator (and of BiGAN's joint
discriminator) is wrapped in `tfdgm.models.gan.spectral_norm.SpectralNormalization`.

BiGAN (Donahue et al. 2017) adds an encoder `E: x -> z [B, D]` (the discriminator's trunk with a
linear `D`-unit head) and a joint discriminator `D(x, z)`: the trunk's features of `x`
concatenated with `z`, then `Dense h, LReLU(0.2)` and `Dense 1`.
"""

import math

import keras
import tensorflow as tf

from tfdgm.models.gan.spectral_norm import SpectralNormalization

__all__ = ["Discriminator", "Encoder", "Generator", "JointDiscriminator"]

NETWORKS = ("dcgan", "mlp")


def _check_shape(network, image_shape):
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}.")
    if network == "dcgan" and (len(image_shape) != 3 or image_shape[0] % 4
                               or image_shape[1] % 4):
        raise ValueError(f"the dcgan networks need images [H, W, C] with H and W divisible by "
                         f"4, got shape {tuple(image_shape)}.")


def _sn(layer, spectral_norm, power_iterations):
    return SpectralNormalization(layer, power_iterations) if spectral_norm else layer


class _Network(keras.layers.Layer):
    """A stack of layers called in order with `training`; config = constructor arguments."""

    def __init__(self, **kwargs):
        super().__init__(**{key: kwargs.pop(key) for key in ("name", "trainable", "dtype")
                            if key in kwargs})
        self._arguments = dict(kwargs)

    def run(self, layers, x, training):
        for layer in layers:
            x = layer(x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), **self._arguments}


def _trunk(network, image_shape, filters, hidden_units, batch_norm, spectral_norm,
           power_iterations):
    """The discriminator's feature layers `x -> h [B, F]` (without the output unit)."""
    sn = lambda layer: _sn(layer, spectral_norm, power_iterations)  # noqa: E731
    if network == "dcgan":
        layers = [sn(keras.layers.Conv2D(filters, 4, strides=2, padding="same")),
                  keras.layers.LeakyReLU(0.2),
                  sn(keras.layers.Conv2D(2 * filters, 4, strides=2, padding="same",
                                         use_bias=not batch_norm))]
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(synchronized=True))
        return layers + [keras.layers.LeakyReLU(0.2), keras.layers.Flatten()]
    layers = [keras.layers.Flatten()]
    for units in hidden_units:
        layers.append(sn(keras.layers.Dense(units, use_bias=not batch_norm)))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(synchronized=True))
        layers.append(keras.layers.LeakyReLU(0.2))
    return layers


@keras.saving.register_keras_serializable("tfdgm")
class Generator(_Network):
    """`G: z [B, latent_dim] -> x [B, *image_shape]` (see the module docstring).

    Args:
      network: `"dcgan"` or `"mlp"`.
      image_shape: the shape of one example, `(H, W, C)` or `(D,)`.
      latent_dim: width of `z`.
      filters: `F` of the dcgan network.
      hidden_units: widths of the mlp's hidden layers.
      batch_norm: batch norm after each hidden layer (the dcgan generator's; off for mlp).
      output: `"sigmoid"` (images in [0, 1]) or `"linear"` (points).

    Example:

    ```python
    generator = Generator("dcgan", (28, 28, 1), latent_dim=100)
    x = generator(tf.random.normal([16, 100]))      # [16, 28, 28, 1] in (0, 1)
    ```
    """

    def __init__(self, network, image_shape, latent_dim, filters=64, hidden_units=(512, 512),
                 batch_norm=True, output="sigmoid", **kwargs):
        image_shape, hidden_units = tuple(image_shape), tuple(hidden_units)
        super().__init__(network=network, image_shape=image_shape, latent_dim=latent_dim,
                         filters=filters, hidden_units=hidden_units, batch_norm=batch_norm,
                         output=output, **kwargs)
        _check_shape(network, image_shape)
        self.image_shape, self.latent_dim = image_shape, latent_dim
        activation = {"sigmoid": "sigmoid", "linear": None}[output]
        norm = (lambda: [keras.layers.BatchNormalization(synchronized=True)]) if batch_norm \
            else (lambda: [])
        if network == "dcgan":
            height, width, channels = image_shape
            self.body = ([keras.layers.Dense((height // 4) * (width // 4) * 2 * filters,
                                             use_bias=not batch_norm)]
                         + norm() + [keras.layers.ReLU(),
                                     keras.layers.Reshape((height // 4, width // 4, 2 * filters)),
                                     keras.layers.Conv2DTranspose(filters, 4, strides=2,
                                                                  padding="same",
                                                                  use_bias=not batch_norm)]
                         + norm() + [keras.layers.ReLU(),
                                     keras.layers.Conv2DTranspose(channels, 4, strides=2,
                                                                  padding="same",
                                                                  activation=activation)])
        else:
            self.body = []
            for units in hidden_units:
                self.body += [keras.layers.Dense(units, use_bias=not batch_norm)] + norm() + [
                    keras.layers.ReLU()]
            self.body += [keras.layers.Dense(math.prod(image_shape), activation=activation),
                          keras.layers.Reshape(image_shape)]

    def build(self, input_shape=None):
        self.call(tf.zeros([1, self.latent_dim]))

    def call(self, z, training=False):
        return self.run(self.body, z, training)


@keras.saving.register_keras_serializable("tfdgm")
class Discriminator(_Network):
    """`D: x [B, *image_shape] -> [B]` logits or critic values (see the module docstring).

    Args:
      network, image_shape, filters, hidden_units: as for `Generator`.
      batch_norm: synchronized batch norm in the hidden layers (not with a gradient penalty).
      spectral_norm: wrap every Dense and Conv2D in `SpectralNormalization`.
      power_iterations: its power-iteration steps per training call.

    Example:

    ```python
    critic = Discriminator("dcgan", (28, 28, 1), spectral_norm=True)
    scores = critic(x, training=True)               # [B]
    ```
    """

    def __init__(self, network, image_shape, filters=64, hidden_units=(512, 512),
                 batch_norm=False, spectral_norm=False, power_iterations=1, **kwargs):
        image_shape, hidden_units = tuple(image_shape), tuple(hidden_units)
        super().__init__(network=network, image_shape=image_shape, filters=filters,
                         hidden_units=hidden_units, batch_norm=batch_norm,
                         spectral_norm=spectral_norm, power_iterations=power_iterations,
                         **kwargs)
        _check_shape(network, image_shape)
        self.image_shape = image_shape
        self.body_has_batch_norm = bool(batch_norm)
        self.body = _trunk(network, image_shape, filters, hidden_units, batch_norm,
                           spectral_norm, power_iterations)
        self.head = _sn(keras.layers.Dense(1), spectral_norm, power_iterations)

    def build(self, input_shape=None):
        self.call(tf.zeros((1,) + self.image_shape))

    def call(self, x, training=False):
        return self.head(self.run(self.body, x, training), training=training)[:, 0]


@keras.saving.register_keras_serializable("tfdgm")
class Encoder(_Network):
    """BiGAN's encoder `E: x [B, *image_shape] -> z [B, latent_dim]`: the discriminator's trunk
    (no spectral norm) with a linear head.

    Example:

    ```python
    encoder = Encoder("dcgan", (28, 28, 1), latent_dim=50)
    z = encoder(x)                                  # [B, 50]
    ```
    """

    def __init__(self, network, image_shape, latent_dim, filters=64, hidden_units=(512, 512),
                 batch_norm=False, **kwargs):
        image_shape, hidden_units = tuple(image_shape), tuple(hidden_units)
        super().__init__(network=network, image_shape=image_shape, latent_dim=latent_dim,
                         filters=filters, hidden_units=hidden_units, batch_norm=batch_norm,
                         **kwargs)
        _check_shape(network, image_shape)
        self.image_shape, self.latent_dim = image_shape, latent_dim
        self.body = _trunk(network, image_shape, filters, hidden_units, batch_norm, False, 1)
        self.head = keras.layers.Dense(latent_dim)

    def build(self, input_shape=None):
        self.call(tf.zeros((1,) + self.image_shape))

    def call(self, x, training=False):
        return self.head(self.run(self.body, x, training))


@keras.saving.register_keras_serializable("tfdgm")
class JointDiscriminator(_Network):
    """BiGAN's discriminator `D(x [B, *image_shape], z [B, latent_dim]) -> [B]` logits.

    Example:

    ```python
    joint = JointDiscriminator("mlp", (2,), latent_dim=2, hidden_units=[64])
    scores = joint((x, z), training=True)           # [B]
    ```
    """

    def __init__(self, network, image_shape, latent_dim, filters=64, hidden_units=(512, 512),
                 joint_units=512, batch_norm=False, spectral_norm=False, power_iterations=1,
                 **kwargs):
        image_shape, hidden_units = tuple(image_shape), tuple(hidden_units)
        super().__init__(network=network, image_shape=image_shape, latent_dim=latent_dim,
                         filters=filters, hidden_units=hidden_units, joint_units=joint_units,
                         batch_norm=batch_norm, spectral_norm=spectral_norm,
                         power_iterations=power_iterations, **kwargs)
        _check_shape(network, image_shape)
        self.image_shape, self.latent_dim = image_shape, latent_dim
        self.body = _trunk(network, image_shape, filters, hidden_units, batch_norm,
                           spectral_norm, power_iterations)
        self.joint = [_sn(keras.layers.Dense(joint_units), spectral_norm, power_iterations),
                      keras.layers.LeakyReLU(0.2),
                      _sn(keras.layers.Dense(1), spectral_norm, power_iterations)]

    def build(self, input_shape=None):
        self.call((tf.zeros((1,) + self.image_shape), tf.zeros([1, self.latent_dim])))

    def call(self, inputs, training=False):
        x, z = inputs
        features = self.run(self.body, x, training)
        return self.run(self.joint, tf.concat([features, tf.cast(z, features.dtype)], -1),
                        training)[:, 0]
