"""Flow priors (MAF, RealNVP): density, inverse, normalization, the KL duality, training, export.

Densities are checked in float64 with non-trivial random conditioner weights (never the
near-identity initialization): the log-det against autodiff `slogdet`, the inverse against the
forward map, the direct tensor math against TFP's `MaskedAutoregressiveFlow` / `RealNVP`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm import export
from tfdgm import random as tfdgm_random
from tfdgm.models.vae.flow_priors import MAFPrior, RealNVPPrior
from tfdgm.models.vae.posteriors import standard_normal_log_prob
from tfdgm.errors import ConfigError
from tfdgm.registry import PRIORS
from tfdgm.testing.bijector_checks import fresh, jacobian, randomize_weights
from tfdgm.testing.models import random_images, small_vae

tfb = tfp.bijectors
tfd = tfp.distributions
SEED = tf.constant([3, 4], tf.int64)
PRIOR_CLASSES = {"maf": MAFPrior, "realnvp": RealNVPPrior}


def random_prior(name, latent_dim, stddev=0.5, seed=1, dtype="float64", num_flows=3):
    """A built flow prior with every conditioner weight drawn from N(0, stddev^2)."""
    prior = PRIOR_CLASSES[name](latent_dim, num_flows=num_flows, hidden_units=[16, 16],
                                dtype=dtype)
    prior.build()
    randomize_weights(prior, seed=seed, stddev=stddev)
    return prior


def normal(shape, seed, dtype=np.float64):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_registered_with_its_options(name):
    prior = PRIORS.build({"name": name, "num_flows": 2, "hidden_units": [8]}, "prior",
                         latent_dim=3)
    assert isinstance(prior, PRIOR_CLASSES[name])
    assert (prior.num_flows, prior.hidden_units, prior.noise_dim) == (2, [8], 3)
    assert not prior.is_standard_normal and prior.geometry == "euclidean"
    with pytest.raises(ConfigError, match="num_flow"):
        PRIORS.build({"name": name, "num_flow": 2}, "prior", latent_dim=3)


def test_realnvp_needs_two_dimensions():
    with pytest.raises(ConfigError, match="latent_dim >= 2"):
        PRIORS.build({"name": "realnvp"}, "prior", latent_dim=1)


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_log_prob_is_change_of_variables_with_autodiff_jacobian(name):
    """(a) log p(z) = log N(g(z)) + log|det dg/dz|, the log-det from autodiff slogdet, and the
    same density from TFP's bijectors (tfb.MaskedAutoregressiveFlow / tfb.RealNVP in a Chain)."""
    prior = random_prior(name, latent_dim=5)
    z = 1.5 * normal([3, 4, 5], seed=0)  # [S, B, D]
    u, log_det = prior.normalize(z)
    assert u.shape == (3, 4, 5) and log_det.shape == (3, 4)
    _, autodiff = tf.linalg.slogdet(jacobian(lambda t: prior.normalize(t)[0], z))
    np.testing.assert_allclose(log_det, autodiff, atol=1e-10)
    assert np.std(log_det) > 0.1  # a non-trivial, z-dependent Jacobian
    log_p = prior.log_prob(z)
    np.testing.assert_allclose(log_p, standard_normal_log_prob(u) + autodiff, atol=1e-10)
    # Independently, TFP: N(0, I) pushed through the sampling-direction chain g^{-1}.
    np.testing.assert_allclose(prior.distribution().log_prob(fresh(z)), log_p, rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_generate_inverts_g(name):
    """(b) g(generate(eps)) = eps and generate(g(z)) = z; TFP's forward gives the same samples."""
    prior = random_prior(name, latent_dim=5)
    eps = normal([7, 5], seed=1)
    z = prior.generate(eps)
    np.testing.assert_allclose(prior.normalize(z)[0], eps, atol=1e-10)
    z0 = 1.5 * normal([7, 5], seed=2)
    np.testing.assert_allclose(prior.generate(prior.normalize(z0)[0]), z0, atol=1e-10)
    np.testing.assert_allclose(prior.bijector().forward(fresh(eps)), z, atol=1e-10)
    # float32, the dtype the VAE trains in, to 1e-5.
    prior32 = random_prior(name, latent_dim=5, stddev=0.3, dtype="float32")
    eps32 = normal([64, 5], seed=3, dtype=np.float32)
    np.testing.assert_allclose(prior32.normalize(prior32.generate(eps32))[0], eps32, atol=1e-5)
    assert prior32.generate(eps32).dtype == tf.float32
    # sample(n, seed) is generate of stateless normal noise: deterministic.
    np.testing.assert_array_equal(prior32.sample(4, SEED), prior32.sample(4, SEED))
    np.testing.assert_array_equal(
        prior32.sample(4, SEED), prior32.generate(tfdgm_random.stateless_normal([4, 5], SEED)))


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_density_is_normalized_and_matches_samples(name):
    """(c) In 2-D: E_r[p(z) / r(z)] = 1 under a wide Gaussian r (the density integrates to 1),
    and the mass that samples of `generate` put in boxes equals the integral of p over them."""
    prior = random_prior(name, latent_dim=2, stddev=0.3)
    n, sigma = 200_000, 3.0
    z = sigma * normal([n, 2], seed=4)
    log_r = -0.5 * tf.reduce_sum(tf.square(z / sigma), -1) - np.log(2.0 * np.pi * sigma ** 2)
    weights = np.exp(prior.log_prob(z) - log_r)
    mean, stderr = weights.mean(), weights.std() / np.sqrt(n)
    assert abs(mean - 1.0) < max(4.0 * stderr, 0.01) and stderr < 0.01, (mean, stderr)

    samples = prior.generate(normal([n, 2], seed=5)).numpy()
    grid = 200
    for (x0, x1), (y0, y1) in [((-1.0, 1.0), (-1.0, 1.0)), ((0.0, 2.0), (-2.0, 0.0)),
                               ((-2.5, 0.0), (0.0, 2.5))]:
        inside = np.mean((samples[:, 0] > x0) & (samples[:, 0] < x1)
                         & (samples[:, 1] > y0) & (samples[:, 1] < y1))
        xs = x0 + (np.arange(grid) + 0.5) * (x1 - x0) / grid  # midpoint rule
        ys = y0 + (np.arange(grid) + 0.5) * (y1 - y0) / grid
        points = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
        integral = (np.exp(prior.log_prob(tf.constant(points))).sum()
                    * (x1 - x0) * (y1 - y0) / grid ** 2)
        binomial = np.sqrt(integral * (1.0 - integral) / n)
        assert integral > 0.02 and abs(inside - integral) < 4.0 * binomial + 1e-3, (
            (x0, x1, y0, y1), inside, integral)


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_kl_duality_flow_prior_equals_pushed_posterior(name):
    """(d) KL(q || p_flow) = KL(g#q || N(0, I)) for the same g, estimated on the same samples.

    With `u = g(z)`, `z ~ q`, the pushed-forward density is `g#q(u) = q(z) / |det dg/dz|`, so per
    sample `log q(z) - log p_flow(z) = log g#q(u) - log N(u; 0, I)` (lecture 7: a flow prior is a
    flow posterior measured against N(0, I)). `g#q` is also evaluated by TFP as
    `TransformedDistribution(q, g).log_prob(u)`, which inverts g (MAF: D sequential passes).
    """
    prior = random_prior(name, latent_dim=4)
    q = tfd.MultivariateNormalDiag(loc=tf.constant([0.5, -1.0, 0.3, 1.2], tf.float64),
                                   scale_diag=tf.constant([0.4, 0.8, 1.3, 0.6], tf.float64))
    z = q.sample(2000, seed=(7, 8))
    log_q = q.log_prob(z)

    # KL(q || p_flow): the flow prior's density at the posterior's samples.
    kl_prior_terms = log_q - prior.log_prob(z)
    # KL(g#q || N(0, I)): the samples pushed through g, scored by the pushed density.
    u, log_det = prior.normalize(z)
    log_pushed = log_q - log_det
    kl_pushed_terms = log_pushed - standard_normal_log_prob(u)
    np.testing.assert_allclose(kl_pushed_terms, kl_prior_terms, atol=1e-10)

    # The pushed density from TFP, with g as a bijector (forward z -> u) and a fresh u.
    g = tfb.Invert(prior.bijector())
    pushed = tfd.TransformedDistribution(q, g)
    u_fresh = fresh(u)
    np.testing.assert_allclose(pushed.log_prob(u_fresh), log_pushed, atol=1e-8)
    kl_tfp_terms = pushed.log_prob(u_fresh) - tfd.MultivariateNormalDiag(
        loc=tf.zeros([4], tf.float64)).log_prob(u_fresh)
    np.testing.assert_allclose(kl_tfp_terms, kl_prior_terms, atol=1e-8)

    kl_prior, kl_pushed = np.mean(kl_prior_terms), np.mean(kl_pushed_terms)
    assert kl_prior == pytest.approx(kl_pushed, abs=1e-10)
    assert kl_prior > 0.1  # q is far from the prior: the estimate is not trivially 0
    # Against the standard normal prior the KL differs: the flow is not the identity.
    kl_standard = np.mean(log_q - standard_normal_log_prob(z))
    assert abs(kl_standard - kl_prior) > 0.1


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_vae_with_flow_prior_trains_every_weight(name):
    """(e) Every trainable weight, the prior's included, gets a non-zero gradient; fit runs and
    moves the prior's weights."""
    model = small_vae(prior=name, prior_options={"num_flows": 2, "hidden_units": [16]})
    assert len(model.prior.trainable_weights) == 2 * 6
    x = tf.constant(random_images(8))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.bound_terms(x, SEED)["loss"])
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads)
               if g is None or not np.any(g.numpy())]
    assert not missing, f"no gradient reaches {missing}"
    prior_paths = {v.path for v in model.prior.trainable_weights}
    assert prior_paths <= {v.path for v in model.trainable_variables}

    before = [w.numpy().copy() for w in model.prior.trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(random_images(32), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert all(not np.allclose(a, w.numpy())
               for a, w in zip(before, model.prior.trainable_weights))


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_keras_saving_round_trip(name, tmp_path):
    model = small_vae(prior=name, prior_options={"num_flows": 2, "hidden_units": [16]})
    randomize_weights(model.prior, seed=2, stddev=0.3)
    path = str(tmp_path / "vae.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.prior, PRIOR_CLASSES[name])
    z = normal([5, 4], seed=6, dtype=np.float32)
    np.testing.assert_allclose(restored.prior.log_prob(z), model.prior.log_prob(z), atol=1e-5)
    np.testing.assert_allclose(restored.generate(z), model.generate(z), atol=1e-6)


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_generate_exports_to_tflite_with_builtin_ops(name, tmp_path):
    """(f) The generator, prior flow included, converts with TFLite builtins only; the MAF's
    sequential inverse stays a `tf.while_loop` (the builtin WHILE)."""
    keras.utils.set_random_seed(3)
    model = small_vae(prior=name, prior_options={"num_flows": 2, "hidden_units": [16]})
    # Non-trivial weights everywhere (all-zero biases are not stored as constants).
    rng = np.random.default_rng(4)
    for weight in model.trainable_weights:
        weight.assign(weight.numpy() + 0.1 * rng.standard_normal(weight.shape))
    path = export.export_tflite(model, str(tmp_path / f"{name}.tflite"))  # verifies parity
    summary = export.tflite_summary(path)
    assert not [op for op in summary["ops"] if "CUSTOM" in op or "FLEX" in op], summary
    assert ("WHILE" in summary["ops"]) == (name == "maf")
    runner = export.load_tflite_interpreter(path).get_signature_runner("generate")
    eps = normal([6, 4], seed=7, dtype=np.float32)
    np.testing.assert_allclose(runner(eps=eps)["x_mean"], model.generate(eps), atol=1e-5)
