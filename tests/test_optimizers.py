"""Learning-rate and momentum schedules: the rate and momentum of update t against their
formulas, the scheduled updates against Keras's own, config errors, and a run that is stopped
and resumed continuing its schedules exactly (TensorBoard and the history log the scheduled rate).
"""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfdgm import experiment
from tfdgm.config import build_section
from tfdgm.errors import ConfigError
from tfdgm.optimizers import (OptimizerConfig, base_learning_rate, make_optimizer,
                              restart_schedules)
from tfdgm.training.train import train_and_evaluate


def optimizer_config(**raw):
    return build_section(OptimizerConfig, raw, "optimizer")


def run_updates(optimizer, steps, gradient=1.0):
    """Applies `steps` updates of a constant gradient to one weight; returns the rate and the
    momentum each update used and the weight after each update."""
    weight = keras.Variable(np.zeros(2, np.float32))
    optimizer.build([weight])
    apply = tf.function(lambda g: optimizer.apply([g], [weight]))
    rates, momenta, weights = [], [], []
    for _ in range(steps):
        rates.append(float(optimizer.learning_rate))
        if hasattr(optimizer, "current_momentum"):
            momenta.append(float(optimizer.current_momentum()))
        apply(tf.fill([2], gradient))
        weights.append(weight.numpy()[0])
    return rates, momenta, weights


@pytest.mark.parametrize("schedule, unit, formula", [
    ({"name": "exponential", "decay_rate": 0.5, "decay_every": 2}, "steps",
     lambda u: 0.5 ** (u / 2)),
    ({"name": "exponential", "decay_rate": 0.8}, "epochs", lambda u: 0.8 ** u),
    ({"name": "cosine", "decay_length": 4, "final_factor": 0.1}, "steps",
     lambda u: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(u, 4) / 4))),
    ({"name": "cosine", "decay_length": 2}, "epochs",
     lambda u: 0.5 * (1 + math.cos(math.pi * min(u, 2) / 2))),
    ({"name": "step", "boundaries": [2, 5], "factors": [1.0, 0.1, 0.01]}, "steps",
     lambda u: 1.0 if u < 2 else 0.1 if u < 5 else 0.01),
    ({"name": "step", "boundaries": [1], "factors": [1.0, 0.25]}, "epochs",
     lambda u: 1.0 if u < 1 else 0.25),
    ({"name": "constant"}, "steps", lambda u: 1.0),
])
def test_the_rate_of_update_t_is_the_formula(schedule, unit, formula):
    steps_per_epoch = 3
    config = optimizer_config(name="adam", learning_rate=0.2, schedule={**schedule, "unit": unit})
    rates, _, _ = run_updates(make_optimizer(config, steps_per_epoch), 10)
    units = [t if unit == "steps" else t // steps_per_epoch for t in range(10)]
    np.testing.assert_allclose(rates, [0.2 * formula(u) for u in units], rtol=1e-6)
    np.testing.assert_allclose(rates, [config.learning_rate_at(t, steps_per_epoch)
                                       for t in range(10)], rtol=1e-6)


def test_momentum_switches_after_the_configured_epoch_and_sgd_follows_it():
    config = optimizer_config(name="sgd", learning_rate=0.1, momentum=0.5,
                              momentum_schedule={"final": 0.9, "after": 2})
    optimizer = make_optimizer(config, steps_per_epoch=3)
    _, momenta, weights = run_updates(optimizer, 9)
    assert momenta == [0.5] * 6 + [pytest.approx(0.9)] * 3  # epochs 1-2 (6 updates), then 0.9
    velocity, weight, expected = 0.0, 0.0, []
    for mu in [0.5] * 6 + [0.9] * 3:  # m <- mu m - lr g, w <- w + m
        velocity = mu * velocity - 0.1
        weight += velocity
        expected.append(weight)
    np.testing.assert_allclose(weights, expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "rmsprop"])
