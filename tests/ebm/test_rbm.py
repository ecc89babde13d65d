"""The `rbm` model: configs, gradients, train/test steps, persistent chains in checkpoints,
one device vs two replicas, sampling, export parity and a tiny end-to-end run on mnist5k."""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm import experiment, export
from tfdgm.data import dataset_info
from tfdgm.errors import ConfigError
from tfdgm.training.train import train_and_evaluate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPUS = ["/cpu:0", "/cpu:1"]
BATCH = 8


def config(**model):
    return experiment.from_dict({
        "name": "tiny_rbm",
        "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": BATCH,
                 "max_examples": 200},
        "model": {"name": "rbm", "hidden_units": 16, "sample_steps": 5, **model},
        "optimizer": {"learning_rate": 0.1, "momentum": 0.5},
        "training": {"epochs": 1},
        "evaluation": {"ais_chains": 16, "ais_betas": 100},
    })


def build(strategy=None, initial=None, **model):
    cfg = config(**model)
    with (strategy or tf.distribute.get_strategy()).scope():
        rbm = experiment.build_model(cfg, dataset_info(cfg.data))
        if initial is not None:
            rbm.set_weights(initial)
        rbm.compile_for_training({"model": keras.optimizers.SGD(0.1, momentum=0.5)})
    return rbm


def binary_images(num, seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(num, 28, 28, 1)) < 0.3).astype(np.float32)


def randomize(rbm, seed=1):
    rng = np.random.default_rng(seed)
    for variable in rbm.rbm.weights:
        variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
    rbm.initialize_from_data(binary_images(120, seed))


@pytest.fixture(scope="module")
def mirrored():
    saved = tf.distribute.MirroredStrategy._collective_key_base
    tf.distribute.MirroredStrategy._collective_key_base = 9100
    try:
        return tf.distribute.MirroredStrategy(CPUS)
    finally:
        tf.distribute.MirroredStrategy._collective_key_base = saved


def test_every_config_resolves():
    paths = sorted(glob.glob(os.path.join(REPO, "configs", "ebm", "*.yaml")))
    assert {os.path.basename(p) for p in paths} >= {
        "rbm_cd1.yaml", "rbm_cd3.yaml", "rbm_cd25.yaml", "rbm_pcd.yaml", "dbn.yaml"}
    for path in paths:
        cfg = experiment.load_config(path)
        assert cfg.model.name in ("rbm", "dbn") and cfg.optimizer.name == "sgd"
    pcd = experiment.load_config(os.path.join(REPO, "configs/ebm/rbm_pcd.yaml"),
                                 ["data.name=static_mnist", "data.binarize=none"])
    assert pcd.model.persistent and pcd.model.hidden_units == 500


def test_grey_data_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="data.binarize=dynamic"):
        experiment.from_dict({"data": {"name": "mnist5k"}, "model": {"name": "rbm"}})
    with pytest.raises(ConfigError, match="cd_steps"):
        config(cd_steps=0)
    with pytest.raises(ConfigError, match="unknown config key"):
        config(hiden_units=3)


def test_every_weight_gets_a_gradient_and_a_train_step_moves_only_trainable_state():
    rbm = build(persistent=True)
    randomize(rbm)
    assert len(rbm.trainable_variables) == 3
    v = tf.reshape(tf.constant(binary_images(BATCH, 2)), [BATCH, -1])
    with tf.GradientTape() as tape:
        loss = rbm.cd_loss(v, rbm.negative_samples(v, tf.constant([0, 0], tf.int64)))
    grads = tape.gradient(loss, rbm.trainable_variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)

    before = [w.numpy().copy() for w in rbm.trainable_variables]
    chains = rbm.chains.numpy().copy()
    data = tf.data.Dataset.from_tensor_slices(binary_images(2 * BATCH, 3)).batch(BATCH)
    rbm.fit(data, epochs=1, verbose=0)
    after = [w.numpy() for w in rbm.trainable_variables]
    assert all(np.abs(a - b).max() > 0 for a, b in zip(after, before))
    assert np.any(rbm.chains.numpy() != chains)  # the fantasy particles moved
    results = rbm.evaluate(data, verbose=0, return_dict=True)
    assert set(results) >= {"free_energy", "reconstruction_error", "pseudo_log_likelihood"}
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(after, rbm.trainable_variables))


def test_weight_decay_adds_the_l2_gradient():
    plain, decayed = build(), build(weight_decay=0.1)
    decayed.set_weights(plain.get_weights())
    v = tf.reshape(tf.constant(binary_images(BATCH, 4)), [BATCH, -1])
    negative = tf.reshape(tf.constant(binary_images(BATCH, 5)), [BATCH, -1])
    grads = []
    for rbm in (plain, decayed):
        with tf.GradientTape() as tape:
            loss = rbm.cd_loss(v, negative)
        grads.append(tape.gradient(loss, rbm.rbm.kernel).numpy())
    np.testing.assert_allclose(grads[1] - grads[0], 0.1 * plain.rbm.kernel.numpy(), atol=1e-6)


