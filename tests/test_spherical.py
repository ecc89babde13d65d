"""The hyperspherical VAE (S-VAE): vMF and power spherical posteriors, the uniform prior on the
sphere, the closed-form KL, config validation, training, export and an end-to-end run."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfdgm import experiment
from tfdgm import export
from tfdgm.models.vae.spherical import HypersphericalUniformPrior
from tfdgm.distributions import VonMisesFisher
from tfdgm.errors import ConfigError
from tfdgm.evaluation.images import slerp
from tfdgm.registry import POSTERIORS
from tfdgm.testing.models import random_images, small_vae, train_briefly

tfd = tfp.distributions
SEED = tf.constant([3, 4], tf.int64)
POSTERIOR_NAMES = ["von_mises_fisher", "power_spherical"]


def svae(posterior="von_mises_fisher", latent_dim=5, **kwargs):
    return small_vae(posterior=posterior, prior="hyperspherical_uniform", latent_dim=latent_dim,
                     **kwargs)


def concentrate(model, bias):
    """Moves kappa = softplus(. + bias) + 1 away from its initial ~1.7 (e.g. bias 3: ~4)."""
    head = model.posterior.concentration_head
    head.bias.assign(head.bias + bias)


def unit_norm(z, atol=1e-5):
    np.testing.assert_allclose(np.linalg.norm(np.asarray(z), axis=-1), 1.0, atol=atol)


# Components --------------------------------------------------------------------------------------

@pytest.mark.parametrize("posterior", POSTERIOR_NAMES)
def test_every_trainable_weight_gets_a_gradient(posterior):
    model = svae(posterior)
    x = tf.constant(random_images(8))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.bound_terms(x, SEED)["loss"])
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads)
               if g is None or not np.any(g.numpy())]
    assert not missing, f"no gradient reaches {missing}"
    paths = [v.path for v in model.trainable_variables]
    assert any("concentration/kernel" in p for p in paths)  # kappa's head is among them
    assert len(paths) == 10  # encoder 2, decoder 4, mu head 2, kappa head 2


@pytest.mark.parametrize("posterior", POSTERIOR_NAMES)
def test_samples_and_codes_are_unit_vectors(posterior):
    model = svae(posterior, latent_dim=6)
    assert model.posterior.geometry == model.prior.geometry == "sphere"
    x = tf.constant(random_images(7))
    h = model.encoder(x)
    q = model.posterior(h, num_samples=4, seed=SEED)
    assert q.z.shape == (4, 7, 6) and q.log_q.shape == (4, 7) and q.kl_per_dim is None
    unit_norm(q.z)
    unit_norm(q.mean)
    unit_norm(model.encode(x))
    mean_direction, concentration = model.posterior.direction_and_concentration(h)
    np.testing.assert_allclose(q.mean, mean_direction)
    assert concentration.shape == (7,) and np.all(concentration.numpy() >= 1.0)
    np.testing.assert_allclose(q.log_q, model.posterior.log_prob(q.z, h), rtol=1e-5, atol=1e-5)
    # Different seeds, different samples; the same seed, the same samples.
    again = model.posterior(h, num_samples=4, seed=SEED)
    other = model.posterior(h, num_samples=4, seed=SEED + 1)
    np.testing.assert_array_equal(q.z, again.z)
    assert not np.allclose(q.z, other.z)


def test_vmf_posterior_log_q_matches_the_distribution():
    model = svae("von_mises_fisher", latent_dim=4)
    concentrate(model, 3.0)
    h = model.encoder(tf.constant(random_images(5)))
    q = model.posterior(h, num_samples=3, seed=SEED)
    mu, kappa = model.posterior.direction_and_concentration(h)
    np.testing.assert_allclose(q.log_q, VonMisesFisher(mu, kappa).log_prob(q.z), rtol=1e-6)
    # The vMF density with m = 4 in closed form: C_4 = kappa / (4 pi^2 I_1(kappa)).
    log_c = (np.log(kappa) - np.log(4 * np.pi ** 2)
             - np.log(tfp.math.bessel_ive(1.0, kappa).numpy()) - kappa)
    cosine = np.sum(q.z.numpy() * mu.numpy(), axis=-1)
    np.testing.assert_allclose(q.log_q, kappa * cosine + log_c, rtol=1e-4, atol=1e-4)


def test_uniform_prior_density_and_generator():
    prior = HypersphericalUniformPrior(latent_dim=5)
    z = tf.math.l2_normalize(tf.random.stateless_normal([3, 4, 5], [0, 1]), -1)
    reference = tfd.SphericalUniform(dimension=5)
    np.testing.assert_allclose(prior.log_prob(z), reference.log_prob(z), rtol=1e-6)
    # |S^4| = 8 pi^2 / 3.
    np.testing.assert_allclose(prior.log_prob(z), np.full([3, 4], -np.log(8 * np.pi ** 2 / 3)),
                               rtol=1e-6)
    assert prior.noise_dim == 5 and not prior.is_standard_normal
    eps = tf.random.stateless_normal([20000, 5], [2, 3])
    samples = prior.generate(eps).numpy()
    unit_norm(samples)
    np.testing.assert_array_equal(samples, prior.generate(eps))  # deterministic
    # Uniform on S^4: E[z] = 0, E[z z^T] = I / 5 (standard errors ~ 0.003).
    np.testing.assert_allclose(samples.mean(0), 0.0, atol=0.015)
    np.testing.assert_allclose(samples.T @ samples / len(samples), np.eye(5) / 5, atol=0.015)
    unit_norm(prior.sample(4, tf.constant([0, 1])))


@pytest.mark.parametrize("posterior", POSTERIOR_NAMES)
def test_analytic_kl_equals_the_monte_carlo_estimate(posterior):
    model = svae(posterior, latent_dim=5)
    concentrate(model, 3.0)
    x = tf.constant(random_images(6))
    num_samples = 4000
    q, _, log_pz = model.log_densities(x, num_samples, SEED)
    assert q.kl is not None and q.kl.shape == (6,)
    mc = (q.log_q - log_pz).numpy()
    standard_error = mc.std(0) / np.sqrt(num_samples)
    assert np.all(np.abs(mc.mean(0) - q.kl.numpy()) < 4 * standard_error + 1e-4), (
        mc.mean(0), q.kl.numpy(), standard_error)
    assert np.all(q.kl.numpy() > 0.1)  # kappa ~ 4: far enough from the uniform to mean something
    # The ELBO uses the closed form.
    terms = model.bound_terms(x, SEED, num_samples=1)
    np.testing.assert_allclose(terms["kl"], q.kl, rtol=1e-6)


def test_kl_gradient_reaches_the_concentration_head():
    model = svae("von_mises_fisher")
    x = tf.constant(random_images(4))
    with tf.GradientTape() as tape:
        q, _, _ = model.log_densities(x, 1, SEED)
        kl = tf.reduce_sum(q.kl)
    head = model.posterior.concentration_head
    grads = tape.gradient(kl, [head.kernel, head.bias])
    assert all(g is not None and np.any(g.numpy()) for g in grads)
    assert float(grads[1][0]) > 0  # a larger kappa means a larger KL to the uniform prior


@pytest.mark.parametrize("posterior", POSTERIOR_NAMES)
def test_a_few_training_steps_improve_the_elbo(posterior):
    keras.utils.set_random_seed(0)
    model = svae(posterior, hidden_units=(64,))
    images = random_images(128, seed=1)
    x = tf.constant(images[:64])

    def elbo():
        return float(tf.reduce_mean(model.bound_terms(x, SEED, num_samples=8)["elbo"]))

    before, weights = elbo(), [w.numpy().copy() for w in model.trainable_weights]
    train_briefly(model, images, steps=20, learning_rate=1e-2, batch_size=32)
    after = elbo()
    assert np.isfinite(after) and after > before + 10.0, (before, after)
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(weights, model.trainable_weights))


def test_replicas_draw_different_samples():
    """Under a 2-replica strategy the same features and step seed give each replica its own
    samples (the seed carries the replica id)."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        posterior = POSTERIORS.build({"name": "von_mises_fisher"}, "posterior", latent_dim=3)
        posterior(tf.zeros([1, 8]), num_samples=1, seed=SEED)
    h = tf.random.stateless_normal([2, 8], [5, 6])

    @tf.function
    def draw():
        return strategy.run(lambda: posterior(h, num_samples=2, seed=SEED).z)

    first, second = strategy.experimental_local_results(draw())
    assert not np.allclose(first, second)