def test_a_scheduled_momentum_update_is_keras_update_at_that_momentum(name):
    """With `final` equal to the first momentum the scheduled update must be Keras's own."""
    raw = dict(name=name, learning_rate=0.05, momentum=0.7)
    scheduled = make_optimizer(optimizer_config(**raw, momentum_schedule={
        "final": 0.7, "after": 1, "unit": "steps"}))
    plain = make_optimizer(optimizer_config(**raw))
    assert type(plain) in (keras.optimizers.SGD, keras.optimizers.RMSprop)
    rng = np.random.default_rng(0)
    initial = rng.normal(size=4).astype(np.float32)
    weights = [keras.Variable(initial) for _ in range(2)]
    for optimizer, weight in ((scheduled, weights[0]), (plain, weights[1])):
        optimizer.build([weight])
    for _ in range(5):
        gradient = tf.constant(rng.normal(size=4), tf.float32)
        scheduled.apply([gradient], [weights[0]])
        plain.apply([gradient], [weights[1]])
    np.testing.assert_allclose(weights[0].numpy(), weights[1].numpy(), rtol=1e-6)


def test_momentum_slots_exist_when_only_the_final_momentum_is_positive():
    config = optimizer_config(name="sgd", learning_rate=0.1, momentum=0.0,
                              momentum_schedule={"final": 0.9, "after": 1, "unit": "steps"})
    _, momenta, weights = run_updates(make_optimizer(config), 3)
    assert momenta == [0.0, pytest.approx(0.9), pytest.approx(0.9)]
    np.testing.assert_allclose(weights, [-0.1, -0.1 - 0.19, -0.1 - 0.19 - 0.271], rtol=1e-5)


def test_setting_the_rate_sets_the_base_and_restarting_starts_the_schedules_again():
    config = optimizer_config(name="sgd", learning_rate=0.1, momentum=0.5,
                              schedule={"name": "exponential", "decay_rate": 0.5,
                                        "unit": "steps"},
                              momentum_schedule={"final": 0.9, "after": 2, "unit": "steps"})
    optimizer = make_optimizer(config)
    run_updates(optimizer, 3)
    optimizer.learning_rate = 0.01  # what a resumption with a new optimizer.learning_rate does
    assert base_learning_rate(optimizer) == pytest.approx(0.01)
    assert float(optimizer.learning_rate) == pytest.approx(0.01 * 0.5 ** 3)
    restart_schedules(optimizer)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert float(optimizer.current_momentum()) == 0.5


def test_a_schedule_in_epochs_needs_the_epoch_length():
    optimizer = make_optimizer(optimizer_config(
        name="adam", schedule={"name": "exponential", "decay_rate": 0.9}))
    with pytest.raises(ValueError, match="steps_per_epoch"):
        optimizer.learning_rate  # noqa: B018  (reading it is what fails)


@pytest.mark.parametrize("raw, message", [
    ({"schedule": {"name": "exponential"}}, "exponential schedule needs decay_rate"),
    ({"schedule": {"name": "cosine", "decay_rate": 0.5, "decay_length": 3}},
     "decay_rate belongs to the exponential schedule, not to name: cosine"),
    ({"schedule": {"name": "exponential", "decay_rate": 1.5}}, r"decay_rate must be in \(0, 1\]"),
    ({"schedule": {"name": "step", "boundaries": [5, 3], "factors": [1, 0.1, 0.01]}},
     "boundaries must be increasing"),
    ({"schedule": {"name": "step", "boundaries": [5], "factors": [1]}},
     "factors needs one more entry than boundaries"),
    ({"schedule": {"name": "linear"}}, "'linear' is not one of constant, exponential"),
    ({"schedule": {"name": "cosine", "decay_length": 3, "unit": "hours"}},
     "'hours' is not one of epochs, steps"),
    ({"schedule": {"name": "cosine", "decay_lenght": 3}}, "Did you mean 'decay_length'"),
    ({"momentum_schedule": {"final": 0.9}}, "give both final"),
    ({"momentum_schedule": {"final": 1.0, "after": 2}}, r"final must be in \[0, 1\)"),
    ({"name": "adam", "momentum_schedule": {"final": 0.9, "after": 2}},
     "adam has no momentum"),
    ({"momentum": 1.5}, r"momentum must be in \[0, 1\)"),
])
def test_bad_schedules_fail_with_the_key_and_the_fix(raw, message):
    with pytest.raises(ConfigError, match=message):
        optimizer_config(**{"name": "sgd", **raw})


