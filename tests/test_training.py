"""End-to-end runs on real digits (mnist5k, no internet): the run directory, TensorBoard, resuming
after Ctrl-C or kill -9, the NaN guard, and CLI errors."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tfdgm import experiment
from tfdgm.errors import NonFiniteLossError
from tfdgm.training import callbacks as cb
from tfdgm.training.train import train_and_evaluate

TINY = {
    "name": "tiny",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 100,
             "max_examples": 300},
    "model": {"name": "vae", "latent_dim": 4, "encoder": {"name": "mlp", "hidden_units": [32]},
              "decoder": {"name": "mlp", "hidden_units": [32]},
              "objective": {"warmup_epochs": 2}},
    "optimizer": {"learning_rate": 1e-3},
    "training": {"epochs": 3, "patience": 5},
    "evaluation": {"nll_samples": 50, "nll_chunk": 25, "nll_examples": 100},
}
EPOCHS = TINY["training"]["epochs"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "tiny")
    metrics = train_and_evaluate(experiment.from_dict(TINY), run_dir)
    return run_dir, metrics


def test_run_directory_holds_everything(finished_run):
    run_dir, metrics = finished_run
    for name in ("config.yaml", "metrics.json", "samples.png", "reconstructions.png",
                 "interpolation.png", "checkpoints/last.weights.h5",
                 "checkpoints/best.weights.h5", "checkpoints/state.json"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert experiment.load_config(os.path.join(run_dir, "config.yaml")) == experiment.from_dict(TINY)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        saved = json.load(f)
    assert saved == metrics
    assert saved["epochs_trained"] == EPOCHS and saved["test_nll_examples"] == 100
    assert -saved["test_nll"] >= saved["test_elbo"] - 0.5  # log p(x) estimate >= ELBO
    assert len(saved["kl_per_dimension"]) == 4 and 0 <= saved["active_units"] <= 4


def _events(run_dir, phase):
    events = EventAccumulator(os.path.join(run_dir, "logs", phase),
                              size_guidance={"tensors": 0, "images": 0, "histograms": 0})
    events.Reload()
    return events


def test_tensorboard_overlays_train_and_validation_with_one_point_per_epoch(finished_run):
    run_dir, _ = finished_run
    train, validation, test = (_events(run_dir, phase) for phase in ("train", "validation", "test"))
    metrics = ["elbo", "reconstruction", "kl", "loss"]
    for events, tags in ((train, metrics + ["beta", "learning_rate", "examples_per_second",
                                            "active_units", "kl_per_dimension",
                                            "images/samples", "images/reconstructions",
                                            "images/interpolation"]),
                         (validation, metrics)):
        for tag in tags:
            assert tag in events.Tags()["tensors"], tag
            assert len(events.Tensors(tag)) == EPOCHS, tag
    betas = [float(tf.make_ndarray(e.tensor_proto)) for e in train.Tensors("beta")]
    assert betas == [0.0, 0.5, 1.0]
    kl = tf.make_ndarray(train.Tensors("kl_per_dimension")[-1].tensor_proto)
    assert kl.ndim == 2 and kl.shape[1] == 3  # a histogram: [buckets, (left, right, count)]
    assert len(test.Tensors("nll")) == 1
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    root = _events(run_dir, "")
    records = {}
    for tag in ("_hparams_/experiment", "_hparams_/session_start_info",
                "_hparams_/session_end_info"):
        assert tag in root.Tags()["tensors"], tag
        records[tag] = plugin_data_pb2.HParamsPluginData.FromString(
            root.SummaryMetadata(tag).plugin_data.content)
    experiment_info = records["_hparams_/experiment"].experiment
    hparams = {info.name for info in experiment_info.hparam_infos}
    assert "model.latent_dim" in hparams and "optimizer.learning_rate" in hparams
    assert not [name for name in hparams if name.startswith(("evaluation.", "export."))]
    metrics = {(info.name.group, info.name.tag) for info in experiment_info.metric_infos}
    assert metrics == {("test", "nll"), ("test", "elbo"), ("validation", "elbo")}
    start = records["_hparams_/session_start_info"].session_start_info
    assert start.hparams["model.latent_dim"].number_value == 4
    assert records["_hparams_/session_end_info"].session_end_info.status == api_pb2.STATUS_SUCCESS
    grid = tf.make_ndarray(train.Tensors("images/samples")[0].tensor_proto)
    assert grid.shape[0] == 3  # width, height, one PNG-encoded grid


def test_rerun_resumes_instead_of_starting_over(finished_run):
    run_dir, _ = finished_run
    with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
        before = json.load(f)
    config = experiment.from_dict({**TINY, "training": {**TINY["training"], "epochs": EPOCHS + 1}})
    metrics = train_and_evaluate(config, run_dir)
    with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
        after = json.load(f)
    assert after["epochs_done"] == EPOCHS + 1 and metrics["epochs_trained"] == EPOCHS + 1
    assert after["history"][:EPOCHS] == before["history"]


def test_rerun_with_a_different_experiment_is_refused(finished_run):
    run_dir, _ = finished_run
    config = experiment.from_dict({**TINY, "model": {**TINY["model"], "latent_dim": 5}})
    with pytest.raises(Exception, match="different config .*model.latent_dim"):
        train_and_evaluate(config, run_dir)


def _checkpoint_arrays(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return arrays


def test_a_stopped_and_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    """Resumption is exact: data order, dynamic-binarization draws, noise and optimizer state
    continue as if the process had never stopped (this fails if `restore` did nothing, or if
    the data stream restarted at epoch 0's order)."""
    raw = {**TINY, "name": "exact",
           "evaluation": {"nll_samples": 0, "surgery_examples": 0}}
    whole = experiment.from_dict(raw)
    first_part = experiment.from_dict({**raw, "training": {**raw["training"], "epochs": 2}})
    train_and_evaluate(whole, str(tmp_path / "uninterrupted"))
    train_and_evaluate(first_part, str(tmp_path / "resumed"))
    train_and_evaluate(whole, str(tmp_path / "resumed"))
    want = _checkpoint_arrays(tmp_path / "uninterrupted" / "checkpoints" / cb.LAST)
    got = _checkpoint_arrays(tmp_path / "resumed" / "checkpoints" / cb.LAST)
    assert sorted(want) == sorted(got) and len(want) > 10
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    histories = [json.loads((tmp_path / run / "checkpoints" / "state.json").read_text())
                 for run in ("uninterrupted", "resumed")]
    for a, b in zip(*(h["history"] for h in histories)):
        assert a["val_elbo"] == pytest.approx(b["val_elbo"], rel=1e-5)


class _Poison(keras.callbacks.Callback):
    """Writes a NaN into a decoder weight at a given epoch and batch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            kernel = self.model.decoder.out.kernel
            kernel.assign(tf.fill(kernel.shape, float("nan")))


def test_nan_stops_training_naming_epoch_and_term_and_keeps_the_checkpoint(tmp_path):
    """The guard checks the epoch's means at its end (no per-batch host work): it stops before
    the checkpointer writes anything from the NaN state."""
    from tfdgm.testing.models import random_images, small_vae
    model = small_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    state = cb.RunState()
    guard = cb.NonFiniteGuard(str(tmp_path), model.watched_terms)
    callbacks = [guard, _Poison(epoch=1, batch=2),
                 cb.RunCheckpointer(str(tmp_path), state, patience=10, monitor=model.monitor)]
    for callback in (guard, callbacks[2], cb.StartupTimer(state, 0.0)):  # no batch hooks
        for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_end"):
            assert getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook)
    images = random_images(128)
    with pytest.raises(NonFiniteLossError) as error:
        model.fit(images, batch_size=32, epochs=3, callbacks=callbacks, verbose=0)
    message = str(error.value)
    assert "after epoch 2 (optimizer steps 5 to 8)" in message
    assert "'reconstruction' term" in message
    assert "checkpoint" in message and "intact" in message
    assert state.epochs_done == 1
    restored = small_vae()
    restored.load_weights(str(tmp_path / cb.LAST))
    assert all(np.all(np.isfinite(w)) for w in restored.get_weights())


def _cli(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "tfdgm", *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


@pytest.mark.parametrize("args, message", [
    (["--set", "model.latnt_dim=3"], "model.latnt_dim: unknown config key. Did you mean 'latent_dim'?"),
    (["--set", "data.name=static_mnist", "--set", "data.binarize=none",
      "--set", "data.data_dir=/nonexistent"], "binarized_mnist.npz"),
    (["--set", "model.likelihood.name=bernoulli", "--set", "data.binarize=none"],
     "models binary data but dataset 'mnist5k' is grey"),
])
def test_cli_bad_input_exits_2_with_one_clear_message(args, message, tmp_path):
    result = _cli("train", "--config", "configs/quickstart.yaml", "--run-dir",
                  str(tmp_path / "run"), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_kill_9_mid_training_then_rerun_resumes(tmp_path):
    config_path = tmp_path / "tiny.yaml"
    import yaml
    config_path.write_text(yaml.safe_dump({**TINY, "training": {"epochs": 50, "patience": 50}}))
    run_dir = tmp_path / "run"
    state_path = run_dir / "checkpoints" / "state.json"
    process = subprocess.Popen([sys.executable, "-m", "tfdgm", "train", "--config",
                                str(config_path), "--run-dir", str(run_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        if state_path.exists() and json.loads(state_path.read_text())["epochs_done"] >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = json.loads(state_path.read_text())["epochs_done"]
    assert 2 <= done < 50
    result = _cli("train", "--config", str(config_path), "--run-dir", str(run_dir),
                  "--set", f"training.epochs={done + 1}", "--set", "evaluation.nll_samples=0")
    assert result.returncode == 0, result.stderr
    assert f"Resuming {run_dir} after epoch {done}" in result.stdout
    final = json.loads(state_path.read_text())
    assert final["epochs_done"] == done + 1 and len(final["history"]) == done + 1


def test_cli_evaluate_sample_and_export_a_finished_run(finished_run, tmp_path, capsys):
    import shutil
    from tfdgm.__main__ import main
    run_dir = str(tmp_path / "copy")
    shutil.copytree(finished_run[0], run_dir)
    assert main(["evaluate", "--run", run_dir, "--set", "evaluation.nll_samples=20",
                 "--set", "evaluation.nll_chunk=10"]) == 0
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f)["test_nll_examples"] == 100
    out = str(tmp_path / "grid.png")
    assert main(["sample", "--run", run_dir, "-n", "16", "--temperature", "0.7",
                 "--out", out]) == 0
    from PIL import Image
    assert Image.open(out).size == (4 * 29 - 1, 4 * 29 - 1)
    base = str(tmp_path / "export")
    assert main(["export", "--run", run_dir, "--base-dir", base]) == 0
    assert os.path.exists(os.path.join(base, "tiny", "1", "saved_model.pb"))
    assert os.path.exists(os.path.join(base, "tiny-1.tflite"))
    assert main(["export", "--run", run_dir, "--base-dir", base]) == 2  # version 1 exists
    assert "--version" in capsys.readouterr().err
    assert main(["sample", "--run", str(tmp_path / "nope")]) == 2


def test_evaluate_scores_sample_quality_with_the_cached_feature_network(finished_run, tmp_path,
                                                                       monkeypatch):
    import shutil
    from tfdgm.__main__ import main
    monkeypatch.setenv("TFDGM_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = str(tmp_path / "copy")
    shutil.copytree(finished_run[0], run_dir)
    args = ["evaluate", "--run", run_dir, "--set", "evaluation.nll_samples=0",
            "--set", "evaluation.sample_quality_samples=100"]
    assert main(args) == 0
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    for key in ("test_classifier_fid", "test_classifier_kid", "test_classifier_precision",
                "test_classifier_recall", "test_classifier_inception_score"):
        assert np.isfinite(metrics[key]), key
    assert metrics["test_classifier_fid"] > 0
    network = metrics["test_feature_network"]
    assert network["validation_accuracy"] > 0.2 and len(network["weights_sha256"]) == 64
    assert main(args) == 0  # the second evaluation reads the cached classifier: same key
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f)["test_feature_network"] == network
