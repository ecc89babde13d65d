"""Glow, RealNVP and MAF as trainable models: gradients, steps, round trip, temperature,
ActNorm state across save/load, export parity, configs, and a tiny end-to-end run."""

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
from tfdgm.flows import ActNorm
from tfdgm.models.flows import MAF, Glow, RealNVP
from tfdgm.training.train import Run, make_optimizers, restore, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPE = (8, 8, 1)
TINY = {
    "glow": lambda **kw: Glow(SHAPE, num_levels=2, num_steps=2, hidden_channels=8, **kw),
    "realnvp": lambda **kw: RealNVP(SHAPE, num_scales=2, hidden_channels=8,
                                    num_final_couplings=2, **kw),
    "maf": lambda **kw: MAF(SHAPE, num_flows=2, hidden_units=[32], **kw),
}
VARIATIONAL = dict(dequantization="variational", dequantization_steps=2, dequantization_hidden=4)


def _images(n, seed=0, shape=SHAPE):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype(np.float32) / 255.


def _model(name, lr=1e-3, **kwargs):
    keras.utils.set_random_seed(0)
    model = TINY[name](**kwargs)
    model.build()
    model.compile(optimizer=keras.optimizers.Adam(lr), run_eagerly=True)  # tracing is slower
    return model


def _perturb(model, scale=0.05, seed=0):
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(variable.numpy() + scale * rng.standard_normal(variable.shape))


def _actnorms(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, ActNorm)]


@pytest.mark.parametrize("name", ["glow", "realnvp", "maf"])
def test_every_weight_gets_a_gradient_and_train_step_moves_them(name):
    model = _model(name, **VARIATIONAL)
    x = _images(16)
    ids = [id(v) for v in model.trainable_variables]
    assert len(ids) == len(set(ids))
    for sub in (model.flow, model.dequantizer):  # every sublayer's weights are tracked
        assert {id(v) for v in sub.trainable_variables} <= set(ids)
    # One step moves the zero-initialized output layers, so every hidden weight gets a gradient.
    model.train_on_batch(x)
    before = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.bound_terms(x, tf.constant([0, 1], tf.int64))["loss"])
    gradients = tape.gradient(loss, model.trainable_variables)
    dead = [v.path for v, g in zip(model.trainable_variables, gradients)
            if g is None or not np.any(g.numpy())]
    # The LU 1x1 convolutions' lower/upper weights use only a strict triangle: their other
    # entries (and with C = 1, nothing else) get zero gradients by design, not the whole weight.
    assert not dead, dead
    model.train_on_batch(x)
    unchanged = [v.path for v, b in zip(model.trainable_variables, before)
                 if np.array_equal(v.numpy(), b)]
    assert not unchanged, unchanged
    state = [v.numpy().copy() for v in model.weights if "eval_step" not in v.path]
    model.test_on_batch(x)
    for v, b in zip([v for v in model.weights if "eval_step" not in v.path], state):
        np.testing.assert_array_equal(v.numpy(), b, err_msg=v.path)


@pytest.mark.parametrize("name", ["glow", "realnvp", "maf"])
def test_round_trip_and_temperature(name):
    model = _model(name, **VARIATIONAL)
    model.train_on_batch(_images(16))  # ActNorm initialized
    _perturb(model)
    x = _images(8, seed=1)
    error = np.max(np.abs(model.decode(model.encode(x)).numpy() - model.bin_centres(x).numpy()))
    assert error < 1e-5
    eps = tfdgm_random.stateless_normal([4, model.noise_dim], [3, 0])
    for temperature in (0.5, 1.0):
        np.testing.assert_allclose(model.sample(4, temperature, seed=3),
                                   model.decode(temperature * eps).numpy(), atol=1e-5)
    samples = model.sample(4, 0.7, seed=3)
    assert samples.shape == (4, *SHAPE) and samples.min() >= 0 and samples.max() <= 1
    if name == "glow":  # learned split/top priors: z = mean + std * T * eps at every level
        np.testing.assert_allclose(
            model.flow.sample_from_noise(eps, 0.7).numpy(),
            model.flow.sample_from_noise(0.7 * eps, 1.).numpy(), atol=1e-5)
    grids = model.image_grids(x, seed=0)
    assert sorted(grids) == ["samples_T0p5", "samples_T0p7", "samples_T0p85", "samples_T1p0"]


def test_maf_samples_through_one_trace_that_follows_the_weights_and_frees_the_model():
    import gc
    import weakref

    from tfdgm.models.flows.model import _traced_generate

    model = _model("maf")
    first = model.sample(4, 1.0, seed=1)
    for num in (4, 6, 9, 64):
        model.sample(num, 0.7, seed=2)
    assert _traced_generate(model) is _traced_generate(model)  # one function per model
    assert 1 <= _traced_generate(model).experimental_get_tracing_count() <= 2
    _perturb(model)  # the trace reads the variables, not the values at tracing
    eps = tfdgm_random.stateless_normal([4, model.noise_dim], [1, 0])
    np.testing.assert_allclose(model.sample(4, 1.0, seed=1), model.decode(eps).numpy(),
                               atol=1e-5)
    assert np.abs(model.sample(4, 1.0, seed=1) - first).max() > 1e-3
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_actnorm_initialization_survives_save_and_load(tmp_path):
    model = _model("glow", lr=0.)  # lr 0: only an initialization could move ActNorm
    model.train_on_batch(_images(16))
    path = str(tmp_path / "glow.weights.h5")
    model.save_weights(path)
    saved = [(a.shift.numpy(), a.log_scale.numpy()) for a in _actnorms(model)]
    assert saved and all(bool(a.initialized.numpy()) for a in _actnorms(model))
    restored = _model("glow", lr=0.)
    restored.build_optimizers()
    restored.load_weights(path)
    very_different = np.clip(_images(16, seed=5) * 0.1 + 0.8, 0, 1)
    restored.train_on_batch(very_different)
    for layer, (shift, log_scale) in zip(_actnorms(restored), saved):
        assert bool(layer.initialized.numpy())
        np.testing.assert_array_equal(layer.shift.numpy(), shift)
        np.testing.assert_array_equal(layer.log_scale.numpy(), log_scale)


