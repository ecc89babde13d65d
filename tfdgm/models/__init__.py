"""Model assembly: config -> validated components -> a Keras model.

`validate_model_config` runs before any data is loaded or TensorFlow graph is built, so that a
misspelled option or an incompatible combination stops the command at once with a message that
names the problem and the fix. Besides the generic checks it calls the hooks a component or model
class may define:

* `validate_options(options, where, latent_dim)` (static) on a component class: checks option
  values;
* `needs_posterior_log_prob = True` on a prior class (the VampPrior): the posterior must evaluate
  `log q(z | x)` at arbitrary `z` (`log_prob(z, h)`) and map noise to samples;
* `check_config(config)` (class method) on a model class: the model's own constraints.

`build_model` asks the registered model class to build itself, `cls.from_experiment(config, info)`;
`build_components` builds the five components every model shares.
"""

from tfdgm.components import vamp_prior  # noqa: F401  (registers the vamp_prior prior)
from tfdgm.errors import ConfigError
from tfdgm.models.hvae import HierarchicalVAE
from tfdgm.models.vae import VAE
from tfdgm.registry import DECODERS, ENCODERS, LIKELIHOODS, MODELS, POSTERIORS, PRIORS

COMPONENTS = {
    "encoder": (ENCODERS, ("event_shape",)),
    "decoder": (DECODERS, ("event_shape", "params_per_pixel")),
    "posterior": (POSTERIORS, ("latent_dim",)),
    "prior": (PRIORS, ("latent_dim",)),
    "likelihood": (LIKELIHOODS, ()),
}


def validate_model_config(config):
    """Checks component names, their options, and the options' compatibility with each other
    and with the dataset. Raises `ConfigError`."""
    from tfdgm.data import dataset_info

    model = config.model
    MODELS.get(model.name, "model.name")
    if model.latent_dim < 1:
        raise ConfigError(f"model.latent_dim must be >= 1, got {model.latent_dim}.")
    classes = {}
    for key, (registry, injected) in COMPONENTS.items():
        spec = getattr(model, key)
        where = f"model.{key}"
        if "name" not in spec:
            raise ConfigError(f"{where}: missing 'name'. Choose one of: {', '.join(registry.names())}.")
        options = {k: v for k, v in spec.items() if k != "name"}
        registry.check_options(spec["name"], options, where, injected)
        classes[key] = registry.get(spec["name"], where)
        if hasattr(classes[key], "validate_options"):
            classes[key].validate_options(options, where, latent_dim=model.latent_dim)

    info = dataset_info(config.data)
    likelihood = classes["likelihood"]
    if info.kind not in likelihood.data_kinds:
        fix = ("set data.binarize=dynamic to model binarized images, or use "
               "model.likelihood.name=discretized_logistic" if info.kind == "grey"
               else "use model.likelihood.name=bernoulli")
        raise ConfigError(
            f"model.likelihood: '{model.likelihood['name']}' models {', '.join(likelihood.data_kinds)} "
            f"data but dataset '{config.data.name}' is {info.kind}: {fix}.")

    posterior, prior = classes["posterior"], classes["prior"]
    if posterior.geometry != prior.geometry:
        raise ConfigError(
            f"model.prior: posterior '{model.posterior['name']}' lives on the {posterior.geometry} "
            f"but prior '{model.prior['name']}' on the {prior.geometry}; pick a matching pair "
            f"(e.g. von_mises_fisher with hyperspherical_uniform).")
    if getattr(prior, "needs_posterior_log_prob", False) and not (
            vamp_prior.has_log_prob(posterior) and vamp_prior.can_reparameterize(posterior)):
        raise ConfigError(
            f"model.prior: '{model.prior['name']}' evaluates the posterior q(z | u) at arbitrary z "
            f"and samples it from given noise, which posterior '{model.posterior['name']}' "
            f"cannot (it needs log_prob(z, h)); use model.posterior.name=diagonal_gaussian or "
            f"full_covariance_gaussian, or another prior.")

    objective = config.objective
    if objective.num_samples < 1:
        raise ConfigError(f"objective.num_samples must be >= 1, got {objective.num_samples}.")
    if objective.name == "iwae" and (objective.warmup_epochs or objective.free_bits):
        raise ConfigError("objective: KL warm-up and free bits apply to the ELBO, not the IWAE "
                          "bound; set objective.warmup_epochs=0 and objective.free_bits=0, or "
                          "objective.name=elbo.")
    if objective.free_bits > 0 and not (getattr(posterior, "factorized", False)
                                        and getattr(prior, "is_standard_normal", False)):
        raise ConfigError("objective.free_bits needs a per-dimension KL: use the "
                          "diagonal_gaussian posterior with the standard_normal prior, or set "
                          "objective.free_bits=0.")
    if config.data.batch_size < 1 or config.data.eval_batch_size < 1:
        raise ConfigError("data.batch_size and data.eval_batch_size must be >= 1.")
    model_class = MODELS.get(model.name, "model.name")
    if hasattr(model_class, "check_config"):
        model_class.check_config(config)


def build_components(config, info):
    """The encoder, decoder, posterior, prior and likelihood of `config.model` for data described
    by `info`, as keyword arguments of a model constructor."""
    model_config = config.model
    likelihood = LIKELIHOODS.build(model_config.likelihood, "model.likelihood")
    return {
        "encoder": ENCODERS.build(model_config.encoder, "model.encoder",
                                  event_shape=info.image_shape),
        "decoder": DECODERS.build(model_config.decoder, "model.decoder",
                                  event_shape=info.image_shape,
                                  params_per_pixel=likelihood.params_per_pixel),
        "posterior": POSTERIORS.build(model_config.posterior, "model.posterior",
                                      latent_dim=model_config.latent_dim),
        "prior": PRIORS.build(model_config.prior, "model.prior",
                              latent_dim=model_config.latent_dim),
        "likelihood": likelihood,
    }


def build_model(config, info):
    """Builds the model of `config` for data described by `info` (a `DatasetInfo`): the
    registered class of `config.model.name` builds itself (`from_experiment`), then its weights
    are created.

    Call it inside the distribution strategy's scope so its variables are mirrored.
    """
    model_class = MODELS.get(config.model.name, "model.name")
    model = model_class.from_experiment(config, info)
    model.build()
    return model


__all__ = ["HierarchicalVAE", "VAE", "build_components", "build_model", "validate_model_config"]