def test_keras_saving_round_trip(tmp_path):
    model = svae("power_spherical")
    path = str(tmp_path / "svae.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    x = tf.constant(random_images(4))
    assert restored.posterior.geometry == "sphere"
    np.testing.assert_allclose(restored.encode(x), model.encode(x), atol=1e-6)
    np.testing.assert_allclose(restored.elbo(x), model.elbo(x), atol=1e-4)


def test_slerp_follows_the_great_circle():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])  # b is normalized too
    path = slerp(a, b, 7)
    unit_norm(path, atol=1e-12)
    np.testing.assert_allclose(path[0], a, atol=1e-12)
    np.testing.assert_allclose(path[-1], [0.0, 1.0, 0.0], atol=1e-12)
    angles = np.arccos(np.clip(np.sum(path[1:] * path[:-1], -1), -1, 1))
    np.testing.assert_allclose(angles, np.pi / 2 / 6, rtol=1e-9)  # constant angular speed
    unit_norm(slerp(a, a, 3), atol=1e-12)  # coincident ends


# Configuration -----------------------------------------------------------------------------------

def sphere_config(**model):
    return experiment.from_dict({"data": {"name": "mnist5k", "binarize": "dynamic"},
                                 "model": {"name": "vae", "latent_dim": 4, **model}})


