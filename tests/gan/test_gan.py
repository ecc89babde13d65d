"""The adversarial family: losses and penalty against closed forms, spectral normalization,
gradients, steps, clipping, checkpoints of both optimizers, one device vs two replicas,
end-to-end training and export."""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm import export
from tfdgm import random as tfdgm_random
from tfdgm.data import dataset_info
from tfdgm.errors import ConfigError
from tfdgm.experiment import build_model, from_dict, load_config
from tfdgm.models.gan import BiGAN, GAN, SpectralNormalization, losses
from tfdgm.training.train import make_optimizers, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPUS = ["/cpu:0", "/cpu:1"]


def tiny_config(data="mnist5k", batch_size=8, optimizer=None, **model):
    spec = {"name": "gan", "filters": 4, "latent_dim": 3, "hidden_units": [8]}
    spec.update(model)
    raw = {"name": "tiny", "data": {"name": data, "batch_size": batch_size, "max_examples": 64,
                                    "eval_batch_size": 32},
           "model": spec, "training": {"epochs": 1}}
    if optimizer:
        raw["optimizer"] = optimizer
    return from_dict(raw)


def tiny_model(strategy=None, data="mnist5k", optimizer=None, **model):
    config = tiny_config(data, optimizer=optimizer, **model)
    with (strategy or tf.distribute.OneDeviceStrategy("/cpu:0")).scope():
        keras.utils.set_random_seed(1)
        gan = build_model(config, dataset_info(config.data))
        gan.compile_for_training(make_optimizers(gan, config.optimizer))
    return gan


def images(n, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 28, 28, 1)).astype(np.float32)


def points(n, seed=0):
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * rng.integers(8, size=n) / 8
    return (2 * np.stack([np.cos(angles), np.sin(angles)], -1)
            + 0.02 * rng.standard_normal((n, 2))).astype(np.float32)


def weights(variables):
    return [np.array(v) for v in variables]


def max_change(after, before):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(after, before))


# Losses -----------------------------------------------------------------------------------------

