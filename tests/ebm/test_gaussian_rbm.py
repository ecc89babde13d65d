"""The Gaussian-Bernoulli RBM: energy, free energy, conditionals and exact log Z against brute
force and quadrature (float64, random non-unit variances), AIS with the Gaussian base model
against exact enumeration, and the `rbm` model with `visible: gaussian` end to end."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.models.ebm import ais, energy
from tfdgm.models.ebm.layer import GaussianBernoulliRBM


def random_grbm(num_visible, num_hidden, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, scale, (num_visible, num_hidden)), rng.normal(0, 0.5, num_visible),
            rng.normal(0, 0.5, num_hidden), np.exp(rng.normal(0, 0.3, num_visible)))


def all_states(units):
    return np.array(list(itertools.product([0.0, 1.0], repeat=units)))


def test_free_energy_is_minus_log_sum_over_h_and_scales_with_beta():
    w, b, c, sigma = random_grbm(5, 4)
    v = np.random.default_rng(1).normal(0, 1.5, (7, 5))
    h = all_states(4)
    energies = np.stack([energy.gaussian_energy(tf.constant(np.repeat(vi[None], len(h), 0)),
                                                tf.constant(h), w, b, c, sigma).numpy()
                         for vi in v])
    for beta in (1.0, 0.3):
        brute = -np.log(np.exp(-beta * energies).sum(axis=1))
        np.testing.assert_allclose(
            energy.gaussian_free_energy(tf.constant(v), w, b, c, sigma, beta).numpy(), brute,
            rtol=1e-12)


def test_conditionals_and_the_gibbs_step_follow_the_energy():
    """For fixed h, -beta E(v, h) - log N(v; b + sigma W h, sigma^2 / beta) is constant in v,
    and p(h_j = 1 | v) is the ratio of exp(-E) with h_j on and off."""
    w, b, c, sigma = random_grbm(4, 3, seed=2)
    rng = np.random.default_rng(3)
    h = all_states(3)[[5]]
    for beta in (1.0, 0.4):
        v = rng.normal(0, 2, (6, 4))
        mean = energy.gaussian_visible_mean(tf.constant(h), w, b, sigma).numpy()
        variance = sigma ** 2 / beta
        log_normal = -0.5 * np.sum((v - mean) ** 2 / variance + np.log(2 * np.pi * variance), -1)
        minus_energy = -beta * energy.gaussian_energy(tf.constant(v), tf.constant(
            np.repeat(h, 6, 0)), w, b, c, sigma).numpy()
        np.testing.assert_allclose(np.ptp(minus_energy - log_normal), 0, atol=1e-10)
        noise = rng.normal(size=(6, 4))
        uniform = np.zeros((6, 3)) + 1e-9  # every hidden unit on (p > 1e-9)
        h_on, v_next, v_mean = energy.gaussian_gibbs_step(
            tf.constant(v), tf.constant(uniform), tf.constant(noise), w, b, c, sigma, beta)
        np.testing.assert_array_equal(h_on.numpy(), 1.0)
        expected_mean = b + sigma * (np.ones((6, 3)) @ w.T)
        np.testing.assert_allclose(v_mean.numpy(), expected_mean, rtol=1e-12)
        np.testing.assert_allclose(v_next.numpy(), expected_mean + sigma / np.sqrt(beta) * noise,
                                   rtol=1e-12)
    v = rng.normal(0, 2, (3, 4))
    on, off = all_states(3)[[7]], all_states(3)[[3]]  # h_0 on / off, others on
    e_on, e_off = (energy.gaussian_energy(tf.constant(v), tf.constant(np.repeat(x, 3, 0)), w, b,
                                          c, sigma).numpy() for x in (on, off))
    p = energy.gaussian_hidden_probabilities(tf.constant(v), w, c, sigma).numpy()[:, 0]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(e_on - e_off)), rtol=1e-12)


def quadrature_log_partition(w, b, c, sigma, half_width=12.0, points=601):
    """log sum_h int exp(-E(v, h)) dv for D = 2 on a grid (trapezoid rule)."""
    grid = [np.linspace(bi - half_width * si, bi + half_width * si, points)
            for bi, si in zip(b, sigma)]
    v1, v2 = np.meshgrid(*grid, indexing="ij")
    v = np.stack([v1.ravel(), v2.ravel()], -1)
    free = energy.gaussian_free_energy(tf.constant(v), w, b, c, sigma).numpy()
    density = np.exp(-free).reshape(points, points)
    integral = np.trapezoid(np.trapezoid(density, grid[1], axis=1), grid[0])
    return np.log(integral)


def test_exact_log_partition_matches_quadrature_and_the_intermediates_are_exact():
    w, b, c, sigma = random_grbm(2, 3, seed=4, scale=0.8)
    exact = ais.exact_log_partition(w, b, c, visible_sigma=sigma)
    assert exact == pytest.approx(quadrature_log_partition(w, b, c, sigma), abs=1e-9)
    assert ais.exact_log_partition(w, b, c, visible_sigma=sigma, chunk=3) == pytest.approx(
        exact, abs=1e-12)
    with pytest.raises(ValueError, match="at most 2 hidden units"):
        ais.exact_log_partition(w, b, c, visible_sigma=sigma, max_units=2)

    # AIS's intermediate p_beta is a Gaussian-Bernoulli RBM whose log Z is exact.
    base_mean, base_sigma = np.array([0.2, -0.4]), np.array([1.3, 0.7])
    for beta in (0.0, 0.35, 1.0):
        w_k, b_k, c_k, sigma_k, shift = ais.gaussian_intermediate(
            tf.constant(beta, tf.float64), tf.constant(w), tf.constant(b), tf.constant(c),
            tf.constant(sigma), tf.constant(base_mean), tf.constant(base_sigma))
        log_z = ais.exact_log_partition(w_k, b_k, c_k, visible_sigma=sigma_k) + float(shift)

        def log_f(v):  # the geometric mixture of the module docstring, h summed out
            pre = (v / sigma) @ w + c
            return (-(1 - beta) * np.sum((v - base_mean) ** 2 / (2 * base_sigma ** 2), -1)
                    - beta * np.sum((v - b) ** 2 / (2 * sigma ** 2), -1)
                    + np.logaddexp(0, beta * pre).sum(-1))

        grid = [np.linspace(-15, 15, 601)] * 2
        v1, v2 = np.meshgrid(*grid, indexing="ij")
        density = np.exp(log_f(np.stack([v1.ravel(), v2.ravel()], -1))).reshape(601, 601)
        quadrature = np.log(np.trapezoid(np.trapezoid(density, grid[1], axis=1), grid[0]))
        assert log_z == pytest.approx(quadrature, abs=1e-9), beta
    expected_base = 3 * np.log(2) + np.log(2 * np.pi) + np.log(base_sigma).sum()
    assert log_z == pytest.approx(exact, abs=1e-9)  # beta = 1: the target
    w_0, b_0, c_0, sigma_0, shift_0 = ais.gaussian_intermediate(
        tf.constant(0.0, tf.float64), tf.constant(w), tf.constant(b), tf.constant(c),
        tf.constant(sigma), tf.constant(base_mean), tf.constant(base_sigma))
    assert ais.exact_log_partition(w_0, b_0, c_0, visible_sigma=sigma_0) + float(
        shift_0) == pytest.approx(expected_base, abs=1e-12)


def test_ais_with_the_gaussian_base_lands_within_its_stated_error_of_exact_log_z():
    rng = np.random.default_rng(5)
    num_visible, num_hidden = 30, 12
    w, b, c, _ = random_grbm(num_visible, num_hidden, seed=6, scale=0.25)
    sigma = np.ones(num_visible)
    exact = ais.exact_log_partition(w, b, c, visible_sigma=sigma)
    data = rng.normal(b, 1.2, (500, num_visible))
    base_mean, base_sigma = ais.gaussian_base_model(data)
    result = ais.ais_log_partition(w, b, c, base_mean, ais.beta_schedule(num_betas=1000),
                                   num_chains=100, seed=2, visible_sigma=sigma,
                                   base_sigma=base_sigma)
    assert 0 < result.std_error < 0.05
    assert result.log_z_lower <= exact <= result.log_z_upper
    assert abs(result.log_z - exact) < 4 * result.std_error


def test_ais_at_the_gaussian_base_model_is_exact():
    mean, std = np.array([0.3, -1.0, 2.0]), np.array([0.5, 1.0, 2.0])
    result = ais.ais_log_partition(np.zeros((3, 2)), mean, np.zeros(2), mean,
                                   ais.beta_schedule(num_betas=10), num_chains=7,
                                   visible_sigma=std, base_sigma=std)
    exact = ais.exact_log_partition(np.zeros((3, 2)), mean, np.zeros(2), visible_sigma=std)
    assert result.log_z == pytest.approx(exact, abs=1e-10)
    assert result.std_error == pytest.approx(0.0, abs=1e-12)
    assert exact == pytest.approx(2 * np.log(2) + 1.5 * np.log(2 * np.pi) + np.log(std).sum())


def test_layer_learned_variances_get_the_cd_gradient():
    layer = GaussianBernoulliRBM(6, 3, learn_sigma=True, dtype="float64")
    rng = np.random.default_rng(7)
    for variable in layer.weights:
        variable.assign(rng.normal(0, 0.3, variable.shape))
    assert len(layer.trainable_variables) == 4
    v_data, v_negative = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    with tf.GradientTape() as tape:
        loss = layer.contrastive_divergence_loss(tf.constant(v_data), tf.constant(v_negative))
    gradient = tape.gradient(loss, layer.log_variance).numpy()
    # d F / d z_i at sigma = exp(z / 2), by central differences of the free energy.
    z = layer.log_variance.numpy()

    def surrogate(z_value):
        s = np.exp(z_value / 2)
        f = lambda v: energy.gaussian_free_energy(tf.constant(v), layer.kernel, layer.visible_bias,
                                                  layer.hidden_bias, tf.constant(s)).numpy()
        return f(v_data).mean() - f(v_negative).mean()

    numeric = [(surrogate(z + 1e-6 * e) - surrogate(z - 1e-6 * e)) / 2e-6 for e in np.eye(6)]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-9)
    assert not GaussianBernoulliRBM(6, 3).log_variance.trainable


# The `rbm` model with Gaussian visibles ----------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402

from tfdgm import experiment, export  # noqa: E402
from tfdgm.data import dataset_info  # noqa: E402
from tfdgm.errors import ConfigError  # noqa: E402
from tfdgm.training.train import train_and_evaluate  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def grey_config(**model):
    return experiment.from_dict({
        "name": "tiny_grbm",
        "data": {"name": "mnist5k", "batch_size": 20, "max_examples": 100},
        "model": {"name": "rbm", "visible": "gaussian", "hidden_units": 8, "sample_steps": 3,
                  **model},
        "optimizer": {"learning_rate": 0.005, "momentum": 0.5},
        "training": {"epochs": 2},
        "evaluation": {"ais_chains": 16, "ais_betas": 200},
        "distribute": {"strategy": "one_device"},
    })


def grey_images(num, seed, shape=(28, 28, 1)):
    rng = np.random.default_rng(seed)
    return np.clip(rng.uniform(size=(num, *shape)) * (rng.uniform(size=(num, *shape)) < 0.4),
                   0, 1).astype(np.float32)


def build_grbm(**model):
    import keras

    cfg = grey_config(**model)
    rbm = experiment.build_model(cfg, dataset_info(cfg.data))
    rbm.compile_for_training({"model": keras.optimizers.SGD(0.005, momentum=0.5)})
    return rbm


def test_gaussian_configs_resolve_and_refuse_what_they_cannot_model():
    cfg = experiment.load_config(os.path.join(REPO, "configs", "ebm", "grbm_fashion_mnist.yaml"))
    assert cfg.model.visible == "gaussian" and cfg.data.binarize == "none"
    assert cfg.data.name == "fashion_mnist"
    default = experiment.from_dict({"data": {"name": "mnist5k"},
                                    "model": {"name": "rbm", "visible": "gaussian"}})
    assert default.optimizer.learning_rate == 0.002 and default.optimizer.name == "sgd"
    with pytest.raises(ConfigError, match="set data.binarize=none"):
        experiment.from_dict({"data": {"name": "mnist5k", "binarize": "dynamic"},
                              "model": {"name": "rbm", "visible": "gaussian"}})
    with pytest.raises(ConfigError, match="model.visible=gaussian"):
        experiment.from_dict({"data": {"name": "mnist5k"}, "model": {"name": "rbm"}})
    with pytest.raises(ConfigError, match="learn_sigma applies to Gaussian visible units"):
        experiment.from_dict({"data": {"name": "mnist5k", "binarize": "dynamic"},
                              "model": {"name": "rbm", "learn_sigma": True}})
    with pytest.raises(ConfigError, match="pixel_scale_floor must be in"):
        grey_config(pixel_scale_floor=0.0)
    with pytest.raises(ConfigError, match="'poisson' is not one of bernoulli, gaussian"):
        grey_config(visible="poisson")


def test_standardization_free_energy_and_sampling():
    rbm = build_grbm()
    images = grey_images(60, 1)
    rbm.initialize_from_data(images)
    flat = images.reshape(60, -1)
    scale = np.maximum(flat.std(0), 0.01)
    np.testing.assert_allclose(rbm.pixel_mean.numpy(), flat.mean(0), atol=1e-6)
    np.testing.assert_allclose(rbm.pixel_scale.numpy(), scale, rtol=1e-5)
    v = rbm.visible_states(images).numpy()
    np.testing.assert_allclose(rbm.rbm.visible_bias.numpy(), v.mean(0), atol=1e-5)
    np.testing.assert_allclose(rbm.base_scale.numpy(), np.maximum(v.std(0), 1e-3), rtol=1e-4)
    np.testing.assert_allclose(rbm.images_of_states(tf.constant(v)).numpy(), images, atol=1e-5)
    w, b, c, sigma = (t.numpy() for t in rbm.rbm.parameters)
    expected = energy.gaussian_free_energy(tf.constant(v, tf.float64), w.astype(np.float64),
                                           b.astype(np.float64), c.astype(np.float64),
                                           sigma.astype(np.float64)).numpy()
    np.testing.assert_allclose(rbm.free_energy(images).numpy(), expected, rtol=1e-4)
    base = rbm.base_log_likelihood(images).numpy()
    z = (v - v.mean(0)) / np.maximum(v.std(0), 1e-3)
    np.testing.assert_allclose(base, np.sum(-0.5 * z ** 2 - np.log(np.maximum(v.std(0), 1e-3))
                                            - 0.5 * np.log(2 * np.pi), -1), rtol=1e-4)
    assert rbm.monitor is None
    x = rbm.sample(5, seed=2)
    assert x.shape == (5, 28, 28, 1) and x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(x, rbm.sample(5, seed=2))


def test_gaussian_export_parity(tmp_path):
    rbm = build_grbm()
    rbm.initialize_from_data(grey_images(60, 3))
    rng = np.random.default_rng(4)
    for variable in rbm.rbm.trainable_variables:
        variable.assign(variable.numpy() + rng.normal(0, 0.05, variable.shape))
    path = export.export_saved_model(rbm, str(tmp_path), "grbm", 1)  # verifies every signature
    loaded = tf.saved_model.load(path)
    inputs = rbm.signatures()["gibbs_step"].example_inputs(rng, 3)
    assert set(inputs) == {"v", "uniform_h", "normal_v"}
    got = loaded.signatures["gibbs_step"](**{k: tf.constant(x) for k, x in inputs.items()})
    want = rbm.signatures()["gibbs_step"].fn(**inputs)
    assert set(got) == {"h", "v", "v_mean"}
    np.testing.assert_allclose(got["v"].numpy(), want["v"].numpy(), atol=1e-5)
    tflite = export.export_tflite(rbm, str(tmp_path / "grbm.tflite"))  # verifies parity
    assert export.tflite_summary(tflite)["signatures"] == ["hidden_probabilities"]


def test_train_and_evaluate_reports_a_continuous_density(tmp_path):
    import keras

    from tfdgm.training.train import Run, restore

    run_dir = str(tmp_path / "run")
    cfg = grey_config(persistent=True, num_chains=20)
    metrics = train_and_evaluate(cfg, run_dir)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f) == metrics
    for key in ("test_log_z", "test_log_likelihood", "test_log_likelihood_pixels",
                "test_free_energy", "test_reconstruction_error"):
        assert np.isfinite(metrics[key]), key
    assert not [key for key in metrics if "pseudo" in key]
    assert np.isfinite(metrics["test_log_likelihood_base_model"])
    assert "continuous" in metrics["test_log_likelihood_density"]
    model = experiment.build_model(cfg, dataset_info(cfg.data))
    model.compile_for_training({"model": keras.optimizers.SGD(0.005, momentum=0.5)})
    restore(model, Run(run_dir).checkpoint("last"))
    jacobian = -float(np.sum(np.log(model.pixel_scale.numpy())))
    assert metrics["test_log_likelihood_pixels"] == pytest.approx(
        metrics["test_log_likelihood"] + jacobian, rel=1e-6)
    for name in ("filters", "samples", "chains"):
        assert os.path.exists(os.path.join(run_dir, f"{name}.png"))