def test_config_validation_names_the_geometry_mismatch():
    sphere_config(posterior={"name": "von_mises_fisher"}, prior={"name": "hyperspherical_uniform"})
    sphere_config(posterior={"name": "power_spherical"}, prior={"name": "hyperspherical_uniform"})
    with pytest.raises(ConfigError, match="von_mises_fisher' lives on the sphere but prior "
                                          "'standard_normal' on the euclidean"):
        sphere_config(posterior={"name": "von_mises_fisher"})
    with pytest.raises(ConfigError, match="on the euclidean but prior 'hyperspherical_uniform' "
                                          "on the sphere"):
        sphere_config(prior={"name": "hyperspherical_uniform"})
    with pytest.raises(ConfigError, match="free_bits"):
        sphere_config(posterior={"name": "von_mises_fisher"},
                      prior={"name": "hyperspherical_uniform"}, objective={"free_bits": 0.1})
    with pytest.raises(ConfigError, match="latent_dim must be >= 2"):
        POSTERIORS.build({"name": "von_mises_fisher"}, "model.posterior", latent_dim=1)


# Export ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_svae():
    keras.utils.set_random_seed(4)
    model = svae("von_mises_fisher", latent_dim=4)
    return train_briefly(model, random_images(48, seed=2), steps=3, learning_rate=1e-2,
                         batch_size=16)