@pytest.mark.parametrize("name", ["glow", "maf"])
def test_export_parity_and_training_after_export(name, tmp_path):
    model = _model(name)
    model.train_on_batch(_images(16))
    _perturb(model)
    path = export.export_saved_model(model, str(tmp_path / "export"), name, 1)  # verifies
    loaded = tf.saved_model.load(path)
    assert {"log_prob", "encode", "decode", "generate", "serving_default"} <= set(
        loaded.signatures)
    x = _images(3, seed=2)
    out = loaded.signatures["log_prob"](x=tf.constant(x))
    log_p, bpd = model.log_prob(x)
    np.testing.assert_allclose(out["log_prob"].numpy(), log_p.numpy(), rtol=1e-5)
    np.testing.assert_allclose(out["bits_per_dim"].numpy(), bpd.numpy(), rtol=1e-5)
    tflite = export.export_tflite(model, str(tmp_path / f"{name}.tflite"))  # verifies
    summary = export.tflite_summary(tflite)
    assert not [op for op in summary["ops"] if op.startswith("CUSTOM")]
    eps = np.random.default_rng(0).standard_normal((2, model.noise_dim)).astype(np.float32)
    interpreter = export.load_tflite_interpreter(tflite)
    runner = interpreter.get_signature_runner("generate")
    np.testing.assert_allclose(runner(eps=eps)["x"], model.generate(eps).numpy(), atol=1e-4)
    z = model.encode(x).numpy()  # decode of real codes: the inverse of the flow's density pass
    np.testing.assert_allclose(interpreter.get_signature_runner("decode")(z=z)["x"],
                               model.bin_centres(x).numpy(), atol=1e-4)
    # Exporting froze nothing for good: inverses follow the weights after more training.
    model.train_on_batch(_images(16, seed=4))
    z = model.encode(x)
    np.testing.assert_allclose(model.decode(z).numpy(), model.bin_centres(x).numpy(), atol=1e-5)


def _config(**overrides):
    raw = {"name": "flow", "data": {"name": "mnist5k", "max_examples": 100, "batch_size": 50,
                                    "eval_batch_size": 100},
           "model": {"name": "glow", "num_levels": 2, "num_steps": 2, "hidden_channels": 8,
                     **VARIATIONAL},
           "training": {"epochs": 1}, "evaluation": {"dequantization_samples": 4,
                                                     "iw_examples": 20,
                                                     "round_trip_examples": 20},
           "distribute": {"strategy": "one_device"}}
    for key, value in overrides.items():
        raw[key] = {**raw[key], **value}
    return from_dict(raw)


def test_config_refuses_binary_data_and_bad_shapes():
    with pytest.raises(ConfigError, match="binarize must be none"):
        _config(data={"binarize": "dynamic"})
    with pytest.raises(ConfigError, match="divisible by 8"):
        _config(model={"num_levels": 3})
    with pytest.raises(ConfigError, match="n_bits"):
        _config(model={"n_bits": 9})


def test_every_config_resolves():
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "flows", "*.yaml")))
    names = {os.path.basename(p) for p in paths}
    assert {"realnvp_fashion_mnist.yaml", "glow_fashion_mnist.yaml", "maf5_fashion_mnist.yaml",
            "maf10_fashion_mnist.yaml", "glow_mnist_paper.yaml",
            "realnvp_mnist_paper.yaml"} <= names
    dequantizations = set()
    for path in paths:
        config = load_config(path)
        assert config.model.name in ("glow", "realnvp", "maf"), path
        dequantizations.add(config.model.dequantization)
    assert dequantizations == {"uniform", "variational"}
    assert load_config(os.path.join(ROOT, "configs", "flows", "maf10_fashion_mnist.yaml")
                       ).model.num_flows == 10


def test_train_and_evaluate_writes_metrics_and_resumes(tmp_path):
    run_dir = str(tmp_path / "run")
    train_and_evaluate(_config(), run_dir)
    metrics = train_and_evaluate(_config(training={"epochs": 2}), run_dir)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f) == metrics
    with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
        assert [h["epoch"] for h in json.load(f)["history"]] == [1, 2]  # resumed
    assert 0 < metrics["test_bits_per_dim"] < 9
    assert metrics["test_bits_per_dim_iw"] <= metrics["test_bits_per_dim_iw_1"] + 1e-6
    assert metrics["test_round_trip_max_abs_error"] < 1e-4
    for name in ("samples_T0p5", "samples_T0p7", "samples_T0p85", "samples_T1p0"):
        assert os.path.exists(os.path.join(run_dir, f"{name}.png"))
    config = _config(training={"epochs": 2})
    model = build_model(config, dataset_info(config.data))
    model.compile_for_training(make_optimizers(model, config.optimizer))
    restore(model, Run(run_dir).checkpoint("last"))
    assert all(bool(layer.initialized.numpy()) for layer in _actnorms(model))
