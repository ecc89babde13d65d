"""The VampPrior (Tomczak & Welling 2018): its density against an independent TFP mixture, the
pseudo-inputs' training, the deterministic generator, initialization, validation, saving and
TFLite export."""

import statistics

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm import experiment
from tfdgm import export
from tfdgm.models.vae.posteriors import Posterior
from tfdgm.models.vae.vamp_prior import VampPrior, clip_straight_through
from tfdgm.errors import ConfigError
from tfdgm.registry import POSTERIORS
from tfdgm.testing.models import random_images, small_vae

tfd = tfp.distributions
SEED = tf.constant([5, 6], tf.int64)
K = 5


def vamp_vae(posterior="diagonal_gaussian", latent_dim=3, num_components=K, **options):
    """A gated-MLP VAE with a VampPrior whose pseudo-inputs are spread over [-0.2, 1.2] (so the
    components differ and some pixels are clipped)."""
    keras.utils.set_random_seed(0)
    model = small_vae(posterior=posterior, encoder="gated_mlp", decoder="gated_mlp",
                      latent_dim=latent_dim, prior="vamp_prior",
                      prior_options={"num_components": num_components, **options})
    raw = model.prior.pseudo_inputs_raw
    raw.assign(tf.random.stateless_uniform(raw.shape, [1, 2], -0.2, 1.2))
    return model


def components(model):
    """The K component distributions q(z | u_k), built independently with TFP."""
    u = np.clip(model.prior.pseudo_inputs_raw.numpy(), 0.0, 1.0)
    h = model.encoder(tf.constant(u))
    if hasattr(model.posterior, "loc_and_cholesky"):
        loc, _, cholesky = model.posterior.loc_and_cholesky(h)
        return tfd.MultivariateNormalTriL(loc, cholesky)
    loc, scale = model.posterior.loc_and_scale(h)
    return tfd.MultivariateNormalDiag(loc, scale)


@pytest.mark.parametrize("posterior", ["diagonal_gaussian", "full_covariance_gaussian"])
def test_log_prob_is_the_uniform_mixture_of_posteriors_at_the_pseudo_inputs(posterior):
    model = vamp_vae(posterior)
    if posterior == "full_covariance_gaussian":
        head = model.posterior.lower_head
        head.kernel.assign(tf.random.stateless_normal(head.kernel.shape, [3, 4]) * 0.3)
    z = 1.5 * tf.random.stateless_normal([2, 4, 3], [7, 8])
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros(K)), components(model))
    np.testing.assert_allclose(model.prior.log_prob(z), mixture.log_prob(z), rtol=1e-5, atol=1e-4)
    # ... and per component, far from the modes too (the float64 expansion of the quadratic form).
    far = tf.concat([z[0], 25.0 * tf.ones([1, 3])], 0)
    per_component = components(model).log_prob(far[:, None, :])
    expected = tf.reduce_logsumexp(per_component, -1) - np.log(K)
    np.testing.assert_allclose(model.prior.log_prob(far), expected, rtol=1e-5, atol=1e-3)