def test_schedules_resolve_from_a_run_config_and_round_trip(tmp_path):
    from tfdgm import config as config_lib

    config = run_config("schedules")
    assert config.optimizer.schedule.name == "exponential"
    assert config.optimizer.momentum_schedule.final == 0.9
    path = str(tmp_path / "config.yaml")
    config_lib.dump(config, path)
    assert experiment.load_config(path) == config


EPOCHS, STEPS = 3, 2  # 100 training images in batches of 50


def run_config(name, epochs=EPOCHS, learning_rate=0.1):
    return experiment.from_dict({
        "name": name,
        "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50,
                 "max_examples": 100},
        "model": {"name": "rbm", "hidden_units": 8, "sample_steps": 2,
                  "pseudo_likelihood_coordinates": 4},
        "optimizer": {"name": "sgd", "learning_rate": learning_rate, "momentum": 0.5,
                      "schedule": {"name": "exponential", "decay_rate": 0.8, "unit": "steps"},
                      "momentum_schedule": {"final": 0.9, "after": 3, "unit": "steps"}},
        "training": {"epochs": epochs},
        "evaluation": {"ais_chains": 0},
        "distribute": {"strategy": "one_device"},
    })


def read_weights(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda key, item: arrays.__setitem__(key, item[()])
                        if isinstance(item, h5py.Dataset) else None)
    return arrays


def test_a_resumed_run_continues_its_schedules_exactly(tmp_path):
    whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
    train_and_evaluate(run_config("whole"), whole)
    train_and_evaluate(run_config("resumed", epochs=1), resumed)
    train_and_evaluate(run_config("resumed"), resumed)
    last = os.path.join("checkpoints", "last.weights.h5")
    expected, got = read_weights(os.path.join(whole, last)), read_weights(
        os.path.join(resumed, last))
    assert set(got) == set(expected)
    # iterations, base rate, schedule_start, then the momentum slots
    assert got["optimizer/vars/0"] == EPOCHS * STEPS and got["optimizer/vars/2"] == 0
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)

    # The history and TensorBoard log the rate of the next update, r 0.8^(epochs * S).
    with open(os.path.join(whole, "checkpoints", "state.json")) as f:
        history = json.load(f)["history"]
    wanted = [0.1 * 0.8 ** (epoch * STEPS) for epoch in range(1, EPOCHS + 1)]
    np.testing.assert_allclose([h["learning_rate"] for h in history], wanted, rtol=1e-6)
    events = EventAccumulator(os.path.join(whole, "logs", "train"),
                              size_guidance={"tensors": 0})
    events.Reload()
    logged = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("learning_rate")]
    np.testing.assert_allclose(logged, wanted, rtol=1e-6)


def test_a_resumption_with_a_new_rate_rescales_the_rest_of_the_schedule(tmp_path):
    run_dir = str(tmp_path / "run")
    train_and_evaluate(run_config("run", epochs=1), run_dir)
    train_and_evaluate(run_config("run", epochs=2, learning_rate=0.01), run_dir)
    with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
        history = json.load(f)["history"]
    np.testing.assert_allclose([h["learning_rate"] for h in history],
                               [0.1 * 0.8 ** STEPS, 0.01 * 0.8 ** (2 * STEPS)], rtol=1e-6)
