"""The model contract (`tfdgm.models.base`) and the defects it fixed: temperature that means the
prior's own reduced temperature, IWAE runs monitoring their bound, free bits over the global batch,
argument-binding errors only as ConfigErrors, float64 models, and no family name in the layers
that only speak the contract."""

import dataclasses
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm import experiment
from tfdgm import random as tfdgm_random
from tfdgm.errors import ConfigError
from tfdgm.models.base import GenerativeModel, Monitor
from tfdgm.registry import MODELS, PRIORS, Registry
from tfdgm.testing.models import random_images, small_vae
from tfdgm.training import callbacks as cb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_registered_family_implements_the_contract():
    for name in MODELS.names():
        family = MODELS.get(name)
        assert issubclass(family, GenerativeModel), name
        assert dataclasses.is_dataclass(family.Options), name
        assert dataclasses.is_dataclass(family.EvaluationOptions), name
        assert "name" in {field.name for field in dataclasses.fields(family.Options)}, name
        assert family.optimizer_roles, name


def test_layers_that_speak_the_contract_name_no_family():
    """training/, export.py, the CLI and TensorBoard logging call only the contract."""
    families = MODELS.names() + ["VAE", "GAN", "RBM", "posterior", "prior", "beta"]
    paths = [os.path.join(ROOT, "tfdgm", "export.py"), os.path.join(ROOT, "tfdgm", "__main__.py")]
    paths += [os.path.join(ROOT, "tfdgm", "training", name)
              for name in os.listdir(os.path.join(ROOT, "tfdgm", "training"))
              if name.endswith(".py")]
    for path in paths:
        code = "\n".join(line.split("#")[0] for line in open(path).read().splitlines())
        for word in families:
            # Not in identifiers or strings of code (prose in docstrings may give examples).
            hits = [m for m in re.finditer(rf"\b{re.escape(word)}\b", code)
                    if not _in_docstring(code, m.start())]
            assert not hits, (path, word)


def _in_docstring(code, position):
    return code[:position].count('"""') % 2 == 1


# Temperature --------------------------------------------------------------------------------------

def test_vamp_prior_temperature_scales_the_components_noise_not_its_choice():
    model = small_vae(prior="vamp_prior", prior_options={"num_components": 5})
    eps = tf.random.stateless_normal([200, model.noise_dim], [1, 2])
    scaled = model.scale_noise(eps, 0.5)
    np.testing.assert_array_equal(scaled[:, 0], eps[:, 0])  # the same components are chosen
    np.testing.assert_allclose(scaled[:, 1:], 0.5 * eps[:, 1:], rtol=1e-6)
    k = model.prior.component(eps[:, 0])
    np.testing.assert_array_equal(model.prior.component(scaled[:, 0]), k)


def test_standard_normal_temperature_is_n_0_t2():
    model = small_vae()
    eps = tf.random.stateless_normal([7, model.noise_dim], [3, 4])
    np.testing.assert_allclose(model.scale_noise(eps, 0.7), 0.7 * eps, rtol=1e-6)
    np.testing.assert_allclose(model.sample(7, temperature=0.7, seed=3),
                               model.generate(0.7 * tfdgm_random.stateless_normal(
                                   [7, model.noise_dim], [3, 0])), atol=1e-6)


def test_temperature_without_meaning_or_out_of_range_is_refused():
    sphere = small_vae(posterior="von_mises_fisher", prior="hyperspherical_uniform", latent_dim=3)
    with pytest.raises(ConfigError, match="uniform prior on the sphere has no temperature"):
        sphere.sample(4, temperature=0.5)
    assert sphere.sample(4, temperature=1.0).shape == (4, 28, 28, 1)
    model = small_vae()
    for temperature in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="temperature must be a positive number"):
            model.sample(2, temperature=temperature)


def test_two_level_vae_scales_both_levels():
    from tfdgm.models.vae.hvae import HierarchicalVAE  # noqa: F401  (registered as hvae)
    config = experiment.from_dict({
        "data": {"binarize": "dynamic"},
        "model": {"name": "hvae", "latent_dim": 3, "encoder": {"name": "gated_mlp",
                                                               "hidden_units": [16]},
                  "decoder": {"name": "gated_mlp", "hidden_units": [16]},
                  "prior": {"name": "vamp_prior", "num_components": 4}}})
    from tfdgm.data import dataset_info
    model = experiment.build_model(config, dataset_info(config.data))
    eps = tf.random.stateless_normal([5, model.noise_dim], [5, 6])
    scaled = model.scale_noise(eps, 0.5).numpy()
    np.testing.assert_array_equal(scaled[:, 0], eps[:, 0])
    np.testing.assert_allclose(scaled[:, 1:], 0.5 * eps.numpy()[:, 1:], rtol=1e-6)


