"""tf.distribute: one device and N replicas take the same step, each replica draws its own noise,
the custom loop matches `fit`, and two worker processes train in agreement.

`conftest.py` splits the CPU into two logical devices, so `MirroredStrategy` runs two replicas
in-process. Multi-worker training runs as two fresh processes (`multi_worker_worker.py`) on
127.0.0.1 ports with `TF_CONFIG`.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import multi_worker_worker as worker
from tfdgm import random as tfdgm_random
from tfdgm.errors import ConfigError
from tfdgm.training.loop import custom_fit
from tfdgm.training.strategy import make_strategy

HERE = os.path.dirname(os.path.abspath(__file__))
CPUS = ["/cpu:0", "/cpu:1"]


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


@pytest.fixture(scope="module")
def mirrored():
    """One `MirroredStrategy` over the two logical CPUs for the whole module.

    Every `MirroredStrategy` numbers its collective groups from `1 + _collective_key_base` and the
    runtime keeps the shapes of a collective key for the life of the process, so two strategies
    that run all-reduces in one process collide ("Shape mismatch in the collective instance").
    The module shares one strategy and moves its keys away from other modules' strategies.
    """
    saved = tf.distribute.MirroredStrategy._collective_key_base
    tf.distribute.MirroredStrategy._collective_key_base = 7000
    try:
        return tf.distribute.MirroredStrategy(CPUS)
    finally:
        tf.distribute.MirroredStrategy._collective_key_base = saved


def make_model(strategy, initial_weights=None, posterior="diagonal_gaussian", optimizer="adam"):
    """The test VAE built and compiled in `strategy`'s scope, with the given weights."""
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    with strategy.scope():
        model = worker.build_vae(posterior)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        model.compile(optimizer=optimizers[optimizer](worker.LEARNING_RATE))
    return model


def train_data():
    return worker.make_dataset(worker.binary_images(worker.TRAIN_EXAMPLES, 1))


def validation_data():
    return worker.make_dataset(worker.binary_images(worker.VALIDATION_EXAMPLES, 2))


def assert_weights_close(actual, expected, atol):
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, e, rtol=0, atol=atol, err_msg=f"weight {i}")


def max_change(after, before):
    """The largest absolute change of a float weight (not counters such as `eval_step`)."""
    return max(float(np.max(np.abs(a - b))) for a, b in zip(after, before)
               if np.issubdtype(np.asarray(a).dtype, np.floating))


class Recorder(keras.callbacks.Callback):
    """Records the hooks called and the logs they got."""

    def __init__(self, stop_after_epoch=None):
        super().__init__()
        self.events, self.batch_logs, self.epoch_logs = [], [], []
        self.stop_after_epoch = stop_after_epoch

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch}")
        self.epoch_logs.append(dict(logs))
        if epoch == self.stop_after_epoch:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.events.append("train_end")


# Strategy from the config --------------------------------------------------------------------

