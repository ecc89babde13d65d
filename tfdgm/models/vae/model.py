"""The variational auto-encoder, composed from pluggable components.

    x [B, H, W, C] --encoder--> h [B, F] --posterior--> z [S, B, D] --decoder--> params
    log p(x | z) by the likelihood, log p(z) by the prior, log q(z | x) by the posterior.

One model class serves every combination of posterior, prior and likelihood (Kingma & Welling
2014; Rezende et al. 2014); the objective is the ELBO with KL warm-up and free bits, or the IWAE
bound (Burda et al. 2016).
"""

import keras
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.data.batches import images_of
from tfdgm.errors import ConfigError
from tfdgm.models.base import GenerativeModel, Monitor, Signature, check_temperature, uniform_images
from tfdgm.models.vae import objectives
from tfdgm.models.vae.options import VAEEvaluationOptions, VAEOptions
from tfdgm.models.vae.posteriors import can_reparameterize, has_log_prob, pairwise_log_prob
from tfdgm.precision import full_precision_dtype
from tfdgm.registry import DECODERS, ENCODERS, LIKELIHOODS, MODELS, POSTERIORS, PRIORS

COMPONENTS = {
    "encoder": (ENCODERS, ("event_shape",)),
    "decoder": (DECODERS, ("event_shape", "params_per_pixel")),
    "posterior": (POSTERIORS, ("latent_dim",)),
    "prior": (PRIORS, ("latent_dim",)),
    "likelihood": (LIKELIHOODS, ()),
}
"""The five components of a VAE config: registry and the arguments the library injects."""


