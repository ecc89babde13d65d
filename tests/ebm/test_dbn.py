"""The `dbn` model: greedy phases train one RBM at a time, the variational bound against exact
enumeration for a tiny two-layer DBN, sampling and export."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm import experiment, export
from tfdgm.data import dataset_info
from tfdgm.errors import ConfigError
from tfdgm.models.ebm import ais
from tfdgm.models.ebm.dbn import DBN, GreedyLayerPhase


def binary_images(num, seed, shape=(28, 28, 1)):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(num, *shape)) < 0.3).astype(np.float32)


def test_config_checks():
    base = {"data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 10,
                     "max_examples": 100},
            "model": {"name": "dbn", "hidden_units": [8, 4], "epochs_per_layer": 2},
            "training": {"epochs": 3}}
    with pytest.raises(ConfigError, match="training.epochs >= 4"):
        experiment.from_dict(base)
    with pytest.raises(ConfigError, match="data.binarize=dynamic"):
        experiment.from_dict({**base, "data": {"name": "mnist5k"}, "training": {"epochs": 4}})
    cfg = experiment.from_dict({**base, "training": {"epochs": 4}})
    model = experiment.build_model(cfg, dataset_info(cfg.data))
    assert [rbm.hidden_units for rbm in model.rbms] == [8, 4]


def test_greedy_phases_train_one_rbm_at_a_time():
    dbn = DBN((28, 28, 1), hidden_units=[12, 6], epochs_per_layer=1, sample_steps=3)
    dbn.build()
    dbn.compile_for_training({"model": keras.optimizers.SGD(0.1, momentum=0.9)})
    data = tf.data.Dataset.from_tensor_slices(binary_images(40, 1)).batch(10)
    snapshot = lambda: [[w.numpy().copy() for w in rbm.trainable_variables] for rbm in dbn.rbms]
    start = snapshot()
    dbn.fit(data, epochs=1, verbose=0, callbacks=[GreedyLayerPhase(1)])
    after_first = snapshot()
    assert int(dbn.layer.numpy()) == 0
    assert all(np.abs(a - b).max() > 0 for a, b in zip(after_first[0], start[0]))
    assert all(np.array_equal(a, b) for a, b in zip(after_first[1], start[1]))
    dbn.fit(data, epochs=2, initial_epoch=1, verbose=0, callbacks=[GreedyLayerPhase(1)])
    after_second = snapshot()
    assert int(dbn.layer.numpy()) == 1
    # The bottom RBM is frozen: its momentum was reset when the phase changed.
    assert all(np.array_equal(a, b) for a, b in zip(after_second[0], after_first[0]))
    assert all(np.abs(a - b).max() > 0 for a, b in zip(after_second[1], after_first[1]))
    x = dbn.sample(5, seed=2)
    assert x.shape == (5, 28, 28, 1) and np.all((x >= 0) & (x <= 1))
    np.testing.assert_array_equal(x, dbn.sample(5, seed=2))


def test_variational_bound_matches_enumeration_and_bounds_log_p():
    shape = (2, 2, 1)  # D = 4
    dbn = DBN(shape, hidden_units=[3, 2], dtype="float64")
    dbn.build()
    rng = np.random.default_rng(3)
    for rbm in dbn.rbms:
        for w in rbm.trainable_variables:
            w.assign(rng.normal(0, 1.0, w.shape))
    (w1, b1, c1), (w2, b2, c2) = [[w.numpy() for w in rbm.parameters] for rbm in dbn.rbms]
    log_z2 = ais.exact_log_partition(w2, b2, c2)
    h1_states = np.array(list(itertools.product([0.0, 1.0], repeat=3)))

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def log_bernoulli(x, p):
        return np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)

    log_p2 = -(-h1_states @ b2 - np.logaddexp(0, h1_states @ w2 + c2).sum(-1)) - log_z2
    v = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], np.float64)
    for x in v:
        q = sigmoid(x @ w1 + c1)
        log_q = log_bernoulli(h1_states, q)
        log_joint = log_bernoulli(x, sigmoid(h1_states @ w1.T + b1)) + log_p2
        exact_bound = np.sum(np.exp(log_q) * (log_joint - log_q))
        log_p = np.logaddexp.reduce(log_joint)
        assert exact_bound <= log_p
        estimate = dbn.log_likelihood_bound(tf.constant(x.reshape(1, *shape)), 20000,
                                            tf.constant([1, 2], tf.int64)).numpy()[0] - log_z2
        assert estimate == pytest.approx(exact_bound, abs=0.05)


def test_one_layer_bound_is_the_rbm_log_likelihood_and_export(tmp_path):
    dbn = DBN((28, 28, 1), hidden_units=[7])
    dbn.build()
    x = tf.constant(binary_images(3, 4))
    np.testing.assert_allclose(dbn.log_likelihood_bound(x, 2, tf.constant([0, 0], tf.int64)),
                               -dbn.rbms[0].free_energy(tf.reshape(x, [3, -1])), rtol=1e-6)
    export.export_tflite(dbn, str(tmp_path / "dbn.tflite"))  # checks parity


def test_each_greedy_phase_restarts_the_optimizer_schedules():
    from tfdgm.config import build_section
    from tfdgm.optimizers import OptimizerConfig, make_optimizer

    config = build_section(OptimizerConfig, {
        "name": "sgd", "learning_rate": 0.1, "momentum": 0.5,
        "schedule": {"name": "exponential", "decay_rate": 0.5, "unit": "steps"},
        "momentum_schedule": {"final": 0.9, "after": 2, "unit": "steps"}}, "optimizer")
    dbn = DBN((28, 28, 1), hidden_units=[12, 6], epochs_per_layer=1, sample_steps=2)
    dbn.build()
    optimizer = make_optimizer(config)
    dbn.compile_for_training({"model": optimizer})
    data = tf.data.Dataset.from_tensor_slices(binary_images(40, 5)).batch(10)  # 4 updates
    dbn.fit(data, epochs=1, verbose=0, callbacks=[GreedyLayerPhase(1)])
    assert float(optimizer.learning_rate) == pytest.approx(0.1 * 0.5 ** 4)
    assert float(optimizer.current_momentum()) == pytest.approx(0.9)
    dbn.fit(data, epochs=2, initial_epoch=1, verbose=0, callbacks=[GreedyLayerPhase(1)])
    assert int(optimizer.iterations.numpy()) == 8 and int(optimizer.schedule_start.numpy()) == 4
    assert float(optimizer.learning_rate) == pytest.approx(0.1 * 0.5 ** 4)  # not 0.5 ** 8