def test_make_strategy(monkeypatch):
    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        strategy = make_strategy("auto")
        assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
        assert strategy.num_replicas_in_sync == 1
    assert isinstance(make_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    strategy = make_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == (len(gpus) if gpus else 2)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    with pytest.raises(ConfigError, match="unknown strategy"):
        make_strategy("parameter_server")


# Noise ----------------------------------------------------------------------------------------

def test_each_replica_draws_its_own_slice_of_the_global_noise(mirrored):
    strategy = mirrored
    samples, local_batch, dim = 3, 4, 5
    seed = tf.constant([11, 7], tf.int64)

    def draw():
        return tfdgm_random.normal([samples, local_batch, dim], seed, batch_axis=1)

    # The one-device draw for the global batch (outside any replica context: one replica).
    global_noise = tfdgm_random.normal([samples, 2 * local_batch, dim], seed, batch_axis=1)
    for run in (strategy.run, tf.function(strategy.run)):
        per_replica = strategy.experimental_local_results(run(draw))
        assert len(per_replica) == 2
        first, second = (v.numpy() for v in per_replica)
        assert first.shape == (samples, local_batch, dim)
        assert np.max(np.abs(first - second)) > 0.1  # different noise on each replica
        np.testing.assert_array_equal(np.concatenate([first, second], axis=1),
                                      global_noise.numpy())

    # Samplers that cannot slice the global batch fold the replica id into the seed.
    seeds = strategy.experimental_local_results(
        strategy.run(lambda: tfdgm_random.replica_seed(seed)))
    assert not np.array_equal(seeds[0].numpy(), seeds[1].numpy())


# One device vs two replicas with model.fit ----------------------------------------------------

# Adam's step hardly depends on the gradient's scale (without the loss scaling the replicas'
# summed gradient is twice one device's: 1.5e-4 away after 4 steps), SGD's does (3e-3 away).
@pytest.mark.parametrize("posterior, optimizer", [("diagonal_gaussian", "adam"),
                                                  ("full_covariance_gaussian", "adam"),
                                                  ("diagonal_gaussian", "sgd")])
def test_mirrored_fit_takes_the_one_device_steps(mirrored, posterior, optimizer):
    reference = make_model(one_device(), posterior=posterior, optimizer=optimizer)
    initial = reference.get_weights()
    replicated = make_model(mirrored, initial, posterior=posterior, optimizer=optimizer)
    assert replicated.distribute_strategy.num_replicas_in_sync == 2

    for model in (reference, replicated):
        model.fit(train_data(), epochs=1, shuffle=False, verbose=0)
        assert int(model.optimizer.iterations.numpy()) == worker.TRAIN_EXAMPLES // worker.BATCH_SIZE

    assert max_change(reference.get_weights(), initial) > 1e-3
    assert_weights_close(replicated.get_weights(), reference.get_weights(), atol=1e-5)


# custom_fit vs fit ----------------------------------------------------------------------------

def test_custom_fit_matches_fit_under_mirrored_strategy(mirrored):
    strategy = mirrored
    initial = make_model(one_device()).get_weights()
    by_fit, by_loop = make_model(strategy, initial), make_model(strategy, initial)
    fit_recorder, loop_recorder = Recorder(), Recorder()

    by_fit.fit(train_data(), validation_data=validation_data(), epochs=worker.EPOCHS,
               shuffle=False, verbose=0, callbacks=[fit_recorder])
    history = custom_fit(by_loop, strategy, train_data(), validation_data(),
                         epochs=worker.EPOCHS, initial_epoch=0, steps_per_epoch=None,
                         callbacks=[loop_recorder], verbose=0)

    assert max_change(by_loop.get_weights(), initial) > 1e-3
    assert_weights_close(by_loop.get_weights(), by_fit.get_weights(), atol=1e-5)

    # Same hooks, same logs.
    epochs = worker.EPOCHS
    assert loop_recorder.events == fit_recorder.events == (
        ["train_begin"] + [f"epoch_{when} {e}" for e in range(epochs) for when in ("begin", "end")]
        + ["train_end"])
    steps = worker.TRAIN_EXAMPLES // worker.BATCH_SIZE
    assert len(loop_recorder.batch_logs) == len(fit_recorder.batch_logs) == epochs * steps
    metrics = {"loss", "elbo", "reconstruction", "kl"}
    assert set(loop_recorder.batch_logs[0]) == metrics
    for loop_logs, fit_logs in zip(loop_recorder.epoch_logs, fit_recorder.epoch_logs):
        assert set(loop_logs) == set(fit_logs) == metrics | {f"val_{m}" for m in metrics}
        for key in fit_logs:
            np.testing.assert_allclose(loop_logs[key], fit_logs[key], rtol=1e-5, err_msg=key)
    assert set(history.history) == set(fit_recorder.epoch_logs[0])
    assert len(history.history["val_elbo"]) == epochs


def test_custom_fit_steps_per_epoch_and_stop_training():
    # steps_per_epoch carries the iterator over epochs, as fit does: 3 + 1 of the 4 batches.
    strategy = one_device()
    initial = make_model(one_device()).get_weights()
    by_fit, by_loop = make_model(one_device(), initial), make_model(strategy, initial)
    with pytest.warns(UserWarning, match="ran out of data"):
        by_fit.fit(train_data(), epochs=2, steps_per_epoch=3, verbose=0)
    with pytest.warns(UserWarning, match="ran out of data"):
        custom_fit(by_loop, strategy, train_data(), epochs=2, steps_per_epoch=3, verbose=0)
    assert int(by_loop.optimizer.iterations.numpy()) == int(by_fit.optimizer.iterations.numpy()) == 4
    assert_weights_close(by_loop.get_weights(), by_fit.get_weights(), atol=1e-6)

    # A callback stopping training ends the loop after that epoch.
    recorder = Recorder(stop_after_epoch=0)
    history = custom_fit(by_loop, strategy, train_data(), validation_data(), epochs=3,
                         callbacks=[recorder], verbose=0)
    assert recorder.events == ["train_begin", "epoch_begin 0", "epoch_end 0", "train_end"]
    assert len(history.history["elbo"]) == 1


# Two worker processes -------------------------------------------------------------------------

def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (None if none can be bound)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    except OSError:
        return None
    finally:
        for s in sockets:
            s.close()


def start_workers(initial_path, output_paths):
    """Starts one `multi_worker_worker.py` process per output path, as a 127.0.0.1 cluster."""
    ports = free_ports(len(output_paths))
    if ports is None:
        pytest.skip("cannot bind TCP ports on 127.0.0.1 for the multi-worker cluster")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index, output_path in enumerate(output_paths):
        # A fresh interpreter: no logical-device split from conftest.py, no GPU.
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
                   CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "multi_worker_worker.py"), initial_path,
             output_path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def wait_for_workers(processes, timeout=240):
    """Waits for the workers; kills them and fails with their stderr if one fails or hangs."""
    outputs, failed = [], None
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=timeout))
    except subprocess.TimeoutExpired:
        failed = f"timed out after {timeout} s"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for process in processes[len(outputs):]:
            outputs.append(process.communicate())
    codes = [process.returncode for process in processes]
    if failed or any(codes):
        report = "\n".join(f"--- worker {i} (exit {code}) stderr:\n{err[-6000:]}"
                           for i, (code, (_, err)) in enumerate(zip(codes, outputs)))
        pytest.fail(f"multi-worker training failed ({failed or f'exit codes {codes}'}):\n{report}")


