"""`training.jit_compile`: the XLA decision of `tfdgm.training.xla` for every family, its
fallbacks (an op XLA cannot compile, two replicas), what `true` does there, that deciding
changes nothing in the run, and that XLA and plain steps compute the same bound."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm import experiment
from tfdgm import random as tfdgm_random
from tfdgm.errors import ConfigError
from tfdgm.models.base import GenerativeModel
from tfdgm.training import xla
from tfdgm.training.train import load_training_datasets, run_optimizers, train_and_evaluate

DATA = {"name": "mnist5k", "batch_size": 20, "eval_batch_size": 50, "max_examples": 100}
BINARY = {**DATA, "binarize": "dynamic"}
MLP = {"latent_dim": 4, "encoder": {"name": "mlp", "hidden_units": [16]},
       "decoder": {"name": "mlp", "hidden_units": [16]}}
SPHERE = {"prior": {"name": "hyperspherical_uniform"}}
FAMILIES = {  # config, whether `auto` compiles it with XLA on a CPU
    "vae_gaussian": ({"data": BINARY, "model": {"name": "vae", **MLP}}, True),
    "vae_von_mises_fisher": ({"data": BINARY, "model": {
        "name": "vae", **MLP, **SPHERE, "posterior": {"name": "von_mises_fisher"}}}, True),
    "vae_power_spherical": ({"data": BINARY, "model": {
        "name": "vae", **MLP, **SPHERE, "posterior": {"name": "power_spherical"}}}, True),
    "maf": ({"data": DATA, "model": {"name": "maf", "num_flows": 1, "hidden_units": [16]}}, True),
    "glow": ({"data": DATA, "model": {"name": "glow", "num_levels": 2, "num_steps": 1,
                                      "hidden_channels": 8}}, False),
    "realnvp": ({"data": DATA, "model": {"name": "realnvp", "num_scales": 1,
                                         "hidden_channels": 8, "num_final_couplings": 1}}, False),
    "wgan_gp": ({"data": DATA, "model": {"name": "gan", "loss": "wgan_gp", "network": "mlp",
                                         "latent_dim": 4, "n_critic": 2}}, True),
    "dcgan": ({"data": DATA, "model": {"name": "gan", "network": "dcgan", "latent_dim": 4}},
              False),
    "bigan": ({"data": DATA, "model": {"name": "bigan", "network": "mlp", "latent_dim": 4}},
              True),
    "rbm": ({"data": BINARY, "model": {"name": "rbm", "hidden_units": 16},
             "optimizer": {"name": "sgd", "learning_rate": 0.05}}, True),
    "dbn": ({"data": BINARY, "model": {"name": "dbn", "hidden_units": [16, 8],
                                       "epochs_per_layer": 1},
             "optimizer": {"name": "sgd", "learning_rate": 0.05}}, True),
}


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def built(raw, strategy):
    """The model, datasets and config of `raw`, compiled (without XLA) in `strategy`."""
    config = experiment.from_dict({"name": "xla", **raw})
    datasets = load_training_datasets(config, 0)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = experiment.build_model(config, datasets.info)
        model.compile_for_training(run_optimizers(model, config), jit_compile=False)
    return model, datasets, config


def every_array(model):
    """Every variable the run owns: the model's (metrics included) and every optimizer's."""
    variables = list(model.variables) + [v for optimizer in model.optimizers.values()
                                         for v in optimizer.variables]
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"vae_von_mises_fisher"}))
def test_auto_compiles_each_family_where_it_pays_and_changes_nothing(family):
    raw, compiles = FAMILIES[family]
    strategy = one_device()
    model, datasets, _ = built(raw, strategy)
    with strategy.scope():
        model.build_optimizers()
    before = every_array(model)
    with strategy.scope():
        decision = xla.select(model, strategy, "auto", datasets.train, datasets.validation)
    assert (decision.train, decision.test) == (compiles, compiles), decision
    if not compiles:
        assert "convolutions (Conv2D" in decision.describe()
    after = every_array(model)
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert model.jit_compile == compiles


def test_forced_xla_compiles_convolutions_and_trains():
    strategy = one_device()
    model, datasets, _ = built(FAMILIES["realnvp"][0], strategy)
    with strategy.scope():
        decision = xla.select(model, strategy, True, datasets.train, datasets.validation)
    assert decision.train and decision.test
    history = model.fit(datasets.train, steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


class GammaNoiseScale(GenerativeModel):
    """A one-weight model whose step draws `tf.random.stateless_gamma`, which XLA cannot
    compile: fits `s` in `x ~ s * Gamma(2, 1)` by least squares."""

    def __init__(self):
        super().__init__()
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, x):
        return self.scale * x

    def _loss(self, x):
        noise = tf.random.stateless_gamma(tf.shape(x), seed=[1, 2], alpha=2.0)
        return tf.reduce_mean(tf.square(self.scale * noise - x))

    def train_step(self, x):
        with tf.GradientTape() as tape:
            loss = self._loss(x)
        gradients = tape.gradient(loss, [self.scale])
        self.optimizer.apply_gradients(zip(gradients, [self.scale]))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, x):
        self.loss_tracker.update_state(self._loss(x))
        return {"loss": self.loss_tracker.result()}


def test_a_step_xla_cannot_compile_falls_back_naming_the_op_and_true_refuses_it():
    strategy = one_device()
    data = tf.data.Dataset.from_tensor_slices(np.full([64, 3], 2.0, np.float32)).batch(16)
    with strategy.scope():
        model = GammaNoiseScale()
        model.compile_for_training({"model": keras.optimizers.SGD(0.01)})
        decision = xla.select(model, strategy, "auto", data, data)
    assert not decision.train and not decision.test
    assert decision.describe() == ("XLA: off, the training step uses StatelessRandomGammaV3, "
                                   "which XLA cannot compile for CPU")
    model.fit(data, epochs=1, verbose=0)  # the plain step trains
    assert float(model.scale.numpy()) != 1.0
    with pytest.raises(ConfigError, match="training.jit_compile: true, but the training step "
                                          "uses StatelessRandomGammaV3"):
        xla.select(model, strategy, True, data, data)


@pytest.fixture(scope="module")
def mirrored():
    saved = tf.distribute.MirroredStrategy._collective_key_base
    tf.distribute.MirroredStrategy._collective_key_base = 9300
    try:
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    finally:
        tf.distribute.MirroredStrategy._collective_key_base = saved


TINY_RUN = {"name": "xla_run", "data": {**BINARY, "max_examples": 200},
            "model": {"name": "vae", **MLP, "objective": {"warmup_epochs": 0}},
            "training": {"epochs": 1},  # 10 steps: rule 2 comes after the strategy's
            "evaluation": {"nll_samples": 0, "surgery_examples": 0}}


def test_two_replicas_train_without_xla_saying_why_and_true_is_refused(mirrored, tmp_path,
                                                                       capsys):
    metrics = train_and_evaluate(experiment.from_dict(TINY_RUN), str(tmp_path / "auto"),
                                 strategy=mirrored)
    out = capsys.readouterr().out
    assert ("XLA: off, MirroredStrategy runs the step on 2 replicas and XLA compiles a step "
            "for one device") in out
    assert metrics["xla_training_step"] is False and np.isfinite(metrics["test_elbo"])
    assert metrics["steps_per_execution"] == 1  # keras#19246: one step a call on 2 replicas
    forced = experiment.from_dict({**TINY_RUN, "training": {"epochs": 1, "jit_compile": True}})
    with pytest.raises(ConfigError, match="jit_compile: true, but MirroredStrategy runs"):
        train_and_evaluate(forced, str(tmp_path / "forced"), strategy=mirrored)


def test_von_mises_fisher_model_trains_with_xla_under_auto(capsys):
    """The vMF sampler (Wood's rejection with uniform-on-sphere proposals, no gamma draws)
    compiles, so `auto` trains the S-VAE with XLA."""
    strategy = one_device()
    model, datasets, _ = built(FAMILIES["vae_von_mises_fisher"][0], strategy)
    with strategy.scope():
        model.build_optimizers()
        before = every_array(model)
        decision = xla.select(model, strategy, "auto", datasets.train, datasets.validation)
    assert decision.describe() == "XLA: on (training and evaluation steps compiled)"
    for a, b in zip(before, every_array(model)):
        np.testing.assert_array_equal(a, b)
    history = model.fit(datasets.train, steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert model.optimizer.iterations.numpy() == 2


def test_short_runs_are_not_compiled_and_a_resumption_keeps_its_start_s_decision():
    strategy = one_device()
    model, datasets, _ = built(FAMILIES["vae_gaussian"][0], strategy)
    with strategy.scope():
        short = xla.select(model, strategy, "auto", datasets.train, datasets.validation,
                           run_steps=xla.MIN_STEPS - 1)
        assert not short.train and "too few to repay" in short.describe()
        assert model.jit_compile is False
        kept = xla.select(model, strategy, "auto", datasets.train, datasets.validation,
                          run_steps=10, previous={"train": True, "test": True, "reason": ""})
        assert kept.train and kept.test and model.jit_compile is True
        kept_off = xla.select(model, strategy, "auto", datasets.train, datasets.validation,
                              run_steps=10 ** 6, previous=short.record())
        assert not kept_off.train and "decided at the run's start" in kept_off.describe()
        forced = xla.select(model, strategy, True, datasets.train, datasets.validation,
                            run_steps=10)
    assert forced.train and forced.test


def _evaluation(model, data, jit):
    """The ELBO of `data` by the plain or the XLA evaluation step, from evaluation counter 0."""
    model.jit_compile = jit
    model.make_test_function(force=True)
    model.eval_step.assign(0)
    return model.evaluate(data, verbose=0, return_dict=True)["elbo"]


def test_xla_and_plain_steps_give_the_same_elbo_to_float_noise():
    """The ELBO of the validation split by the XLA-compiled and the plain evaluation step.

    Both draw their noise from the same Philox bits (`tfdgm.random`), so they agree to
    floating-point noise; a second evaluation draws fresh noise (the model's evaluation counter),
    and differs by Monte Carlo error, which the agreement must be far below."""
    strategy = one_device()
    model, datasets, _ = built(FAMILIES["vae_gaussian"][0], strategy)
    data = datasets.validation
    plain = _evaluation(model, data, False)
    compiled = _evaluation(model, data, True)
    np.testing.assert_allclose(compiled, plain, rtol=1e-5)
    fresh = model.evaluate(data, verbose=0, return_dict=True)["elbo"]  # counter now 1: new noise
    assert abs(fresh - plain) > 100 * abs(compiled - plain)


def test_tensorflow_float_samplers_differ_under_xla_but_the_library_noise_does_not():
    """Pins the TensorFlow behaviour `tfdgm.random` works around: the same seed gives other
    floats from `tf.random.stateless_normal` inside an XLA cluster, the same uint32 bits, and so
    the same `tfdgm.random` noise (to the rounding of Box-Muller's `log`, `cos`, `sin`)."""
    seed = tf.constant([1, 2], tf.int64)
    tf_normal = lambda s: tf.random.stateless_normal([64], s)  # noqa: E731
    assert not np.allclose(tf_normal(seed), tf.function(tf_normal, jit_compile=True)(seed))
    bits = tfdgm_random.uniform_bits
    np.testing.assert_array_equal(bits([64], seed),
                                  tf.function(bits, jit_compile=True)([64], seed))
    for sampler in (tfdgm_random.stateless_uniform, tfdgm_random.stateless_normal):
        np.testing.assert_allclose(tf.function(sampler, jit_compile=True)([64], seed),
                                   sampler([64], seed), rtol=1e-6, atol=1e-6)
