"""The generative adversarial network: one model class for every loss of
`tfdgm.models.gan.losses`.

    z [B, D] ~ N(0, I) --generator--> G(z) [B, *shape] --discriminator--> D(G(z)) [B]
                                  x [B, *shape] --discriminator--> D(x) [B]

A training step (one `fit` batch of `B = n_critic m` examples) is one round of the WGAN
algorithms (Arjovsky et al. 2017, Gulrajani et al. 2017, Algorithm 1 in both): `n_critic`
discriminator updates, the `i`-th on the strided minibatch `x[i::n_critic]` of `m` real examples
and `m` fresh fakes, then one generator update on `m` fresh latents. With `n_critic = 1` (the
cross-entropy and hinge games) it is the usual alternation, D then G, on every batch. The strided
split keeps the step independent of how the batch is divided over replicas: replica `r` holds
rows `[r B / N, (r + 1) B / N)`, and when `B / N` is a multiple of `n_critic` its `i`-th
minibatch is exactly its share of the one-device minibatch `i`.

Mixed precision (`training.precision`, `tfdgm.precision`): the players compute in the low
precision; the latent noise, the fakes the discriminator sees beside the float32 data, the scores
and every loss, penalty and logged term are float32 (`full_precision`).

Noise is stateless and drawn for the global batch (`tfdgm.random.normal`, each replica takes its
rows), keyed on the generator optimizer's step and a stream per use, so replicas draw different
latents and one device and N replicas take the same step. The interpolation weights of the
gradient penalty are uniform noise drawn the same way (`tfdgm.random.uniform`).
"""

import keras
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.data.batches import images_of
from tfdgm.errors import ConfigError
from tfdgm.models.base import GenerativeModel, Signature, check_temperature
from tfdgm.models.gan import losses
from tfdgm.models.gan.networks import Discriminator, Generator
from tfdgm.models.gan.options import GANEvaluationOptions, GANOptions
from tfdgm.precision import full_precision_dtype
from tfdgm.registry import MODELS

__all__ = ["GAN"]

_TEST_STREAM = 997  # the fixed noise of test steps (validation losses are deterministic)


def _replicas():
    """Keras sums gradients over replicas: losses are divided by this to average the global
    batch."""
    return tf.distribute.get_strategy().num_replicas_in_sync