def test_losses_match_hand_computations():
    d_real = tf.constant([2.0, -0.5, 0.3], tf.float64)
    d_fake = tf.constant([-1.5, 0.7, 1.2], tf.float64)
    r, f = d_real.numpy(), d_fake.numpy()
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    cross_entropy = -np.log(sig(r)) - np.log(1 - sig(f))
    expected = {
        "non_saturating": (cross_entropy, -np.log(sig(f))),
        "minimax": (cross_entropy, np.log(1 - sig(f))),
        "wgan": (f - r, -f),
        "wgan_gp": (f - r, -f),
        # hinge: max(0, 1 - 2) = 0, max(0, 1.5) = 1.5; max(0, 1 - 1.5) = 0 ... by hand:
        "hinge": (np.array([0 + 0, 1.5 + 1.7, 0.7 + 2.2]), -f),
    }
    for name, (d_loss, g_loss) in expected.items():
        np.testing.assert_allclose(losses.discriminator_loss(name, d_real, d_fake), d_loss,
                                   rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(losses.generator_loss(name, d_fake), g_loss, rtol=1e-12,
                                   err_msg=name)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        losses.discriminator_loss("lsgan", d_real, d_fake)


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    # D(x) = w^T vec(x) has gradient w everywhere: the penalty is (||w|| - 1)^2 for any eps.
    rng = np.random.default_rng(3)
    w = tf.constant(rng.standard_normal(12), tf.float64)
    critic = lambda x: tf.linalg.matvec(tf.reshape(x, [-1, 12]), w)  # noqa: E731
    real = tf.constant(rng.standard_normal((5, 2, 3, 2)))
    fake = tf.constant(rng.standard_normal((5, 2, 3, 2)))
    eps = tf.constant(rng.uniform(size=5))
    penalty = losses.gradient_penalty(critic, real, fake, eps)
    expected = (np.linalg.norm(w.numpy()) - 1) ** 2
    np.testing.assert_allclose(penalty, np.full(5, expected), rtol=1e-9)

    # The model's penalty term is the same on its critic (a linear critic: one Dense unit).
    model = tiny_model(data="ring_of_gaussians", network="mlp", loss="wgan_gp",
                       hidden_units=[], n_critic=1)
    kernel = model.discriminator.head.kernel.numpy()[:, 0]
    terms = model.discriminator_terms(tf.constant(points(6)), tf.constant(0, tf.int64))
    np.testing.assert_allclose(terms["gradient_penalty"],
                               np.full(6, (np.linalg.norm(kernel) - 1) ** 2), rtol=1e-5)


# Spectral normalization ------------------------------------------------------------------------

@pytest.mark.parametrize("layer, shape", [(lambda: keras.layers.Dense(7), (4, 9)),
                                          (lambda: keras.layers.Conv2D(5, 3), (2, 6, 6, 3))])
def test_spectral_norm_converges_to_the_largest_singular_value(layer, shape):
    keras.utils.set_random_seed(0)
    sn = SpectralNormalization(layer(), power_iterations=1)
    x = tf.random.normal(shape)
    sn(x)
    matrix = sn.layer.kernel.numpy().reshape(-1, sn.layer.kernel.shape[-1])
    top = np.linalg.svd(matrix, compute_uv=False)[0]
    u_before = sn.u.numpy().copy()
    sn(x, training=False)
    np.testing.assert_array_equal(sn.u.numpy(), u_before)  # inference leaves u alone
    for _ in range(100):
        sn(x, training=True)
    np.testing.assert_allclose(float(sn.sigma()), top, rtol=1e-4)
    normalized = sn.normalized_kernel().numpy().reshape(matrix.shape)
    np.testing.assert_allclose(np.linalg.svd(normalized, compute_uv=False)[0], 1.0, rtol=1e-4)
    # The layer computes with W / sigma: compare with the wrapped layer on the scaled kernel.
    expected = sn.layer(x).numpy()  # W itself
    np.testing.assert_allclose(sn(x).numpy() - sn.layer.bias.numpy(),
                               (expected - sn.layer.bias.numpy()) / float(sn.sigma()),
                               rtol=1e-4, atol=1e-6)


def test_spectral_norm_gradient_flows_through_sigma():
    # d/dW of sum(W_SN x) includes -(sum(W x) / sigma^2) d sigma / dW (Miyato et al. Eq. 12).
    keras.utils.set_random_seed(0)
    sn = SpectralNormalization(keras.layers.Dense(3, use_bias=False))
    x = tf.random.normal([4, 5])
    sn(x)
    for _ in range(200):
        sn(x, training=True)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(sn(x))
    got = tape.gradient(y, sn.layer.kernel).numpy()
    w = sn.layer.kernel.numpy()
    u_svd, s, vt = np.linalg.svd(w)
    sigma, left, right = s[0], u_svd[:, 0], vt[0]
    outer = np.outer(x.numpy().sum(0), np.ones(3))  # d sum(W x) / dW
    expected = outer / sigma - np.sum(outer * w) / sigma ** 2 * np.outer(left, right)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)


# Gradients and steps ---------------------------------------------------------------------------