@MODELS.register("vae")
@keras.saving.register_keras_serializable("tfdgm")
class VAE(GenerativeModel):
    """A VAE with one stochastic layer.

    Args:
      encoder: layer `x [B, H, W, C] -> h [B, F]`.
      decoder: layer `z [..., D] -> params [..., H, W, C P]`.
      posterior: a `tfdgm.models.vae.posteriors.Posterior`.
      prior: a `tfdgm.models.vae.priors.Prior`.
      likelihood: a `tfdgm.models.vae.likelihoods.Likelihood`.
      image_shape: `(H, W, C)`.
      objective: `"elbo"` or `"iwae"`.
      num_samples: samples of z per example in training (k of the IWAE bound).
      free_bits: nats per latent dimension below which the KL is not penalized (0: off); the
        per-dimension KL is averaged over the global batch before the floor.
      warmup_epochs: epochs of linear KL warm-up (`beta` from 0 to 1; `KLWarmup` sets it).
      seed: base of the stateless seeds of the reparameterization noise.

    `beta` (a non-trainable variable, 1 unless a warm-up callback lowers it) weights the KL in the
    training loss; reported ELBOs are always unweighted.

    Example:

    ```python
    from tfdgm.experiment import build_model, from_dict
    from tfdgm.data import dataset_info

    config = from_dict({"name": "demo", "data": {"name": "mnist5k", "binarize": "dynamic"},
                        "model": {"name": "vae", "latent_dim": 16}})
    vae = build_model(config, dataset_info(config.data))
    x = vae.generate(tf.random.normal([8, vae.noise_dim]))       # [8, 28, 28, 1]
    elbo = vae.elbo(x)                                            # [8] nats
    ```
    """

    Options = VAEOptions
    EvaluationOptions = VAEEvaluationOptions
    default_optimizers = {"model": {"name": "adam", "learning_rate": 5e-4}}
    serving_default = "reconstruct"
    tflite_signatures = ("generate", "decode")
    key_metrics = ("test_nll", "test_elbo")

    def __init__(self, encoder, decoder, posterior, prior, likelihood, image_shape,
                 objective="elbo", num_samples=1, free_bits=0.0, warmup_epochs=0, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.posterior, self.prior, self.likelihood = posterior, prior, likelihood
        self.image_shape = tuple(image_shape)
        self.latent_dim = posterior.latent_dim
        self.objective, self.num_samples = objective, num_samples
        self.free_bits, self.warmup_epochs, self.seed = free_bits, int(warmup_epochs), seed
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
        x = tf.zeros((1,) + self.image_shape, full_precision_dtype(self))
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

    @property
    def supports_elbo_surgery(self):
        """Whether every posterior evaluates `log q(z | x)` at arbitrary codes (what
        `pairwise_log_q` and ELBO surgery need)."""
        posteriors = [getattr(self, name) for name in ("posterior", "z1_posterior")
                      if getattr(self, name, None) is not None]
        return all(has_log_prob(type(posterior)) for posterior in posteriors)

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

    # Construction from an experiment config ---------------------------------------------------

    @classmethod
    def check_config(cls, config, info):
        """Checks the components' names, options and compatibility with each other and with the
        dataset described by `info`; raises `ConfigError`.

        Besides the generic checks it calls the hooks a component class may define:
        `validate_options(options, where, latent_dim)` (static) checks option values;
        `needs_posterior_log_prob = True` on a prior (the VampPrior) requires a posterior that
        evaluates `log q(z | x)` at arbitrary `z` and maps noise to samples.
        """
        model = config.model
        classes = {}
        for key, (registry, injected) in COMPONENTS.items():
            spec = getattr(model, key)
            where = f"model.{key}"
            if "name" not in spec:
                raise ConfigError(f"{where}: missing 'name'. Choose one of: "
                                  f"{', '.join(registry.names())}.")
            options = {k: v for k, v in spec.items() if k != "name"}
            registry.check_options(spec["name"], options, where, injected)
            classes[key] = registry.get(spec["name"], where)
            if hasattr(classes[key], "validate_options"):
                classes[key].validate_options(options, where, latent_dim=model.latent_dim)

        likelihood = classes["likelihood"]
        if info.kind not in likelihood.data_kinds:
            fix = ("set data.binarize=dynamic to model binarized images, or use "
                   "model.likelihood.name=discretized_logistic" if info.kind == "grey"
                   else "use model.likelihood.name=bernoulli")
            raise ConfigError(
                f"model.likelihood: '{model.likelihood['name']}' models "
                f"{', '.join(likelihood.data_kinds)} data but dataset '{config.data.name}' is "
                f"{info.kind}: {fix}.")
        posterior, prior = classes["posterior"], classes["prior"]
        if posterior.geometry != prior.geometry:
            raise ConfigError(
                f"model.prior: posterior '{model.posterior['name']}' lives on the "
                f"{posterior.geometry} but prior '{model.prior['name']}' on the {prior.geometry}; "
                f"pick a matching pair (e.g. von_mises_fisher with hyperspherical_uniform).")
        if getattr(prior, "needs_posterior_log_prob", False) and not (
                has_log_prob(posterior) and can_reparameterize(posterior)):
            raise ConfigError(
                f"model.prior: '{model.prior['name']}' evaluates the posterior q(z | u) at "
                f"arbitrary z and samples it from given noise, which posterior "
                f"'{model.posterior['name']}' cannot (it needs log_prob(z, h)); use "
                f"model.posterior.name=diagonal_gaussian or full_covariance_gaussian, or "
                f"another prior.")
        if model.objective.free_bits > 0 and not (getattr(posterior, "factorized", False)
                                                  and getattr(prior, "is_standard_normal", False)):
            raise ConfigError("model.objective.free_bits needs a per-dimension KL: use the "
                              "diagonal_gaussian posterior with the standard_normal prior, or "
                              "set model.objective.free_bits=0.")

    @classmethod
    def config_warnings(cls, config):
        from tfdgm.models.vae.objectives import linear_warmup

        warmup, epochs = config.model.objective.warmup_epochs, config.training.epochs
        final_beta = linear_warmup(epochs - 1, warmup)
        if final_beta < 1:
            return [f"training.epochs ({epochs}) <= model.objective.warmup_epochs ({warmup}): "
                    f"the KL weight beta ends at {final_beta:.2f}, never 1, so the run "
                    f"optimizes a weakened bound; train more than {warmup} epochs or shorten "
                    f"the warm-up."]
        return []

    @classmethod
    def build_components(cls, config, info):
        """The encoder, decoder, posterior, prior and likelihood of `config.model` for data
        described by `info`, as keyword arguments of a model constructor."""
        model = config.model
        likelihood = LIKELIHOODS.build(model.likelihood, "model.likelihood")
        return {
            "encoder": ENCODERS.build(model.encoder, "model.encoder",
                                      event_shape=info.image_shape),
            "decoder": DECODERS.build(model.decoder, "model.decoder",
                                      event_shape=info.image_shape,
                                      params_per_pixel=likelihood.params_per_pixel),
            "posterior": POSTERIORS.build(model.posterior, "model.posterior",
                                          latent_dim=model.latent_dim),
            "prior": PRIORS.build(model.prior, "model.prior", latent_dim=model.latent_dim),
            "likelihood": likelihood,
        }

    @classmethod
    def from_experiment(cls, config, info, **kwargs):
        """The model of `config` (a resolved `tfdgm.config.Config`) for data described by
        `info` (a `DatasetInfo`), unbuilt; `kwargs` are extra constructor arguments of
        subclasses."""
        objective = config.model.objective
        return cls(**cls.build_components(config, info), image_shape=info.image_shape,
                   objective=objective.name, num_samples=objective.num_samples,
                   free_bits=objective.free_bits, warmup_epochs=objective.warmup_epochs,
                   seed=config.seed,
                   name=config.model.name, **kwargs)

    # The model contract ---------------------------------------------------------------------

    @property
    def monitor(self):
        """The validation bound being optimized: the IWAE bound for `objective="iwae"`, else the
        ELBO; patience counts only after the KL warm-up."""
        return Monitor("iwae" if self.objective == "iwae" else "elbo", "max",
                       patience_from_epoch=self.warmup_epochs)

    def training_callbacks(self, config):
        from tfdgm.models.vae.warmup import KLWarmup

        return [KLWarmup(self.warmup_epochs)]

    @property
    def watched_terms(self):
        return tuple(name for name in ("reconstruction", "kl", "iwae", "loss")
                     if name in self.trackers)

    def prepare_training(self, datasets, config):
        """VampPrior with `init: training_images`: K random training images (fresh runs only)."""
        if getattr(self.prior, "needs_training_images", False):
            from tfdgm.data import load_images

            self.prior.initialize_pseudo_inputs(load_images(config.data, "train"),
                                                seed=config.seed)

    def epoch_summaries(self, images):
        from tfdgm.models.vae.diagnostics import latent_summaries

        return latent_summaries(self, images)

    def embeddings(self, images):
        return {"posterior_mean": self.encode(images).numpy()}

    def image_grids(self, images, seed=0):
        from tfdgm.models.vae.diagnostics import vae_image_grids

        return vae_image_grids(self, images, seed)

    def evaluate_test(self, datasets, config):
        from tfdgm.models.vae.evaluation import evaluate_vae

        return evaluate_vae(self, datasets, config)

    def signatures(self):
        """`encode`, `decode`, `reconstruct`, `generate` and `elbo` (see `tfdgm.export`)."""
        image = tf.TensorSpec([None, *self.image_shape], tf.float32, name="x")
        code = tf.TensorSpec([None, self.latent_dim], tf.float32, name="z")
        noise = tf.TensorSpec([None, self.noise_dim], tf.float32, name="eps")
        images = uniform_images(self.image_shape)
        return {
            "encode": Signature(lambda x: {"z": self.encode(x)}, [image], images),
            "decode": Signature(lambda z: {"x_mean": self.decode(z)}, [code],
                                weight_layers=[self.decoder]),
            "reconstruct": Signature(lambda x: {"x_mean": self.reconstruct(x)}, [image], images),
            "generate": Signature(lambda eps: {"x_mean": self.generate(eps)}, [noise],
                                  weight_layers=[self.decoder]),
            "elbo": Signature(lambda x: {"elbo": self.elbo(x)}, [image], images),
        }

    def scale_noise(self, eps, temperature):
        """The noise of `generate` for reduced-temperature sampling: the prior's
        `scale_noise` (the Gaussian coordinates times `temperature`)."""
        return self.prior.scale_noise(eps, temperature)

    def sample(self, num, temperature=1.0, seed=0):
        """`num` decoder means at prior samples drawn at `temperature` (`[num, H, W, C]`).

        Reduced-temperature sampling scales the prior's Gaussian noise by `T`: `N(0, T^2 I)`
        for the standard normal and the flow priors' base; each VampPrior component's noise
        (the component itself is still drawn uniformly). The uniform prior on the sphere has no
        temperature: anything but 1 is a `ConfigError`.
        """
        temperature = check_temperature(temperature)
        eps = tfdgm_random.stateless_normal([num, self.noise_dim], [seed, 0])
        return self.generate(self.scale_noise(eps, temperature)).numpy()

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
                loss += tf.cast(tf.add_n(self.losses), loss.dtype)
            # Keras sums gradients over replicas: scale so N replicas average the global batch;
            # a LossScaleOptimizer (mixed_float16) scales it up here and unscales in `apply`.
            scaled_loss = self.optimizer.scale_loss(loss / replicas)
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
                "free_bits": self.free_bits, "warmup_epochs": self.warmup_epochs,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "posterior", "prior", "likelihood"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