def test_saved_model_and_tflite_export(trained_svae, tmp_path):
    model = trained_svae
    path = export.export_saved_model(model, str(tmp_path / "export"), "svae", 1)
    loaded = tf.saved_model.load(path)
    x = random_images(5, seed=9)
    eps = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32) * 3.0
    codes = loaded.signatures["encode"](x=tf.constant(x))["z"].numpy()
    unit_norm(codes)
    np.testing.assert_allclose(codes, model.encode(tf.constant(x)), atol=1e-6)
    for signature, argument, value, method in (("decode", "z", codes, model.decode),
                                               ("generate", "eps", eps, model.generate),
                                               ("reconstruct", "x", x, model.reconstruct),
                                               ("elbo", "x", x, model.elbo)):
        outputs = loaded.signatures[signature](**{argument: tf.constant(value)})
        (got,) = [value.numpy() for value in outputs.values()]
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, method(tf.constant(value)), atol=1e-4, rtol=1e-5)
    # generate(eps) decodes the unit vector eps / |eps|: a rescaled eps generates the same image.
    np.testing.assert_allclose(model.generate(tf.constant(eps)),
                               model.decode(model.prior.generate(tf.constant(eps))), atol=1e-6)
    np.testing.assert_allclose(loaded.signatures["generate"](eps=tf.constant(eps * 0.1))["x_mean"],
                               model.generate(tf.constant(eps)), atol=1e-5)
    unit_norm(model.prior.generate(tf.constant(eps)))

    tflite = export.export_tflite(model, str(tmp_path / "svae.tflite"))  # verifies vs Keras
    runner = export.load_tflite_interpreter(tflite).get_signature_runner("generate")
    np.testing.assert_allclose(runner(eps=eps)["x_mean"], model.generate(tf.constant(eps)),
                               atol=1e-5)
    summary = export.tflite_summary(tflite)
    assert not [op for op in summary["ops"] if op.startswith("CUSTOM") or "FLEX" in op]


# End to end --------------------------------------------------------------------------------------

TINY_SVAE = {
    "name": "tiny_svae",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 100,
             "max_examples": 300},
    "model": {"name": "vae", "latent_dim": 5, "encoder": {"name": "mlp", "hidden_units": [32]},
              "decoder": {"name": "mlp", "hidden_units": [32]},
              "posterior": {"name": "von_mises_fisher"},
              "prior": {"name": "hyperspherical_uniform"}},
    "optimizer": {"learning_rate": 1e-3},
    "training": {"epochs": 2, "patience": 5},
    "evaluation": {"nll_samples": 50, "nll_chunk": 25, "nll_examples": 100,
                   "surgery_examples": 100},
}


def test_train_and_evaluate_an_svae(tmp_path):
    from tfdgm.training.train import train_and_evaluate

    run_dir = str(tmp_path / "tiny_svae")
    metrics = train_and_evaluate(experiment.from_dict(TINY_SVAE), run_dir)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f) == metrics
    assert metrics["epochs_trained"] == 2 and metrics["test_nll_examples"] == 100
    for key in ("test_elbo", "test_kl", "test_nll", "test_iwae_10", "test_mutual_information"):
        assert np.isfinite(metrics[key]), key
    assert -metrics["test_nll"] >= metrics["test_elbo"] - 0.5  # log p(x) estimate >= ELBO
    assert metrics["test_kl"] > 0 and "kl_per_dimension" not in metrics
    assert 0 <= metrics["active_units"] <= 5
    # ELBO surgery: the average KL is the ELBO's (analytic) KL term, I <= log N, the marginal
    # KL is not negative beyond Monte Carlo noise.
    assert metrics["test_average_kl"] == pytest.approx(metrics["test_kl"], rel=0.2, abs=1.0)
    assert metrics["test_mutual_information"] <= np.log(100) + 1e-6
    assert metrics["test_marginal_kl"] > -0.5
    for name in ("samples.png", "reconstructions.png", "interpolation.png"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    tags = {}
    for phase in ("train", "validation", "test"):
        events = EventAccumulator(os.path.join(run_dir, "logs", phase),
                                  size_guidance={"tensors": 0})
        events.Reload()
        tags[phase] = set(events.Tags()["tensors"])
    for phase, tag in (("train", "elbo"), ("train", "kl"), ("validation", "elbo"),
                       ("train", "active_units"), ("train", "images/samples"),
                       ("train", "images/interpolation"), ("test", "nll")):
        assert tag in tags[phase], (phase, tag)
    assert "kl_per_dimension" not in tags["train"]