def test_visible_biases_start_at_the_data_log_odds():
    rbm = build()
    images = binary_images(150, 6)
    rbm.initialize_from_data(images)
    p = np.clip(images.reshape(150, -1).mean(0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(rbm.rbm.visible_bias.numpy(), np.log(p / (1 - p)), atol=1e-5)
    np.testing.assert_allclose(rbm.base_rate.numpy(), rbm.rbm.visible_bias.numpy())


def test_persistent_chains_are_saved_and_restored(tmp_path):
    rbm = build(persistent=True)
    randomize(rbm, seed=7)
    data = tf.data.Dataset.from_tensor_slices(binary_images(2 * BATCH, 8)).batch(BATCH)
    rbm.fit(data, epochs=1, verbose=0)
    path = str(tmp_path / "rbm.weights.h5")
    rbm.save_weights(path)
    restored = build(persistent=True)
    restored.build_optimizers()
    restored.load_weights(path)
    for name in ("chains", "base_rate", "train_probe"):
        np.testing.assert_array_equal(getattr(restored, name).numpy(),
                                      getattr(rbm, name).numpy())
    assert np.any(restored.chains.numpy() != 0)
    # Both continue identically: chains and optimizer state (momentum) were restored.
    rbm.fit(data, epochs=1, verbose=0)
    restored.fit(data, epochs=1, verbose=0)
    np.testing.assert_allclose(restored.rbm.kernel.numpy(), rbm.rbm.kernel.numpy(), atol=1e-6)
    np.testing.assert_array_equal(restored.chains.numpy(), rbm.chains.numpy())


@pytest.mark.parametrize("persistent", [False, True])
def test_two_replicas_take_the_one_device_steps(mirrored, persistent):
    reference = build(tf.distribute.OneDeviceStrategy("/cpu:0"), persistent=persistent)
    randomize(reference, seed=9)
    initial = reference.get_weights()
    initial_kernel = reference.rbm.kernel.numpy().copy()
    replicated = build(mirrored, initial, persistent=persistent)
    assert replicated.distribute_strategy.num_replicas_in_sync == 2
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = tf.data.Dataset.from_tensor_slices(binary_images(4 * BATCH, 10)).batch(
        BATCH).with_options(options)
    for rbm in (reference, replicated):
        rbm.fit(data, epochs=1, verbose=0, shuffle=False)
    kernel = reference.rbm.kernel.numpy()
    assert np.abs(kernel - initial_kernel).max() > 1e-3
    np.testing.assert_allclose(replicated.rbm.kernel.numpy(), kernel, atol=1e-5)
    np.testing.assert_allclose(replicated.rbm.hidden_bias.numpy(),
                               reference.rbm.hidden_bias.numpy(), atol=1e-5)
    if persistent:
        np.testing.assert_array_equal(replicated.chains.numpy(), reference.chains.numpy())


def test_sample_shapes_temperatures_and_reproducibility():
    rbm = build()
    randomize(rbm, seed=11)
    x = rbm.sample(6, temperature=1.0, seed=3)
    assert x.shape == (6, 28, 28, 1) and np.all((x >= 0) & (x <= 1))
    np.testing.assert_array_equal(x, rbm.sample(6, seed=3))
    assert not np.array_equal(x, rbm.sample(6, seed=4))
    cold = rbm.sample(6, temperature=0.05, seed=3)
    # Near T = 0 the conditionals saturate: probabilities close to 0 or 1.
    assert np.mean(np.minimum(cold, 1 - cold)) < np.mean(np.minimum(x, 1 - x))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="temperature"):
            rbm.sample(2, temperature=bad)


def test_export_parity(tmp_path):
    rbm = build()
    randomize(rbm, seed=12)
    path = export.export_saved_model(rbm, str(tmp_path), "rbm", 1)  # verifies every signature
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) >= {"free_energy", "hidden_probabilities", "gibbs_step",
                                      "serving_default"}
    rng = np.random.default_rng(0)
    inputs = rbm.signatures()["gibbs_step"].example_inputs(rng, 4)
    got = loaded.signatures["gibbs_step"](**{k: tf.constant(v) for k, v in inputs.items()})
    want = rbm.signatures()["gibbs_step"].fn(**inputs)
    np.testing.assert_array_equal(got["v"].numpy(), want["v"].numpy())
    tflite = export.export_tflite(rbm, str(tmp_path / "rbm.tflite"))  # verifies parity
    assert export.tflite_summary(tflite)["signatures"] == ["hidden_probabilities"]


def test_train_and_evaluate_writes_metrics(tmp_path):
    cfg = config(persistent=True)
    metrics = train_and_evaluate(cfg, str(tmp_path / "run"))
    with open(tmp_path / "run" / "metrics.json") as f:
        saved = json.load(f)
    assert saved == metrics
    for key in ("test_log_z", "test_log_z_std_error", "test_log_likelihood",
                "test_pseudo_log_likelihood", "test_reconstruction_error", "test_free_energy"):
        assert np.isfinite(saved[key]), key
    assert saved["test_ais_chains"] == 16 and saved["test_ais_betas"] == 100
    assert saved["test_log_likelihood"] < 0
    for name in ("filters", "samples", "chains"):
        assert os.path.exists(tmp_path / "run" / f"{name}.png")
