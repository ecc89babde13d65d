"""The variational auto-encoder, composed from pluggable components.

    x [B, H, W, C] --encoder--> h [B, F] --posterior--> z [S, B, D] --decoder--> params
    log p(x | z) by the likelihood, log p(z) by the prior, log q(z | x) by the posterior.

One model class serves every combination of posterior, prior and likelihood (Kingma & Welling
2014; Rezende et al. 2014); the objective is the ELBO with KL warm-up and free bits, or the IWAE
bound (Burda et al. 2016).
"""

import keras
import tensorflow as tf

from tfdgm import objectives
from tfdgm import random as tfdgm_random
from tfdgm.components.vamp_prior import pairwise_log_prob
from tfdgm.registry import MODELS


def images_of(data):
    """The image tensor of a batch given as `x`, `(x,)`, `(x, y)` or `{"image": x, ...}`."""
    if isinstance(data, dict):
        return data["image"]
    if isinstance(data, (tuple, list)):
        return data[0]
    return data


@MODELS.register("vae")
@keras.saving.register_keras_serializable("tfdgm")
class VAE(keras.Model):
    """A VAE with one stochastic layer.

    Args:
      encoder: layer `x [B, H, W, C] -> h [B, F]`.
      decoder: layer `z [..., D] -> params [..., H, W, C P]`.
      posterior: a `tfdgm.components.posteriors.Posterior`.
      prior: a `tfdgm.components.priors.Prior`.
      likelihood: a `tfdgm.components.likelihoods.Likelihood`.
      image_shape: `(H, W, C)`.
      objective: `"elbo"` or `"iwae"`.
      num_samples: samples of z per example in training (k of the IWAE bound).
      free_bits: nats per latent dimension below which the KL is not penalized (0: off).
      seed: base of the stateless seeds of the reparameterization noise.

    `beta` (a non-trainable variable, 1 unless a warm-up callback lowers it) weights the KL in the
    training loss; reported ELBOs are always unweighted.
    """

    def __init__(self, encoder, decoder, posterior, prior, likelihood, image_shape,
                 objective="elbo", num_samples=1, free_bits=0.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.posterior, self.prior, self.likelihood = posterior, prior, likelihood
        self.image_shape = tuple(image_shape)
        self.latent_dim = posterior.latent_dim
        self.objective, self.num_samples = objective, num_samples
        self.free_bits, self.seed = free_bits, seed
        self.beta = self.add_weight(name="beta", shape=(), initializer="ones", trainable=False)
        self.eval_step = self.add_weight(name="eval_step", shape=(), dtype="int64",
                                         initializer="zeros", trainable=False,
                                         aggregation="only_first_replica")
        self.prior.attach(self)
        names = ["loss", "elbo", "reconstruction", "kl"] + (["iwae"] if objective == "iwae" else [])
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build(self, input_shape=None):
        x = tf.zeros((1,) + self.image_shape)
        self.reconstruct(x)
        self.log_densities(x, 1, tf.constant([0, 0], tf.int64))
        super().build((None,) + self.image_shape)

    def check_images(self, x):
        """Returns `x` after checking its static shape is `[B, H, W, C]` with the model's `(H, W, C)`."""
        x = tf.convert_to_tensor(x)
        if x.shape.rank is not None and (x.shape.rank != 4 or any(
                want != got for want, got in zip(self.image_shape, x.shape[1:]) if got is not None)):
            raise ValueError(f"expected images of shape [B, {', '.join(map(str, self.image_shape))}] "
                             f"(the dataset's image_shape), got {x.shape}; reshape the input or use "
                             f"a model trained on images of that shape.")
        return x

    # Densities ----------------------------------------------------------------------------------

    def log_densities(self, x, num_samples, seed):
        """Samples `z ~ q(z | x)` and evaluates the three log-densities at them.

        Args:
          x: `[B, H, W, C]` images.
          num_samples: `S`.
          seed: stateless seed `[2]`.

        Returns:
          `(posterior_sample, log_px [S, B], log_pz [S, B])`.
        """
        features = self.encoder(self.check_images(x))
        q = self.posterior(features, num_samples=num_samples, seed=seed)
        analytic_kl = getattr(self.prior, "analytic_kl", None)  # closed-form KL(q || p), if any
        if analytic_kl is not None and q.kl is None:
            q = q._replace(kl=analytic_kl(self.posterior, features))
        log_px = self.likelihood.log_prob(x, self.decoder(q.z))
        log_pz = self.prior.log_prob(q.z)
        return q, log_px, log_pz

    def log_weights(self, x, num_samples, seed):
        """Importance weights `log p(x, z_s) - log q(z_s | x)` of `S` fresh samples, `[S, B]`
        (what the importance-sampled NLL and the IWAE bounds average)."""
        q, log_px, log_pz = self.log_densities(x, num_samples, seed)
        return objectives.log_importance_weights(log_px, log_pz, q.log_q)

    def pairwise_log_q(self, z, x):
        """`log q(z_n | x_m)` for every pair of codes `z [N, D]` (as in `log_densities`' `q.z`)
        and images `x [M, H, W, C]`, `[N, M]` (ELBO surgery's aggregated posterior). Needs a
        posterior with `log_prob(z, h)`."""
        return pairwise_log_prob(self.posterior, z, self.encoder(x))

    def bound_terms(self, x, seed, num_samples=None, beta=1.0):
        """Per-example `[B]` terms of the training objective: elbo, reconstruction, kl, loss
        (and `iwae` for the IWAE objective)."""
        num_samples = num_samples or self.num_samples
        q, log_px, log_pz = self.log_densities(x, num_samples, seed)
        kl_per_dim = q.kl_per_dim if self.prior.is_standard_normal else None
        if kl_per_dim is None and q.kl is not None:
            kl_per_dim = q.kl[:, None]  # the closed-form total KL as one term (elbo_terms sums)
        free_bits = self.free_bits if self.objective == "elbo" else 0.0
        terms = objectives.elbo_terms(log_px, log_pz, q.log_q, kl_per_dim, beta, free_bits)
        if self.objective == "iwae":
            bound = objectives.iwae_bound(objectives.log_importance_weights(log_px, log_pz, q.log_q))
            terms["iwae"] = bound
            terms["loss"] = -bound
        return terms

    # Deterministic maps (the exported signatures) ----------------------------------------------

    def encode(self, x):
        """`x [B, H, W, C] -> z [B, D]`: the posterior's deterministic code (its mean, pushed
        through the flow for flow posteriors)."""
        q = self.posterior(self.encoder(self.check_images(x)), num_samples=1,
                           seed=tf.constant([0, 0], tf.int64))
        return q.mean

    def decode(self, z):
        """`z [..., D] -> [..., H, W, C]`: the mean of p(x | z)."""
        z = tf.convert_to_tensor(z)
        if z.shape.rank is not None and z.shape[-1] is not None and z.shape[-1] != self.latent_dim:
            raise ValueError(f"decode expects codes of shape [..., {self.latent_dim}] "
                             f"(model.latent_dim), got {z.shape}.")
        return self.likelihood.mean(self.decoder(z))

    def reconstruct(self, x):
        return self.decode(self.encode(x))

    @property
    def noise_dim(self):
        """Width of the noise `generate` takes (the prior's `noise_dim`, usually `D`)."""
        return self.prior.noise_dim

    def generate(self, eps):
        """`eps [B, noise_dim] ~ N(0, I) -> x [B, H, W, C]`: the mean of p(x | z) at the prior
        sample that `eps` maps to (deterministically)."""
        return self.decode(self.prior.generate(eps))

    def elbo(self, x, seed=None):
        """Single-sample ELBO estimate per example, `[B]` (deterministic for a fixed seed)."""
        seed = tf.constant([0, 0], tf.int64) if seed is None else seed
        return self.bound_terms(x, seed, num_samples=1)["elbo"]

    def call(self, x, training=False):
        return self.reconstruct(x)

    # Construction from an experiment config -----------------------------------------------------

    @classmethod
    def from_experiment(cls, config, info, **kwargs):
        """The model of `config` (a `tfdgm.config.Config`) for data described by `info` (a
        `DatasetInfo`), unbuilt; `kwargs` are extra constructor arguments of subclasses."""
        from tfdgm.models import build_components  # tfdgm.models imports this module

        return cls(**build_components(config, info), image_shape=info.image_shape,
                   objective=config.objective.name, num_samples=config.objective.num_samples,
                   free_bits=config.objective.free_bits, seed=config.seed,
                   name=config.model.name, **kwargs)

    # Training -----------------------------------------------------------------------------------

    def _update_trackers(self, terms):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        x = images_of(data)
        seed = tfdgm_random.step_seed(self.seed, self.optimizer.iterations)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms = self.bound_terms(x, seed, beta=self.beta)
            loss = tf.reduce_mean(terms["loss"])
            if self.losses:
                loss += tf.add_n(self.losses)
            # Keras sums gradients over replicas: scale so N replicas average the global batch.
            scaled_loss = loss / replicas
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_trackers(terms)

    def test_step(self, data):
        x = images_of(data)
        seed = tfdgm_random.replica_seed(
            tfdgm_random.step_seed(self.seed, self.eval_step, stream=1))
        self.eval_step.assign_add(1)
        return self._update_trackers(self.bound_terms(x, seed))

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {**super().get_config(),
                "encoder": serialize(self.encoder), "decoder": serialize(self.decoder),
                "posterior": serialize(self.posterior), "prior": serialize(self.prior),
                "likelihood": serialize(self.likelihood), "image_shape": self.image_shape,
                "objective": self.objective, "num_samples": self.num_samples,
                "free_bits": self.free_bits, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "posterior", "prior", "likelihood"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