def test_pseudo_inputs_are_one_trainable_weight_and_receive_gradients():
    model = vamp_vae()
    variables = model.trainable_variables
    assert len({id(v) for v in variables}) == len(variables)
    pseudo = [v for v in variables if v is model.prior.pseudo_inputs_raw]
    assert len(pseudo) == 1 and tuple(pseudo[0].shape) == (K, 28, 28, 1)
    assert not any(isinstance(layer, keras.Model) for layer in model.prior._flatten_layers())
    x = tf.constant(random_images(8))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.bound_terms(x, SEED)["loss"])
    grads = tape.gradient(loss, variables)
    missing = [v.path for v, g in zip(variables, grads) if g is None or not np.any(g.numpy())]
    assert not missing, missing
    # The paper's initialization N(-0.05, 0.01) clips every pixel to 0: still trainable.
    keras.utils.set_random_seed(1)
    fresh = small_vae(encoder="gated_mlp", decoder="gated_mlp", prior="vamp_prior",
                      prior_options={"num_components": K})
    assert np.all(fresh.prior.pseudo_inputs().numpy() == 0.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(fresh.bound_terms(x, SEED)["loss"])
    grad = tape.gradient(loss, fresh.prior.pseudo_inputs_raw)
    assert np.any(grad.numpy())
    # One Adam step, then the optimizer projects the pseudo-inputs onto [0, 1]: pixels whose
    # gradient points inward (negative here) move in, the others stay at the bound 0.
    keras.optimizers.Adam(0.1, epsilon=1e-12).apply([grad], [fresh.prior.pseudo_inputs_raw])
    raw = fresh.prior.pseudo_inputs_raw.numpy()
    assert raw.min() >= 0.0 and raw.max() <= 1.0
    np.testing.assert_array_equal(raw > 0.0, grad.numpy() < 0.0)
    np.testing.assert_array_equal(fresh.prior.pseudo_inputs(), raw)


def test_hard_tanh_clips_forward_and_passes_gradients_straight_through():
    u = tf.constant([-0.1, 0.5, 1.2])
    upstream = tf.constant([-1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(u)
        y = clip_straight_through(u)
        loss = tf.reduce_sum(y * upstream)
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tape.gradient(loss, u), upstream)
    unclipped = small_vae(prior="vamp_prior", prior_options={"num_components": 2,
                                                             "hard_tanh": False})
    assert unclipped.prior.pseudo_inputs_raw.constraint is None
    assert np.all(unclipped.prior.pseudo_inputs().numpy() < 0.0)


def test_generate_lands_on_the_component_that_eps0_selects():
    model = vamp_vae()
    prior = model.prior
    assert prior.noise_dim == 4 and model.noise_dim == 4
    dist = components(model)
    loc, scale = dist.loc.numpy(), dist.stddev().numpy()
    normal = statistics.NormalDist()
    eps_rest = np.random.default_rng(0).standard_normal((K, 3)).astype(np.float32)
    for k in range(K):
        for position in (0.05, 0.5, 0.95):  # within component k's slice of (0, 1)
            eps0 = normal.inv_cdf((k + position) / K)
            eps = np.concatenate([[[eps0]] * K, eps_rest], axis=1).astype(np.float32)
            assert list(prior.component(tf.constant(eps[:, 0])).numpy()) == [k] * K
            np.testing.assert_allclose(prior.generate(tf.constant(eps)),
                                       loc[k] + scale[k] * eps_rest, rtol=1e-5, atol=1e-5)
    extremes = prior.component(tf.constant([-40.0, 40.0])).numpy()
    assert list(extremes) == [0, K - 1]
    # eps_0 ~ N(0, 1) picks the K components uniformly.
    counts = np.bincount(prior.component(tf.random.stateless_normal([10000], [0, 1])).numpy(),
                         minlength=K)
    assert np.all(np.abs(counts - 10000 / K) < 5 * np.sqrt(10000 / K))
    eps = tf.constant(eps)
    np.testing.assert_array_equal(model.generate(eps), model.generate(eps))


def test_initialize_pseudo_inputs_from_training_images():
    model = small_vae(prior="vamp_prior",
                      prior_options={"num_components": K, "init": "training_images"})
    assert model.prior.needs_training_images
    images = random_images(50)
    model.prior.initialize_pseudo_inputs(images, seed=3)
    chosen = model.prior.pseudo_inputs_raw.numpy()
    matches = [int(np.flatnonzero((images == u).all(axis=(1, 2, 3)))[0]) for u in chosen]
    assert len(set(matches)) == K
    with pytest.raises(ValueError, match="expected images"):
        model.prior.initialize_pseudo_inputs(random_images(3, image_shape=(8, 8, 1)))


def _config(prior, posterior=None):
    model = {"name": "vae", "latent_dim": 3, "prior": prior}
    if posterior:
        model["posterior"] = posterior
    return {"data": {"name": "mnist5k", "binarize": "dynamic"}, "model": model}


@POSTERIORS.register("test_posterior_without_log_prob")
class _NoLogProbPosterior(Posterior):
    def call(self, h, num_samples=1, seed=None):  # pragma: no cover - never built
        raise NotImplementedError


def test_config_validation():
    config = experiment.from_dict(_config({"name": "vamp_prior", "num_components": 7}))
    assert config.model.prior["num_components"] == 7
    for prior, message in [({"name": "vamp_prior", "num_components": 0}, "num_components"),
                           ({"name": "vamp_prior", "init": "zeros"}, "init: 'zeros' is not one"),
                           ({"name": "vamp_prior", "components": 3}, "Did you mean"),
                           ({"name": "vamp_prior", "latent_dim": 3}, "no option 'latent_dim'")]:
        with pytest.raises(ConfigError, match=message):
            experiment.from_dict(_config(prior))
    with pytest.raises(ConfigError, match="needs log_prob"):
        experiment.from_dict(_config({"name": "vamp_prior"},
                                     {"name": "test_posterior_without_log_prob"}))
    with pytest.raises(ConfigError, match="free_bits"):
        raw = _config({"name": "vamp_prior"})
        experiment.from_dict({**raw, "model": {**raw["model"], "objective": {"free_bits": 0.1}}})


def test_saving_restores_the_pseudo_inputs(tmp_path):
    model = vamp_vae(num_components=3)
    x = tf.constant(random_images(4))
    path = str(tmp_path / "vamp.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.prior, VampPrior) and restored.prior.owner() is restored
    np.testing.assert_array_equal(restored.prior.pseudo_inputs_raw, model.prior.pseudo_inputs_raw)
    np.testing.assert_allclose(restored.elbo(x), model.elbo(x), atol=1e-4)
    weights = str(tmp_path / "vamp.weights.h5")
    model.save_weights(weights)
    other = vamp_vae(num_components=3)
    other.prior.pseudo_inputs_raw.assign(tf.zeros_like(other.prior.pseudo_inputs_raw))
    other.load_weights(weights)
    np.testing.assert_array_equal(other.prior.pseudo_inputs_raw, model.prior.pseudo_inputs_raw)


def test_tflite_generator_with_a_vamp_prior(tmp_path):
    model = vamp_vae(num_components=4)
    path = export.export_tflite(model, str(tmp_path / "vamp.tflite"))  # verifies vs Keras
    summary = export.tflite_summary(path)
    assert summary["signatures"] == ["decode", "generate"]
    interpreter = export.load_tflite_interpreter(path)
    eps = np.random.default_rng(1).standard_normal((6, model.noise_dim)).astype(np.float32)
    got = interpreter.get_signature_runner("generate")(eps=eps)["x_mean"]
    np.testing.assert_allclose(got, model.generate(tf.constant(eps)), atol=1e-4)