MODELS = [dict(loss="non_saturating"), dict(loss="wgan_gp", n_critic=2),
          dict(loss="hinge", spectral_norm=True), dict(name="bigan")]


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: s.get("loss", s.get("name")))
def test_every_weight_of_both_players_gets_a_gradient(spec):
    model = tiny_model(**spec)
    x, step = tf.constant(images(4)), tf.constant(0, tf.int64)
    for terms_fn, key, variables in ((model.discriminator_terms, "d_loss",
                                      model.discriminator_variables),
                                     (model.generator_terms, "g_loss",
                                      model.generator_variables)):
        with tf.GradientTape() as tape:
            loss = terms_fn(x, step, training=True)[key]
        gradients = tape.gradient(loss, variables)
        assert len(variables) > 0
        # The Wasserstein losses difference away the critic's output bias, and so does the
        # hinge loss while every output lies inside its margin (-1, 1), as at initialization.
        head = getattr(model.discriminator, "head", None)
        bias = getattr(head, "layer", head).bias if head is not None else None
        for variable, gradient in zip(variables, gradients):
            assert gradient is not None, f"{key}: no gradient for {variable.path}"
            largest = float(tf.reduce_max(tf.abs(gradient)))
            if variable is bias and key == "d_loss" and model.loss_name != "non_saturating":
                assert largest < 1e-6, variable.path
            else:
                assert largest > 0, f"{key}: zero gradient for {variable.path}"
    players = {id(v) for v in model.discriminator_variables + model.generator_variables}
    assert players == {id(v) for v in model.trainable_variables}
    if isinstance(model, BiGAN):
        assert {id(v) for v in model.encoder.trainable_variables} <= {
            id(v) for v in model.generator_variables}


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: s.get("loss", s.get("name")))
def test_train_step_moves_both_players_and_test_step_changes_nothing(spec):
    model = tiny_model(**spec)
    data = tf.data.Dataset.from_tensor_slices(images(8)).batch(8)
    everything = model.variables + [v for o in model.optimizers.values() for v in o.variables]
    before = weights(everything)
    model.evaluate(data, verbose=0)
    for a, b in zip(weights(everything), before):
        np.testing.assert_array_equal(a, b)

    d_before, g_before = weights(model.discriminator_variables), weights(model.generator_variables)
    logs = model.fit(data, epochs=1, verbose=0).history
    assert max_change(weights(model.discriminator_variables), d_before) > 1e-6
    assert max_change(weights(model.generator_variables), g_before) > 1e-6
    assert int(model.discriminator_optimizer.iterations) == model.n_critic
    assert int(model.generator_optimizer.iterations) == 1
    assert set(model.watched_terms) <= set(logs)
    expected = {"d_loss", "g_loss", "d_real", "d_fake"}
    if spec.get("loss") == "wgan_gp":
        expected |= {"wasserstein", "gradient_penalty"}
    assert set(logs) == expected
    if spec.get("spectral_norm"):
        sn = [layer for layer in model.discriminator._flatten_layers()
              if isinstance(layer, SpectralNormalization)]
        assert len(sn) == 3  # both convolutions and the output unit


def test_wgan_clipping_keeps_every_critic_weight_within_c():
    clip = 0.01
    model = tiny_model(loss="wgan", n_critic=2, clip_value=clip,
                       optimizer={role: {"name": "rmsprop", "learning_rate": 0.05}
                                  for role in ("generator", "discriminator")})
    data = tf.data.Dataset.from_tensor_slices(images(24)).batch(8)
    model.fit(data, epochs=1, verbose=0)
    values = np.concatenate([np.ravel(v) for v in weights(model.discriminator_variables)])
    assert np.max(np.abs(values)) <= clip + 1e-9
    assert np.mean(np.isclose(np.abs(values), clip)) > 0.2  # the large rate hits the bounds
    generator = np.concatenate([np.ravel(v) for v in weights(model.generator_variables)])
    assert np.max(np.abs(generator)) > clip  # the generator is not clipped


def test_batch_must_split_into_critic_minibatches():
    with pytest.raises(ConfigError, match="multiple of model.n_critic"):
        from_dict({"name": "t", "data": {"name": "mnist5k", "batch_size": 12},
                   "model": {"name": "gan", "loss": "wgan"}})  # n_critic 5 by default
    with pytest.raises(ConfigError, match="use model.network=mlp"):
        from_dict({"name": "t", "data": {"name": "ring_of_gaussians"},
                   "model": {"name": "gan", "network": "dcgan"}})
    with pytest.raises(ConfigError, match="batch norm"):
        from_dict({"name": "t", "data": {"name": "mnist5k"},
                   "model": {"name": "gan", "loss": "wgan_gp",
                             "discriminator_batch_norm": True}})


# Checkpoints ------------------------------------------------------------------------------------

