"""`training.steps_per_execution`: what `auto` and an integer choose, the errors for settings that
cannot work, and that several steps a call change nothing of a run: weights, optimizer states,
metrics and noise after an epoch are those of one step a call, with XLA (VAE, RBM, WGAN-GP) and
without (Glow: convolutions on a CPU), and a run resumed with another setting ends where an
uninterrupted one does."""

import json

import keras
import numpy as np
import pytest

from tfdgm import config as config_lib
from tfdgm import experiment
from tfdgm.errors import ConfigError
from tfdgm.training import execution, xla
from tfdgm.training.train import load_training_datasets, run_optimizers, train_and_evaluate

from test_xla import FAMILIES, every_array, one_device


@pytest.mark.parametrize("steps_per_epoch, expected", [(500, 25), (40, 20), (12, 12), (600, 30),
                                                       (37, 1), (1, 1)])
def test_auto_runs_the_largest_divisor_of_the_epoch_up_to_the_limit(steps_per_epoch, expected):
    chosen = execution.choose("auto", steps_per_epoch)
    assert chosen.steps == expected
    assert steps_per_epoch % chosen.steps == 0 and chosen.steps <= execution.AUTO_LIMIT


def test_auto_runs_one_step_a_call_on_several_replicas():
    replicated = execution.choose("auto", 500, replicas=2)
    assert replicated.steps == 1 and "2 replicas (keras#19246)" in replicated.describe()


def test_auto_runs_one_step_a_call_under_the_multi_worker_loop_even_on_one_replica():
    workers = execution.choose("auto", 500, replicas=1, multi_worker=True)
    assert workers.steps == 1 and "multi-worker loop" in workers.describe()
    with pytest.raises(ConfigError, match="the multi-worker loop runs one step a call"):
        execution.choose(4, 40, multi_worker=True)


def test_an_integer_is_used_as_given_where_it_divides_the_epoch():
    assert execution.choose(4, 500).steps == 4
    assert execution.choose(1, 7, replicas=2).steps == 1


def test_an_integer_that_does_not_divide_the_epoch_is_refused_naming_the_divisors():
    with pytest.raises(ConfigError) as error:
        execution.choose(7, 40)
    message = str(error.value)
    assert "training.steps_per_execution: 7 does not divide the 40 steps" in message
    assert "(up to 32: 1, 2, 4, 5, 8, 10, 20)" in message and "auto" in message


def test_several_steps_a_call_on_several_replicas_are_refused_naming_the_keras_issue():
    with pytest.raises(ConfigError, match="on 2 replicas, where Keras 3.15's loop .*keras#19246"):
        execution.choose(4, 40, replicas=2)


@pytest.mark.parametrize("value", ["0", "-3", "many", "true", "2.5"])
def test_settings_that_are_not_auto_or_a_positive_integer_are_refused(value):
    with pytest.raises(ConfigError, match="training.steps_per_execution: .* is neither auto nor"):
        config_lib.parse({}, [f"training.steps_per_execution={value}"])


def test_auto_is_the_default_and_integers_parse():
    assert config_lib.parse({}).training.steps_per_execution == "auto"
    assert config_lib.parse({}, ["training.steps_per_execution=AUTO"]).training \
        .steps_per_execution == "auto"
    assert config_lib.parse({}, ["training.steps_per_execution=5"]).training \
        .steps_per_execution == 5


class CallCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(batch)


def _epoch(family, steps_per_call, steps=6):
    """Every array of a model of `family` after one epoch of `steps` steps at `steps_per_call`
    steps a call (XLA-compiled where `auto` compiles the family on a CPU), and the batches the
    batch-end hook saw."""
    raw, compiles = FAMILIES[family]
    config = experiment.from_dict({"name": "execution", **raw})
    datasets = load_training_datasets(config, 0)
    strategy = one_device()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = experiment.build_model(config, datasets.info)
        model.compile_for_training(run_optimizers(model, config), jit_compile=False)
        decision = xla.select(model, strategy, compiles, datasets.train, datasets.validation)
        assert decision.train == compiles
        execution.apply(model, execution.choose(steps_per_call, steps))
        counter = CallCounter()
        model.fit(datasets.train, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False,
                  callbacks=[counter])
    return every_array(model), counter.calls


@pytest.mark.parametrize("family", ["vae_gaussian", "rbm", "wgan_gp", "glow"])
def test_several_steps_a_call_end_the_epoch_with_the_same_arrays(family):
    one, one_calls = _epoch(family, 1)
    three, three_calls = _epoch(family, 3)
    assert one_calls == [0, 1, 2, 3, 4, 5] and three_calls == [2, 5]  # the setting took effect
    assert len(one) == len(three)
    for a, b in zip(one, three):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


RUN = {
    "name": "execution",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 25, "eval_batch_size": 40,
             "max_examples": 100},
    "model": {"name": "vae", "latent_dim": 4, "encoder": {"name": "mlp", "hidden_units": [16]},
              "decoder": {"name": "mlp", "hidden_units": [16]},
              "objective": {"warmup_epochs": 2}},
    "training": {"epochs": 3},
    "evaluation": {"nll_samples": 0, "surgery_examples": 0},
}


def _run(tmp_path, name, epochs, steps_per_execution):
    config = experiment.from_dict({**RUN, "training": {
        "epochs": epochs, "steps_per_execution": steps_per_execution}})
    return train_and_evaluate(config, str(tmp_path / name))


def test_a_run_at_several_steps_a_call_and_its_resumption_at_one_end_as_one_a_call(tmp_path,
                                                                                    capsys):
    plain = _run(tmp_path, "plain", 3, 1)
    assert "1 training step a call (training.steps_per_execution)" in capsys.readouterr().out
    batched = _run(tmp_path, "batched", 3, 2)
    assert batched["steps_per_execution"] == 2 and plain["steps_per_execution"] == 1
    assert "2 training steps a call" in capsys.readouterr().out
    _run(tmp_path, "resumed", 2, 4)
    resumed = _run(tmp_path, "resumed", 3, 1)  # the setting may change on resumption
    histories = [json.loads((tmp_path / run / "checkpoints" / "state.json").read_text())
                 ["history"] for run in ("plain", "batched", "resumed")]
    for history in histories[1:]:
        assert len(history) == 3
        for a, b in zip(histories[0], history):
            assert {k: v for k, v in a.items() if k != "seconds"} == pytest.approx(
                {k: v for k, v in b.items() if k != "seconds"}, rel=1e-5)
    for metrics in (batched, resumed):
        assert metrics["test_elbo"] == pytest.approx(plain["test_elbo"], rel=1e-5)


def test_an_epoch_that_the_setting_does_not_divide_stops_the_run_before_training(tmp_path):
    with pytest.raises(ConfigError, match="does not divide the 4 steps of an epoch"):
        _run(tmp_path, "bad", 1, 3)
    assert not (tmp_path / "bad" / "checkpoints" / "last.weights.h5").exists()