def test_two_workers_train_in_agreement(tmp_path):
    strategy = one_device()
    reference = make_model(strategy)
    initial = reference.get_weights()
    initial_path = str(tmp_path / "initial.npz")
    np.savez(initial_path, **{f"w{i}": w for i, w in enumerate(initial)})
    output_paths = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    processes = start_workers(initial_path, output_paths)
    try:
        # Meanwhile, the same global batches on one device.
        history = custom_fit(reference, strategy, train_data(), validation_data(),
                             epochs=worker.EPOCHS, callbacks=[], verbose=0)
    except BaseException:
        for process in processes:
            process.kill()
        raise
    wait_for_workers(processes)

    results = [np.load(path) for path in output_paths]
    weights = [[r[f"w{i}"] for i in range(len(initial))] for r in results]
    steps = worker.EPOCHS * worker.TRAIN_EXAMPLES // worker.BATCH_SIZE
    assert [int(r["steps"]) for r in results] == [steps, steps]
    assert max_change(weights[0], initial) > 1e-3
    assert_weights_close(weights[1], weights[0], atol=1e-6)

    # One device took the same steps: the workers sum the gradients of their halves of each
    # global batch with an all-reduce, one device sums the whole batch: equal up to rounding
    # (measured: 4e-8).
    assert_weights_close(weights[0], reference.get_weights(), atol=1e-5)
    for key, values in history.history.items():
        # Both workers log the metrics all-reduced over the cluster.
        np.testing.assert_allclose(results[1][f"logs_{key}"], results[0][f"logs_{key}"],
                                   rtol=1e-6, err_msg=key)
        # Training metrics are global-batch means of the same steps. Validation draws its noise
        # with the replica id folded into the seed (`VAE.test_step` uses `replica_seed`), so
        # the val_ ELBOs are other Monte Carlo estimates than one device's: close, not equal.
        rtol = 1e-2 if key.startswith("val_") else 1e-4
        np.testing.assert_allclose(results[0][f"logs_{key}"], values, rtol=rtol, err_msg=key)


def test_two_workers_through_the_command_line_train_evaluate_and_exit_0(tmp_path):
    """`python -m tfdgm train` on two workers with TF_CONFIG: the strategy is created before any
    device is listed, both workers train, the chief evaluates alone while the other waits, and
    both exit 0 with the chief's metrics.json written."""
    import yaml
    ports = free_ports(2)
    if ports is None:
        pytest.skip("cannot bind TCP ports on 127.0.0.1 for the multi-worker cluster")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "two_workers",
        "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50,
                 "eval_batch_size": 100, "max_examples": 200},
        "model": {"name": "vae", "latent_dim": 3, "encoder": {"name": "mlp", "hidden_units": [16]},
                  "decoder": {"name": "mlp", "hidden_units": [16]}},
        "training": {"epochs": 1, "patience": 5},
        "evaluation": {"nll_samples": 10, "nll_chunk": 10, "nll_examples": 20,
                       "surgery_examples": 0},
        "distribute": {"strategy": "multi_worker"}}))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
                   CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfdgm", "train", "--config", str(config), "--run-dir",
             str(tmp_path / "run")], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=os.path.dirname(HERE)))
    wait_for_workers(processes, timeout=300)
    with open(tmp_path / "run" / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["epochs_trained"] == 1 and np.isfinite(metrics["test_nll"])