def test_save_load_restores_both_optimizers_and_the_power_iteration(tmp_path):
    spec = dict(loss="hinge", spectral_norm=True)
    model = tiny_model(**spec)
    data = tf.data.Dataset.from_tensor_slices(images(16)).batch(8)
    model.fit(data, epochs=1, verbose=0)
    path = str(tmp_path / "last.weights.h5")
    model.save_weights(path)

    restored = tiny_model(**spec)
    restored.build_optimizers()
    restored.load_weights(path)
    for role, optimizer in model.optimizers.items():
        other = restored.optimizers[role]
        assert int(other.iterations) == int(optimizer.iterations) == 2, role
        assert len(other.variables) == len(optimizer.variables) > 2
        for a, b in zip(other.variables, optimizer.variables):
            np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=f"{role} {a.path}")
    for a, b in zip(restored.variables, model.variables):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    if spec.get("spectral_norm"):
        u = [v for v in model.non_trainable_variables if v.path.endswith("/u")]
        assert len(u) == 3
        assert max_change(weights(u), weights(
            [v for v in tiny_model(**spec).non_trainable_variables if v.path.endswith("/u")])) > 0


# One device vs two replicas ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mirrored():
    # Collective keys away from other modules' strategies (see tests/test_distribute.py).
    saved = tf.distribute.MirroredStrategy._collective_key_base
    tf.distribute.MirroredStrategy._collective_key_base = 7400
    try:
        return tf.distribute.MirroredStrategy(CPUS)
    finally:
        tf.distribute.MirroredStrategy._collective_key_base = saved


@pytest.mark.parametrize("spec", [
    dict(data="ring_of_gaussians", network="mlp", loss="wgan_gp", n_critic=2,
         hidden_units=[16, 16]),
    # Synchronized batch norm and the spectral norm's power iteration in one critic.
    dict(loss="hinge", spectral_norm=True, discriminator_batch_norm=True),
    dict(name="bigan", data="ring_of_gaussians", network="mlp", hidden_units=[16, 16]),
], ids=["wgan_gp_points", "sn_batch_norm", "bigan_points"])
def test_two_replicas_take_the_one_device_steps(mirrored, spec):
    spec = dict(spec)
    data = spec.pop("data", "mnist5k")
    x = points(32) if data == "ring_of_gaussians" else images(32)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
    reference = tiny_model(data=data, **spec)
    replicated = tiny_model(mirrored, data=data, **spec)
    replicated.set_weights(reference.get_weights())
    initial = reference.get_weights()
    for model in (reference, replicated):
        model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    assert max_change(reference.get_weights(), initial) > 1e-4
    for a, b, variable in zip(replicated.get_weights(), reference.get_weights(),
                              reference.weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5, err_msg=variable.path)


def test_each_replica_draws_different_latents(mirrored):
    model = tiny_model(mirrored)
    seed = tf.constant([3, 4], tf.int64)
    per_replica = mirrored.experimental_local_results(
        mirrored.run(lambda: model.latent_noise(4, seed)))
    assert np.max(np.abs(per_replica[0].numpy() - per_replica[1].numpy())) > 0.1
    np.testing.assert_array_equal(np.concatenate([r.numpy() for r in per_replica]),
                                  model.latent_noise(8, seed).numpy())


# Sampling, export, configs, end to end ---------------------------------------------------------

def test_sample_scales_the_latent_noise():
    model = tiny_model()
    eps = tfdgm_random.stateless_normal([5, model.latent_dim], [7, 0])
    np.testing.assert_allclose(model.sample(5, temperature=0.5, seed=7),
                               model.generate(0.5 * eps).numpy(), atol=1e-6)
    np.testing.assert_array_equal(model.sample(5, seed=2), model.sample(5, seed=2))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(5, temperature=0.0)


@pytest.mark.parametrize("spec", [dict(loss="wgan_gp", n_critic=2),
                                  dict(name="bigan", data="ring_of_gaussians", network="mlp")],
                         ids=["gan", "bigan_points"])
