"""The two-level hierarchical VAE (Tomczak & Welling 2018): densities against an independent
computation, gradients, steps, bounds, deterministic maps, saving, validation, and an end-to-end
run with a VampPrior on real digits (metrics.json with ELBO surgery, TensorBoard)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfdgm import experiment
from tfdgm.errors import ConfigError
from tfdgm.evaluation import importance_sampled_log_likelihood
from tfdgm.models.vae.hvae import HierarchicalVAE
from tfdgm.registry import DECODERS, ENCODERS, LIKELIHOODS, POSTERIORS, PRIORS
from tfdgm.testing.models import random_images

tfd = tfp.distributions
SEED = tf.constant([3, 4], tf.int64)
D = 3


def small_hvae(prior="vamp_prior", latent_dim=D, hidden_units=(16,), seed=0):
    keras.utils.set_random_seed(seed)
    likelihood = LIKELIHOODS.build({"name": "bernoulli"}, "likelihood")
    prior_spec = {"name": prior, **({"num_components": 4} if prior == "vamp_prior" else {})}
    net = {"name": "gated_mlp", "hidden_units": list(hidden_units)}
    model = HierarchicalVAE(
        encoder=ENCODERS.build(net, "encoder", event_shape=(28, 28, 1)),
        decoder=DECODERS.build(net, "decoder", event_shape=(28, 28, 1), params_per_pixel=1),
        posterior=POSTERIORS.build({"name": "diagonal_gaussian"}, "posterior",
                                   latent_dim=latent_dim),
        prior=PRIORS.build(prior_spec, "prior", latent_dim=latent_dim),
        likelihood=likelihood, image_shape=(28, 28, 1), seed=seed)
    model.build()
    if prior == "vamp_prior":
        raw = model.prior.pseudo_inputs_raw
        raw.assign(tf.random.stateless_uniform(raw.shape, [1, 2]))
    return model


@pytest.fixture(scope="module")
def stepped():
    """An HVAE + VampPrior after one evaluation and one short epoch of training, with the weights
    before and after."""
    model = small_hvae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = random_images(64, seed=1)
    initial = [w.numpy().copy() for w in model.trainable_weights]
    for start in (0, 32):  # eagerly: fit's tracing is exercised by the end-to-end run
        model.test_step(tf.constant(images[start:start + 32]))
    evaluated = [w.numpy().copy() for w in model.trainable_weights]
    for start in (0, 32):
        logs = model.train_step(tf.constant(images[start:start + 32]))
    assert set(logs) == {"loss", "elbo", "reconstruction", "kl"}
    return model, images, initial, evaluated


def test_every_trainable_weight_gets_a_gradient_once():
    model = small_hvae()
    variables = model.trainable_variables
    assert len({id(v) for v in variables}) == len(variables)
    assert sum(v is model.prior.pseudo_inputs_raw for v in variables) == 1
    x = tf.constant(random_images(6))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.bound_terms(x, SEED)["loss"])
    grads = tape.gradient(loss, variables)
    missing = [v.path for v, g in zip(variables, grads) if g is None or not np.any(g.numpy())]
    assert not missing, f"no gradient reaches {missing}"
    # encoder (1 gated), decoder (1 gated + output), two posterior heads, q(z1|x,z2) (3 gated),
    # p(z1|z2) (2 gated + head), p(x|z1,z2) (2 gated), pseudo-inputs.
    assert len(variables) == 4 + 6 + 4 + 4 + 12 + 8 + 4 + 8 + 1


def test_log_densities_match_an_independent_computation():
    model = small_hvae()
    x = tf.constant(random_images(5))
    q, log_px, log_pz = model.log_densities(x, 4, SEED)
    assert q.z.shape == (4, 5, 2 * D) and q.log_q.shape == log_px.shape == log_pz.shape == (4, 5)
    z1, z2 = q.z[..., :D], q.z[..., D:]
    loc2, scale2 = model.posterior.loc_and_scale(model.encoder(x))
    features1 = model._q_z1_features(model._x_features(x), z2)
    loc1, scale1 = model.z1_posterior.loc_and_scale(features1)
    log_q = (tfd.MultivariateNormalDiag(loc2, scale2).log_prob(z2)
             + tfd.MultivariateNormalDiag(loc1, scale1).log_prob(z1))
    np.testing.assert_allclose(q.log_q, log_q, rtol=1e-5, atol=1e-4)
    loc_p, scale_p = model.p_z1.loc_and_scale(model._p_z1_features(z2))
    log_p = tfd.MultivariateNormalDiag(loc_p, scale_p).log_prob(z1) + model.prior.log_prob(z2)
    np.testing.assert_allclose(log_pz, log_p, rtol=1e-5, atol=1e-4)
    logits = model._decoder_params(z1, z2)
    expected = tfd.Independent(tfd.Bernoulli(logits=logits), 3).log_prob(x)
    np.testing.assert_allclose(log_px, expected, rtol=1e-5, atol=1e-3)
    # Both levels draw fresh, distinct noise; the same seed reproduces the draw.
    again, _, _ = model.log_densities(x, 4, SEED)
    np.testing.assert_array_equal(again.z, q.z)
    assert not np.allclose(z1.numpy()[0, 0], z2.numpy()[0, 0])
    # The ELBO's KL is the Monte Carlo KL over (z1, z2).
    terms = model.bound_terms(x, SEED, num_samples=4)
    np.testing.assert_allclose(terms["kl"], tf.reduce_mean(q.log_q - log_pz, 0), rtol=1e-5)
    # log q(z | x_m) at the drawn z for every m: its diagonal is the drawn log q.
    pairwise = model.pairwise_log_q(q.z[0], x)
    assert pairwise.shape == (5, 5)
    np.testing.assert_allclose(np.diag(pairwise), q.log_q[0], rtol=1e-5, atol=1e-4)


def test_train_step_changes_weights_and_test_step_does_not(stepped):
    model, _, initial, evaluated = stepped
    assert all(np.array_equal(a, b) for a, b in zip(initial, evaluated))
    changed = [not np.allclose(a, b.numpy()) for a, b in zip(initial, model.trainable_weights)]
    assert all(changed), [w.path for w, c in zip(model.trainable_weights, changed) if not c]
    assert int(model.eval_step.numpy()) == 2


def test_importance_sampled_bounds_are_ordered(stepped):
    model, images, _, _ = stepped
    data = tf.data.Dataset.from_tensor_slices(images[:16]).batch(16)
    estimates = importance_sampled_log_likelihood(model, data, num_samples=200, chunk=200,
                                                  bound_ks=(1, 10, 100), verbose=False)
    means = {k: float(v.mean()) for k, v in estimates.items()}
    elbo = float(np.mean(model.bound_terms(tf.constant(images[:16]), SEED,
                                           num_samples=200)["elbo"]))
    assert means["iwae_1"] < means["iwae_10"] < means["iwae_100"] <= means["log_likelihood"]
    assert means["log_likelihood"] >= elbo
    assert means["iwae_1"] == pytest.approx(elbo, abs=1.0)  # L_1 is the ELBO


def test_deterministic_maps():
    model = small_hvae()
    x = tf.constant(random_images(5))
    assert model.latent_dim == 2 * D and model.noise_dim == model.prior.noise_dim + D == 2 * D + 1
    code = model.encode(x)
    assert code.shape == (5, 2 * D)
    assert model.decode(code).shape == (5, 28, 28, 1)
    assert model.decode(tf.zeros([2, 5, 2 * D])).shape == (2, 5, 28, 28, 1)
    np.testing.assert_allclose(model.reconstruct(x), model.decode(code), atol=1e-6)
    eps = tf.random.stateless_normal([7, model.noise_dim], [0, 9])
    np.testing.assert_array_equal(model.generate(eps), model.generate(eps))
    # generate = decode([mu(z2) + sigma(z2) eps_1, z2]) with z2 from the prior's noise.
    z2 = model.prior.generate(eps[:, : model.prior.noise_dim])
    loc, scale = model.p_z1.loc_and_scale(model._p_z1_features(z2))
    z1 = loc + scale * eps[:, model.prior.noise_dim:]
    np.testing.assert_allclose(model.generate(eps), model.decode(tf.concat([z1, z2], -1)),
                               atol=1e-6)
    # The z2 code is the posterior mean, the z1 code that of q(z1 | x, z2 = code_2).
    loc2, _ = model.posterior.loc_and_scale(model.encoder(x))
    np.testing.assert_allclose(code[:, D:], loc2, atol=1e-6)


def test_keras_saving_round_trip(tmp_path):
    model = small_hvae(prior="standard_normal")
    path = str(tmp_path / "hvae.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, HierarchicalVAE)
    x = tf.constant(random_images(4))
    np.testing.assert_allclose(restored.reconstruct(x), model.reconstruct(x), atol=1e-6)
    np.testing.assert_allclose(restored.elbo(x), model.elbo(x), atol=1e-4)


TINY_HVAE = {
    "name": "tiny_hvae",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 100,
             "max_examples": 300},
    "model": {"name": "hvae", "latent_dim": 4,
              "encoder": {"name": "gated_mlp", "hidden_units": [32]},
              "decoder": {"name": "gated_mlp", "hidden_units": [32]},
              "prior": {"name": "vamp_prior", "num_components": 20, "init": "training_images"},
              "objective": {"warmup_epochs": 1}},
    "optimizer": {"learning_rate": 1e-3},
    "training": {"epochs": 2, "patience": 5},
    "evaluation": {"nll_samples": 50, "nll_chunk": 25, "nll_examples": 100,
                   "surgery_examples": 300},
}


def test_config_validation():
    config = experiment.from_dict(TINY_HVAE)
    assert config.model.name == "hvae"
    with pytest.raises(ConfigError, match="free_bits"):
        experiment.from_dict({**TINY_HVAE, "model": {**TINY_HVAE["model"],
                                                     "prior": {"name": "standard_normal"},
                                                     "objective": {"free_bits": 0.5}}})
    if "von_mises_fisher" in POSTERIORS and "hyperspherical_uniform" in PRIORS:
        with pytest.raises(ConfigError, match="Euclidean posterior"):
            experiment.from_dict({**TINY_HVAE, "model": {
                **TINY_HVAE["model"], "posterior": {"name": "von_mises_fisher"},
                "prior": {"name": "hyperspherical_uniform"}}})


def test_train_and_evaluate_hvae_with_a_vamp_prior(tmp_path):
    from tfdgm.training.train import train_and_evaluate

    keras.utils.set_random_seed(0)  # the weights' initialization (the config seeds the noise)
    run_dir = str(tmp_path / "tiny_hvae")
    metrics = train_and_evaluate(experiment.from_dict(TINY_HVAE), run_dir)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f) == metrics
    assert metrics["epochs_trained"] == 2 and metrics["test_nll_examples"] == 100
    assert metrics["test_surgery_examples"] == 300
    info, marginal, average = (metrics["test_mutual_information"], metrics["test_marginal_kl"],
                               metrics["test_average_kl"])
    assert -0.05 <= info <= np.log(300) and marginal >= -0.5
    # The average KL over the test digits is the ELBO's KL term (one sample per digit each; the
    # VampPrior's log-density has heavy tails, hence the tolerance).
    assert average == pytest.approx(metrics["test_kl"], rel=0.2, abs=1.0)
    assert -metrics["test_nll"] >= metrics["test_elbo"] - 0.5
    assert "kl_per_dimension" not in metrics and 0 <= metrics["active_units"] <= 4
    events = EventAccumulator(os.path.join(run_dir, "logs", "train"),
                              size_guidance={"tensors": 0, "images": 0})
    events.Reload()
    assert len(events.Tensors("images/pseudo_inputs")) == 2
    test_events = EventAccumulator(os.path.join(run_dir, "logs", "test"),
                                   size_guidance={"tensors": 0})
    test_events.Reload()
    for tag in ("mutual_information", "marginal_kl", "average_kl", "nll"):
        assert tag in test_events.Tags()["tensors"], tag


def test_one_device_and_two_replicas_take_the_same_steps():
    """The VampPrior's pseudo-input gradient and the z1 noise keep tf.distribute's contract:
    two mirrored replicas (conftest splits the CPU) and one device agree after two Adam steps."""
    from tfdgm.training.strategy import make_strategy

    mirrored = make_strategy("mirrored")  # its own collective-key range
    assert mirrored.num_replicas_in_sync == 2
    images = tf.data.Dataset.from_tensor_slices(random_images(64, seed=2)).batch(32)
    results, initial = [], None
    for strategy in (tf.distribute.OneDeviceStrategy("/cpu:0"), mirrored):
        with strategy.scope():
            model = small_hvae()
            if initial is not None:
                model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
        initial = initial or model.get_weights()
        model.fit(images, epochs=1, verbose=0)
        results.append(model.get_weights())
    floats = [i for i, w in enumerate(initial) if np.issubdtype(np.asarray(w).dtype, np.floating)]
    moved = max(float(np.max(np.abs(results[0][i] - initial[i]))) for i in floats)
    assert moved > 1e-3
    for i in floats:
        np.testing.assert_allclose(results[1][i], results[0][i], rtol=0, atol=1e-5)