# Monitoring ---------------------------------------------------------------------------------------

def test_iwae_runs_select_checkpoints_on_their_own_bound(tmp_path):
    model = small_vae(objective="iwae", num_samples=3)
    assert model.monitor == Monitor("iwae", "max", 0)
    assert small_vae().monitor.name == "elbo"
    state = cb.RunState()
    checkpointer = cb.RunCheckpointer(str(tmp_path), state, patience=5, monitor=model.monitor,
                                      write=False)
    checkpointer.set_model(model)
    checkpointer.on_epoch_end(0, {"val_elbo": -100.0, "val_iwae": -90.0})
    checkpointer.on_epoch_end(1, {"val_elbo": -95.0, "val_iwae": -91.0})  # ELBO up, bound down
    assert state.best_epoch == 1 and state.best_value == -90.0
    assert state.epochs_without_improvement == 1


def test_minimized_monitors_and_runs_without_a_monitor(tmp_path):
    monitor = Monitor("bits_per_dim", "min")
    assert monitor.better(1.0, 1.2) and not monitor.better(1.3, 1.2) and monitor.better(5, None)
    with pytest.raises(ValueError):
        Monitor("x", "up")
    state = cb.RunState()
    checkpointer = cb.RunCheckpointer(str(tmp_path), state, patience=1, monitor=None, write=False)
    checkpointer.set_model(small_vae())
    for epoch in range(3):
        checkpointer.on_epoch_end(epoch, {"loss": 1.0})
    assert state.best_epoch == 3 and not state.stopped_early


# Free bits under tf.distribute -----------------------------------------------------------------

@pytest.fixture(scope="module")
def mirrored():
    saved = tf.distribute.MirroredStrategy._collective_key_base
    tf.distribute.MirroredStrategy._collective_key_base = 8600
    try:
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    finally:
        tf.distribute.MirroredStrategy._collective_key_base = saved


def test_free_bits_average_over_the_global_batch(mirrored):
    """Two replicas take exactly the one-device step with free bits on: the floor compares the
    KL averaged over the global batch, not over each replica's half."""
    images = random_images(64, seed=3)
    results = []
    for strategy in (tf.distribute.OneDeviceStrategy("/cpu:0"), mirrored):
        with strategy.scope():
            keras.utils.set_random_seed(1)
            model = small_vae(free_bits=0.3, seed=5)
            model.compile(optimizer=keras.optimizers.SGD(0.05))
        dataset = tf.data.Dataset.from_tensor_slices(images).batch(32)
        model.fit(dataset, epochs=2, verbose=0)
        results.append(model.get_weights())
    for one, two in zip(*results):
        np.testing.assert_allclose(one, two, atol=2e-5)


def test_free_bits_floor_uses_the_batch_mean():
    from tfdgm.models.vae import objectives
    kl = tf.constant([[0.1, 2.0], [0.5, 2.0]])  # batch means 0.3 (< floor 0.4) and 2.0
    log_px = tf.zeros([1, 2])
    terms = objectives.elbo_terms(log_px, None, None, kl_per_dim=kl, free_bits=0.4)
    np.testing.assert_allclose(terms["loss"], [0.4 + 2.0, 0.4 + 2.0], rtol=1e-6)


# Registry ---------------------------------------------------------------------------------------

def test_only_argument_binding_errors_become_config_errors():
    registry = Registry("widget")

    @registry.register("strict")
    class Strict:
        def __init__(self, size, scale=1.0):
            if scale < 0:
                raise ConfigError("widget.scale must be >= 0")
            self.size = size / 0 if size == 13 else size  # a programming error

    assert registry.build({"name": "strict", "size": 2}, "widget").size == 2
    with pytest.raises(ConfigError, match="invalid options for widget 'strict'.*size"):
        registry.build({"name": "strict"}, "widget")
    with pytest.raises(ConfigError, match="scale must be >= 0"):
        registry.build({"name": "strict", "size": 1, "scale": -1}, "widget")
    with pytest.raises(ZeroDivisionError):
        registry.build({"name": "strict", "size": 13}, "widget")


# Dtypes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized_logistic", "gaussian"])
def test_vae_builds_and_evaluates_under_a_float64_policy(likelihood):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        model = small_vae(likelihood=likelihood)
        kind = "binary" if likelihood == "bernoulli" else "grey"
        x = tf.constant(random_images(3, kind=kind), tf.float64)
        elbo = model.elbo(x)
        assert elbo.dtype == tf.float64 and np.all(np.isfinite(elbo.numpy()))
        assert all(v.dtype == "float64" for v in model.trainable_variables)
    finally:
        keras.config.set_dtype_policy(previous)