def test_export_parity(spec, tmp_path):
    model = tiny_model(**spec)
    model.fit(tf.data.Dataset.from_tensor_slices(
        points(8) if spec.get("data") else images(8)).batch(8), epochs=1, verbose=0)
    path = export.export_saved_model(model, str(tmp_path), "gan", 1)  # verifies every signature
    loaded = tf.saved_model.load(path)
    expected = {"generate", "serving_default"} | ({"encode"} if isinstance(model, BiGAN) else set())
    assert set(loaded.signatures) == expected
    tflite = export.export_tflite(model, str(tmp_path / "gan.tflite"))  # verifies parity
    eps = np.random.default_rng(0).standard_normal((2, model.latent_dim)).astype(np.float32)
    runner = export.load_tflite_interpreter(tflite).get_signature_runner("generate")
    np.testing.assert_allclose(runner(eps=eps)["x"], model.generate(eps).numpy(), atol=1e-4)


def test_every_config_resolves():
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "gan", "*.yaml")))
    names = {os.path.basename(p) for p in paths}
    assert {"ns_gan_mnist5k.yaml", "wgan_mnist5k.yaml", "wgan_gp_mnist5k.yaml",
            "sn_gan_mnist5k.yaml", "bigan_mnist5k.yaml", "wgan_gp_ring.yaml",
            "wgan_gp_grid.yaml"} <= names
    for path in paths:
        config = load_config(path)
        assert config.model.name in ("gan", "bigan"), path
    wgan = load_config(os.path.join(ROOT, "configs", "gan", "wgan_mnist5k.yaml"))
    assert wgan.optimizer["discriminator"].name == "rmsprop"
    assert wgan.model.critic_steps == 5
    gp = load_config(os.path.join(ROOT, "configs", "gan", "wgan_gp_mnist5k.yaml"))
    assert (gp.optimizer["generator"].beta_1, gp.optimizer["generator"].beta_2) == (0.0, 0.9)
    assert not gp.model.uses_discriminator_batch_norm


def _run_config(tmp_path, data, epochs, **model):
    spec = {"name": "gan", "filters": 4, "latent_dim": 4, "hidden_units": [16]}
    spec.update(model)
    return from_dict({"name": "e2e", "seed": 0,
                      "data": {"name": data, "batch_size": 20, "max_examples": 100,
                               "eval_batch_size": 100},
                      "model": spec, "training": {"epochs": epochs},
                      "evaluation": {"num_samples": 200},
                      "distribute": {"strategy": "one_device"}})


def test_train_and_evaluate_writes_metrics_and_resumes(tmp_path):
    run_dir = str(tmp_path / "run")
    train_and_evaluate(_run_config(tmp_path, "mnist5k", 1, loss="wgan_gp", n_critic=2), run_dir)
    metrics = train_and_evaluate(_run_config(tmp_path, "mnist5k", 2, loss="wgan_gp",
                                             n_critic=2), run_dir)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f) == metrics
    assert metrics["epochs_trained"] == 2
    with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
        state = json.load(f)
    assert [h["epoch"] for h in state["history"]] == [1, 2]  # the second run resumed
    for key in ("test_d_loss", "test_g_loss", "test_wasserstein", "test_gradient_penalty",
                "test_mean_image_rmse"):
        assert np.isfinite(metrics[key]), key
    assert os.path.exists(os.path.join(run_dir, "samples.png"))


def test_points_run_reports_mode_coverage(tmp_path):
    run_dir = str(tmp_path / "ring")
    metrics = train_and_evaluate(_run_config(tmp_path, "ring_of_gaussians", 1, network="mlp",
                                             loss="non_saturating"), run_dir)
    assert metrics["test_num_modes"] == 8
    assert 0 <= metrics["test_modes_captured"] <= 8
    assert 0 <= metrics["test_high_quality_fraction"] <= 1
    assert np.isfinite(metrics["test_sample_log_prob"])
    assert os.path.exists(os.path.join(run_dir, "samples.png"))
