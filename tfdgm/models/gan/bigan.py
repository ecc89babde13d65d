"""Bidirectional GAN (Donahue et al., 2017; also ALI, Dumoulin et al., 2017).

    x [B, *shape] --encoder E--> E(x) [B, D]          real pair  (x, E(x))
    z [B, D] ~ N(0, I) --generator G--> G(z)          fake pair  (G(z), z)
    joint discriminator D(x, z) -> [B] logits

```none
discriminator loss   softplus(-D(x, E(x))) + softplus(D(G(z), z))
generator + encoder  softplus(D(x, E(x))) + softplus(-D(G(z), z))      (labels swapped: the
                                                                       non-saturating form)
```

At the optimum `E` inverts `G` (the paper's Theorem 2), so `E` is a learned feature extractor and
`G(E(x))` a reconstruction. The generator optimizer (role `generator`) updates `G` and `E`
together; one discriminator update precedes each generator-and-encoder update. The paper's
MNIST setting: latent dimension 50, Adam 2e-4 with beta_1 0.5 (its weight decay 2.5e-5 and
learning-rate decay are not used here).

#### References

[1]: Jeff Donahue, Philipp Krahenbuhl and Trevor Darrell. Adversarial Feature Learning. In
     _International Conference on Learning Representations_, 2017.
     https://arxiv.org/abs/1605.09782
[2]: Vincent Dumoulin et al. Adversarially Learned Inference. In _ICLR_, 2017.
"""

import keras
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.models.base import Signature, uniform_images
from tfdgm.models.gan.model import GAN
from tfdgm.models.gan.networks import Encoder, Generator, JointDiscriminator
from tfdgm.models.gan.options import BiGANOptions
from tfdgm.registry import MODELS

__all__ = ["BiGAN"]


@MODELS.register("bigan")
@keras.saving.register_keras_serializable("tfdgm")
class BiGAN(GAN):
    """A BiGAN: `GAN` with an encoder and a joint discriminator `D(x, z)`.

    Args:
      encoder: `x [B, *image_shape] -> z [B, latent_dim]` (`networks.Encoder`).
      generator, image_shape, latent_dim, seed: as for `GAN`.
      discriminator: `(x, z) -> [B]` logits (`networks.JointDiscriminator`).

    Logged terms: `d_loss`, `g_loss` (of generator and encoder), `d_real = mean
    sigmoid(D(x, E(x)))`, `d_fake = mean sigmoid(D(G(z), z))`.

    Example:

    ```python
    config = from_dict({"name": "demo", "data": {"name": "mnist5k"},
                        "model": {"name": "bigan", "filters": 16}})
    bigan = build_model(config, dataset_info(config.data))
    z = bigan.encode(x)                    # [B, 50]
    x_hat = bigan.reconstruct(x)           # G(E(x)), [B, 28, 28, 1]
    ```
    """

    Options = BiGANOptions

    def __init__(self, encoder, generator, discriminator, image_shape, latent_dim, seed=0,
                 **kwargs):
        for fixed in ("loss", "n_critic", "clip_value", "gradient_penalty"):
            kwargs.pop(fixed, None)  # from a saved GAN config: BiGAN's game is fixed
        super().__init__(generator, discriminator, image_shape, latent_dim,
                         loss="non_saturating", n_critic=1, seed=seed, **kwargs)
        self.encoder = encoder

    def build(self, input_shape=None):
        self.encoder.build()
        super().build(input_shape)

    @property
    def generator_variables(self):
        """The generator optimizer updates the generator and the encoder."""
        return self.generator.trainable_variables + self.encoder.trainable_variables

    def discriminator_terms(self, real, step, training=False):
        batch = tf.shape(real)[0]
        z = self.latent_noise(batch, tfdgm_random.step_seed(self.seed, step, 0))
        codes = tf.stop_gradient(self.full_precision(self.encoder(real, training=training)))
        fake = tf.stop_gradient(self.full_precision(self.generator(z, training=training)))
        scores = self.full_precision(self.discriminator(
            (tf.concat([real, fake], 0), tf.concat([codes, z], 0)), training=training))
        d_real, d_fake = scores[:batch], scores[batch:]
        return {"d_loss": tf.reduce_mean(tf.nn.softplus(-d_real) + tf.nn.softplus(d_fake)),
                "d_real": tf.sigmoid(d_real), "d_fake": tf.sigmoid(d_fake)}

    def generator_terms(self, real, step, training=False):
        batch = tf.shape(real)[0]
        z = self.latent_noise(batch, tfdgm_random.step_seed(self.seed, step, 2))
        codes = self.full_precision(self.encoder(real, training=training))
        fake = self.full_precision(self.generator(z, training=training))
        scores = self.full_precision(self.discriminator(
            (tf.concat([real, fake], 0), tf.concat([codes, z], 0)), training=training))
        d_real, d_fake = scores[:batch], scores[batch:]
        return {"g_loss": tf.reduce_mean(tf.nn.softplus(d_real) + tf.nn.softplus(-d_fake))}

    # Deterministic maps -------------------------------------------------------------------------

    def encode(self, x):
        """`x [B, *image_shape] -> z [B, latent_dim]`: the encoder in inference mode."""
        return self.full_precision(self.encoder(tf.convert_to_tensor(x), training=False))

    def embeddings(self, images):
        return {"encoder": self.encode(images).numpy()}

    def reconstruct(self, x):
        """`G(E(x))`, `[B, *image_shape]`."""
        return self.generate(self.encode(x))

    def critic_outputs(self, x, eps):
        x, eps = tf.convert_to_tensor(x), tf.convert_to_tensor(eps)
        return (self.full_precision(self.discriminator((x, self.encode(x)), training=False)),
                self.full_precision(self.discriminator((self.generate(eps), eps),
                                                       training=False)))

    def signatures(self):
        """`generate(eps) -> {"x"}` and `encode(x [B, *image_shape]) -> {"z" [B, latent_dim]}`."""
        signatures = super().signatures()
        image = tf.TensorSpec([None, *self.image_shape], tf.float32, name="x")
        example = uniform_images(self.image_shape) if len(self.image_shape) == 3 else None
        signatures["encode"] = Signature(lambda x: {"z": self.encode(x)}, [image], example,
                                         weight_layers=[self.encoder])
        return signatures

    # Construction from an experiment config ---------------------------------------------------

    @classmethod
    def networks(cls, options, info):
        shared = dict(network=options.network, image_shape=info.image_shape,
                      filters=options.filters, hidden_units=options.hidden_units,
                      latent_dim=options.latent_dim)
        return {
            "encoder": Encoder(name="encoder", **shared),
            "generator": Generator(batch_norm=options.uses_generator_batch_norm,
                                   output="linear" if info.kind == "points" else "sigmoid",
                                   name="generator", **shared),
            "discriminator": JointDiscriminator(joint_units=options.joint_units,
                                                spectral_norm=options.spectral_norm,
                                                power_iterations=options.power_iterations,
                                                name="discriminator", **shared),
        }

    @classmethod
    def from_experiment(cls, config, info):
        model = config.model
        return cls(**cls.networks(model, info), image_shape=info.image_shape,
                   latent_dim=model.latent_dim, seed=config.seed, name=model.name)

    def get_config(self):
        return {**super().get_config(),
                "encoder": keras.saving.serialize_keras_object(self.encoder)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