@MODELS.register("gan")
@keras.saving.register_keras_serializable("tfdgm")
class GAN(GenerativeModel):
    """A GAN with one of the losses `non_saturating`, `minimax`, `wgan`, `wgan_gp`, `hinge`.

    Args:
      generator: `z [B, latent_dim] -> x [B, *image_shape]` (`networks.Generator`).
      discriminator: `x [B, *image_shape] -> [B]` logits or critic values
        (`networks.Discriminator`).
      image_shape: the shape of one example.
      latent_dim: width of the generator's noise.
      loss: the game (see `tfdgm.models.gan.losses`).
      n_critic: discriminator updates per generator update (see the module docstring).
      clip_value: `c` of `wgan`: after each critic update every critic weight is clipped to
        `[-c, c]` (Arjovsky et al. 2017: 0.01).
      gradient_penalty: `lambda` of `wgan_gp` (Gulrajani et al. 2017: 10).
      seed: base of the stateless noise seeds.

    Logged terms (means over the epoch): `d_loss` and `g_loss` (the players' losses; `d_loss`
    includes the gradient penalty), `d_real` and `d_fake` (mean `D(x)` and `D(G(z))`:
    probabilities `sigmoid(logit)` for the cross-entropy games, critic values otherwise), and
    for `wgan` / `wgan_gp` `wasserstein` (`E D(x) - E D(G(z))`, the critic's estimate of the
    Wasserstein-1 distance up to its Lipschitz constant), for `wgan_gp` `gradient_penalty`.

    Example:

    ```python
    from tfdgm.experiment import build_model, from_dict
    from tfdgm.data import dataset_info

    config = from_dict({"name": "demo", "data": {"name": "mnist5k"},
                        "model": {"name": "gan", "loss": "wgan_gp", "filters": 16}})
    gan = build_model(config, dataset_info(config.data))
    x = gan.generate(tf.random.normal([8, gan.latent_dim]))      # [8, 28, 28, 1] in (0, 1)
    ```
    """

    Options = GANOptions
    EvaluationOptions = GANEvaluationOptions
    optimizer_roles = ("generator", "discriminator")
    default_optimizers = {role: {"name": "adam", "learning_rate": 2e-4, "beta_1": 0.5}
                          for role in ("generator", "discriminator")}
    PAPER_OPTIMIZERS = {
        "wgan": {"name": "rmsprop", "learning_rate": 5e-5},                  # Arjovsky et al.
        "wgan_gp": {"name": "adam", "learning_rate": 1e-4, "beta_1": 0.0,    # Gulrajani et al.
                    "beta_2": 0.9},
    }
    """Each loss's paper optimizer (both players); the others use DCGAN's Adam 2e-4, 0.5."""
    data_kinds = ("binary", "grey", "points")
    serving_default = "generate"
    tflite_signatures = ("generate",)
    key_metrics = ("test_classifier_fid", "test_modes_captured", "test_high_quality_fraction")

    @classmethod
    def default_optimizers_for(cls, options):
        optimizer = cls.PAPER_OPTIMIZERS.get(getattr(options, "loss", None))
        if optimizer is None:
            return super().default_optimizers_for(options)
        return {role: dict(optimizer) for role in cls.optimizer_roles}

    def __init__(self, generator, discriminator, image_shape, latent_dim,
                 loss="non_saturating", n_critic=1, clip_value=0.01, gradient_penalty=10.0,
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        if loss not in losses.LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(losses.LOSSES)}.")
        self.generator, self.discriminator = generator, discriminator
        self.image_shape, self.latent_dim = tuple(image_shape), int(latent_dim)
        self.loss_name, self.n_critic = loss, int(n_critic)
        self.clip_value, self.gradient_penalty = float(clip_value), float(gradient_penalty)
        self.seed = int(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.term_names}

    @property
    def term_names(self):
        names = ["d_loss", "g_loss", "d_real", "d_fake"]
        if losses.is_wasserstein(self.loss_name):
            names.append("wasserstein")
        if self.loss_name == "wgan_gp":
            names.append("gradient_penalty")
        return tuple(names)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build(self, input_shape=None):
        self.generator.build()
        self.discriminator.build()
        super().build((None,) + self.image_shape)

    def call(self, z, training=False):
        return self.generator(z, training=training)

    # Players ------------------------------------------------------------------------------------

    @property
    def generator_variables(self):
        """What the generator optimizer updates."""
        return self.generator.trainable_variables

    @property
    def discriminator_variables(self):
        """What the discriminator optimizer updates."""
        return self.discriminator.trainable_variables

    def optimizer_variables(self, role):
        return {"generator": self.generator_variables,
                "discriminator": self.discriminator_variables}[role]

    def compile_for_training(self, optimizers, jit_compile=False):
        """As the base class (both optimizers built on their own variables), with
        `self.optimizer` the discriminator's: the one that steps every batch, so its iterations
        are the step the NaN guard reports."""
        super().compile_for_training(optimizers, jit_compile)
        self.optimizer = self.discriminator_optimizer

    def latent_noise(self, batch_size, seed):
        """`[batch_size, latent_dim]` standard-normal rows of this replica's slice of the
        global batch's noise (full precision: the same noise under every policy)."""
        return tfdgm_random.normal([batch_size, self.latent_dim], seed, batch_axis=0,
                                   dtype=full_precision_dtype(self))

    def full_precision(self, outputs):
        """A player's `outputs` (low precision under a mixed policy) in the model's full
        precision (float32), for the losses, the penalty and the logged terms."""
        return tf.cast(outputs, full_precision_dtype(self))

    def _scores(self, outputs):
        """The logged mean `D(.)`: probabilities for logits."""
        return tf.sigmoid(outputs) if losses.uses_logits(self.loss_name) else outputs

    def discriminator_terms(self, real, step, training=False):
        """The discriminator's loss on `real [m, ...]` and `m` fakes of fresh noise.

        Returns `{"d_loss": scalar (local mean, with the penalty), "d_real": [m],
        "d_fake": [m], ...}` (`wasserstein [m]`, `gradient_penalty [m]` where they apply).
        """
        batch = tf.shape(real)[0]
        fake = tf.stop_gradient(self.full_precision(self.generator(
            self.latent_noise(batch, tfdgm_random.step_seed(self.seed, step, 0)),
            training=training)))
        # One pass on [real; fake]: one power iteration of the spectral norm per update, and
        # batch norm (where used) sees both halves.
        scores = self.full_precision(
            self.discriminator(tf.concat([real, fake], 0), training=training))
        d_real, d_fake = scores[:batch], scores[batch:]
        per_example = losses.discriminator_loss(self.loss_name, d_real, d_fake)
        terms = {"d_real": self._scores(d_real), "d_fake": self._scores(d_fake)}
        if losses.is_wasserstein(self.loss_name):
            terms["wasserstein"] = d_real - d_fake
        if self.loss_name == "wgan_gp":
            mixing = tfdgm_random.uniform([batch], tfdgm_random.step_seed(self.seed, step, 1), 0)

            def critic(x):
                return self.full_precision(self.discriminator(x, training=False))

            penalty = losses.gradient_penalty(critic, real, fake, mixing)
            terms["gradient_penalty"] = penalty
            per_example = per_example + self.gradient_penalty * penalty
        terms["d_loss"] = tf.reduce_mean(per_example)
        return terms

    def generator_terms(self, real, step, training=False):
        """The generator's loss on `m = len(real)` fresh latents: `{"g_loss": scalar}` (the
        local mean). `real` sets `m` (BiGAN's encoder uses it) and, in training with batch norm
        in D, is normalized with the fakes as in the discriminator's update, so the generator
        descends the function the discriminator was trained as."""
        batch = tf.shape(real)[0]
        z = self.latent_noise(batch, tfdgm_random.step_seed(self.seed, step, 2))
        fake = self.generator(z, training=training)
        if training and self.discriminator.body_has_batch_norm:
            # The discriminator's update normalizes [real; fake] as one batch: score the fakes
            # with the same statistics, not with those of a batch of fakes alone.
            d_fake = self.full_precision(self.discriminator(
                tf.concat([tf.cast(real, fake.dtype), fake], 0), training=True))[batch:]
        else:
            d_fake = self.full_precision(self.discriminator(fake, training=training))
        return {"g_loss": tf.reduce_mean(losses.generator_loss(self.loss_name, d_fake))}

    # Steps --------------------------------------------------------------------------------------

    def _discriminator_update(self, real, step):
        optimizer, variables = self.discriminator_optimizer, self.discriminator_variables
        with tf.GradientTape() as tape:
            terms = self.discriminator_terms(real, step, training=True)
            scaled_loss = optimizer.scale_loss(terms["d_loss"] / _replicas())
        optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        if self.loss_name == "wgan":
            for variable in variables:
                variable.assign(tf.clip_by_value(variable, -self.clip_value, self.clip_value))
        return terms

    def _generator_update(self, real, step):
        optimizer, variables = self.generator_optimizer, self.generator_variables
        with tf.GradientTape() as tape:
            terms = self.generator_terms(real, step, training=True)
            scaled_loss = optimizer.scale_loss(terms["g_loss"] / _replicas())
        optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return terms

    def _update_trackers(self, terms):
        for name, tracker in self.trackers.items():
            for value in terms.get(name, []):
                tracker.update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        x = images_of(data)
        # Seeds: generator step k owns the seed steps [k (n_critic + 1), (k + 1) (n_critic + 1)):
        # the first for its own latents, the next n_critic for the discriminator minibatches.
        step = self.generator_optimizer.iterations * (self.n_critic + 1)
        collected = {name: [] for name in self.term_names}
        for i in range(self.n_critic):
            terms = self._discriminator_update(x[i::self.n_critic], step + 1 + i)
            for name, value in terms.items():
                collected[name].append(tf.reduce_mean(value))
        terms = self._generator_update(x[self.n_critic - 1::self.n_critic], step)
        collected["g_loss"].append(terms["g_loss"])
        return self._update_trackers(collected)

    def test_step(self, data):
        """Both players' losses on a validation batch with fixed noise; changes no variable
        (batch norm and spectral norm in inference mode)."""
        x = images_of(data)
        step = tf.constant(_TEST_STREAM, tf.int64)
        terms = self.discriminator_terms(x, step, training=False)
        terms.update(self.generator_terms(x, step, training=False))
        return self._update_trackers({name: [tf.reduce_mean(value)]
                                      for name, value in terms.items()})

    # Deterministic maps (the exported signatures) ----------------------------------------------

    def generate(self, eps):
        """`eps [B, latent_dim] -> x [B, *image_shape]`: the generator in inference mode."""
        eps = tf.convert_to_tensor(eps)
        if eps.shape.rank is not None and eps.shape[-1] not in (None, self.latent_dim):
            raise ValueError(f"generate expects noise of shape [B, {self.latent_dim}] "
                             f"(model.latent_dim), got {eps.shape}.")
        return self.full_precision(self.generator(eps, training=False))

    def critic_outputs(self, x, eps):
        """`(D(x) [B], D(G(eps)) [N])` in inference mode (logits for the cross-entropy
        games)."""
        return (self.full_precision(self.discriminator(x, training=False)),
                self.full_precision(self.discriminator(self.generate(eps), training=False)))

    def signatures(self):
        """`generate(eps [B, latent_dim]) -> {"x": [B, *image_shape]}`."""
        noise = tf.TensorSpec([None, self.latent_dim], tf.float32, name="eps")
        return {"generate": Signature(lambda eps: {"x": self.generate(eps)}, [noise],
                                      weight_layers=[self.generator])}

    def sample(self, num, temperature=1.0, seed=0):
        """`num` samples `G(T eps)`, `eps ~ N(0, I)`, `[num, *image_shape]`.

        The temperature `T` scales the latent noise: `T < 1` draws from `N(0, T^2 I)`, the
        Gaussian analogue of the truncation trick (Brock et al. 2019), trading variety for
        typicality; `T = 1` samples the model itself.
        """
        temperature = check_temperature(temperature)
        eps = tfdgm_random.stateless_normal([num, self.latent_dim], [seed, 0])
        return self.generate(temperature * eps).numpy()

    # The model contract -------------------------------------------------------------------------

    @property
    def watched_terms(self):
        return self.term_names

    def epoch_summaries(self, images):
        from tfdgm.models.gan.diagnostics import gan_summaries

        return gan_summaries(self, images)

    def image_grids(self, images, seed=0):
        from tfdgm.models.gan.diagnostics import gan_image_grids

        return gan_image_grids(self, images, seed)

    def evaluate_test(self, datasets, config):
        from tfdgm.models.gan.evaluation import evaluate_gan

        return evaluate_gan(self, datasets, config)

    # Construction from an experiment config ---------------------------------------------------

    @classmethod
    def check_config(cls, config, info):
        """Besides the data kind: the dcgan networks need images with `H, W` divisible by 4,
        and a batch that splits into `n_critic` minibatches."""
        super().check_config(config, info)
        model = config.model
        if model.network == "dcgan" and (len(info.image_shape) != 3 or info.image_shape[0] % 4
                                         or info.image_shape[1] % 4):
            raise ConfigError(f"model.network: dcgan needs images [H, W, C] with H and W "
                              f"divisible by 4, but '{info.name}' has elements of shape "
                              f"{tuple(info.image_shape)}; use model.network=mlp.")
        if config.data.batch_size % model.critic_steps:
            raise ConfigError(f"data.batch_size ({config.data.batch_size}) must be a multiple of "
                              f"model.n_critic ({model.critic_steps}): each step splits its "
                              f"batch into n_critic discriminator minibatches.")

    @classmethod
    def networks(cls, options, info):
        """`{generator, discriminator}` of resolved `options` for data described by `info`."""
        shared = dict(network=options.network, image_shape=info.image_shape,
                      filters=options.filters, hidden_units=options.hidden_units)
        return {
            "generator": Generator(latent_dim=options.latent_dim,
                                   batch_norm=options.uses_generator_batch_norm,
                                   output="linear" if info.kind == "points" else "sigmoid",
                                   name="generator", **shared),
            "discriminator": Discriminator(batch_norm=options.uses_discriminator_batch_norm,
                                           spectral_norm=options.spectral_norm,
                                           power_iterations=options.power_iterations,
                                           name="discriminator", **shared),
        }

    @classmethod
    def from_experiment(cls, config, info):
        model = config.model
        return cls(**cls.networks(model, info), image_shape=info.image_shape,
                   latent_dim=model.latent_dim, loss=model.loss, n_critic=model.critic_steps,
                   clip_value=model.clip_value, gradient_penalty=model.gradient_penalty,
                   seed=config.seed, name=model.name)

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {**super().get_config(), "generator": serialize(self.generator),
                "discriminator": serialize(self.discriminator), "image_shape": self.image_shape,
                "latent_dim": self.latent_dim, "loss": self.loss_name, "n_critic": self.n_critic,
                "clip_value": self.clip_value, "gradient_penalty": self.gradient_penalty,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
