"""Reliability of a run directory: one trainer at a time, checkpoints and state that always
agree, NaN advice that works when followed literally, damaged runs named as such, and a clear
error (exit 2, no traceback) for bad input."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tfdgm import experiment
from tfdgm.errors import ConfigError, TfdgmError
from tfdgm.training import callbacks as cb
from tfdgm.training.train import RunLock, train_and_evaluate

TINY = {
    "name": "reliable",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 100,
             "max_examples": 200},
    "model": {"name": "vae", "latent_dim": 3, "encoder": {"name": "mlp", "hidden_units": [16]},
              "decoder": {"name": "mlp", "hidden_units": [16]}},
    "optimizer": {"learning_rate": 1e-3},
    "training": {"epochs": 2, "patience": 5},
    "evaluation": {"nll_samples": 0, "surgery_examples": 0},
}


def config_with(**sections):
    return experiment.from_dict({**TINY, **{key: {**TINY.get(key, {}), **value}
                                            for key, value in sections.items()}})


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "reliable")
    train_and_evaluate(config_with(training={"epochs": 1}), run_dir)
    first_state = open(os.path.join(run_dir, "checkpoints", cb.STATE_FILE)).read()
    train_and_evaluate(config_with(), run_dir)
    return run_dir, first_state


def copy_run(run, tmp_path):
    target = str(tmp_path / "copy")
    shutil.copytree(run, target)
    return target


def test_a_second_trainer_of_the_same_run_is_refused(tmp_path):
    run_dir = str(tmp_path / "locked")
    os.makedirs(run_dir)
    with RunLock(run_dir):
        with pytest.raises(ConfigError, match="is being trained by another process"):
            train_and_evaluate(config_with(), run_dir)
    assert not os.path.exists(os.path.join(run_dir, "checkpoints", cb.LAST))


def test_state_travels_with_the_weights_so_a_kill_between_them_loses_nothing(two_epoch_run,
                                                                              tmp_path, capsys):
    """A kill after the epoch-2 weights but before the epoch-2 `state.json`: the rerun must not
    train an extra epoch (the state written inside the weights file is the authority)."""
    run, first_state = two_epoch_run
    run_dir = copy_run(run, tmp_path)
    os.remove(os.path.join(run_dir, "metrics.json"))
    with open(os.path.join(run_dir, "checkpoints", cb.STATE_FILE), "w") as f:
        f.write(first_state)  # says 1 epoch done; the weights are epoch 2's
    train_and_evaluate(config_with(), run_dir)
    state = cb.RunState.load(os.path.join(run_dir, "checkpoints"))
    assert state.epochs_done == 2 and len(state.history) == 2
    assert "Resuming" not in capsys.readouterr().out  # finished: evaluated, not resumed


def test_metrics_json_is_written_last_so_a_finished_run_has_its_images(two_epoch_run, tmp_path,
                                                                     monkeypatch):
    from tfdgm.training import train
    run_dir = copy_run(two_epoch_run[0], tmp_path)
    os.remove(os.path.join(run_dir, "metrics.json"))
    os.remove(os.path.join(run_dir, "samples.png"))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train, "save_png", killed)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config_with(), run_dir)
    assert not os.path.exists(os.path.join(run_dir, "metrics.json"))
    monkeypatch.undo()
    train_and_evaluate(config_with(), run_dir)
    for name in ("metrics.json", "samples.png", "reconstructions.png"):
        assert os.path.exists(os.path.join(run_dir, name)), name


def test_following_the_nan_advice_literally_applies_the_new_rate(two_epoch_run, tmp_path):
    """The guard advises a lower optimizer.learning_rate or a clipnorm and the same command: the
    resumption accepts both and they replace what the checkpoint's optimizer state holds."""
    run_dir = copy_run(two_epoch_run[0], tmp_path)
    config = config_with(training={"epochs": 3},
                         optimizer={"learning_rate": 1e-4, "clipnorm": 1.0})
    train_and_evaluate(config, run_dir)
    state = cb.RunState.load(os.path.join(run_dir, "checkpoints"))
    assert state.epochs_done == 3
    assert state.history[-1]["learning_rate"] == pytest.approx(1e-4)
    assert state.history[0]["learning_rate"] == pytest.approx(1e-3)
    saved = experiment.load_config(os.path.join(run_dir, "config.yaml"))
    assert saved.optimizer.learning_rate == pytest.approx(1e-4)


def test_nan_advice_says_when_there_is_no_checkpoint_yet(tmp_path):
    import keras
    import tensorflow as tf
    from tfdgm.errors import NonFiniteLossError
    from tfdgm.testing.models import random_images, small_vae

    class Poison(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:
                kernel = self.model.decoder.out.kernel
                kernel.assign(tf.fill(kernel.shape, float("nan")))

    model = small_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    guard = cb.NonFiniteGuard(str(tmp_path), model.watched_terms)
    with pytest.raises(NonFiniteLossError) as error:
        model.fit(random_images(64), batch_size=32, epochs=1, callbacks=[Poison(), guard],
                  verbose=0)
    message = str(error.value)
    assert "No checkpoint was written yet" in message and "intact" not in message
    assert "--set optimizer.learning_rate=" in message


def test_damaged_checkpoints_are_named_with_the_way_out(two_epoch_run, tmp_path):
    run_dir = copy_run(two_epoch_run[0], tmp_path)
    os.remove(os.path.join(run_dir, "metrics.json"))
    last = os.path.join(run_dir, "checkpoints", cb.LAST)
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) // 3)
    with pytest.raises(TfdgmError, match="damaged.*last.weights.h5"):
        train_and_evaluate(config_with(), run_dir)
    os.remove(last)  # a run written before states travelled with the weights
    with open(os.path.join(run_dir, "checkpoints", cb.STATE_FILE), "w") as f:
        f.write("")
    with pytest.raises(TfdgmError, match="damaged.*state.json"):
        cb.RunState.load(os.path.join(run_dir, "checkpoints"))


def test_bad_input_catalogue_exits_2_with_one_clear_message(two_epoch_run, tmp_path, capsys):
    """Each mistake stops with exit status 2 and one message naming the problem and the fix
    (in-process `main`, so an uncaught exception, a traceback for a user, fails the test)."""
    from tfdgm.__main__ import main
    run = two_epoch_run[0]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(TINY))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["train", "--config", str(empty)], "is empty"),
        (["train", "--config", str(tmp_path)], "is a directory"),
        (["train", "--config", str(config), "--set", "training.epochs=0"],
         "training.epochs must be at least 1"),
        (["train", "--config", str(config), "--set", "data.batch_size=-5"], "batch_size"),
        (["train", "--config", str(config), "--set", "optimizer.learning_rate=-1"],
         "learning_rate must be positive"),
        (["train", "--config", str(config), "--set", "evaluation.nll_chunk=0"], "nll_chunk"),
        (["train", "--config", str(config), "--set", "evaluation.nll_samples=-1"],
         "nll_samples"),
        (["train", "--config", str(config), "--set", "name="], "name"),
        (["train", "--config", str(config), "--set", "model.name=vea"], "Did you mean 'vae'"),
        (["train", "--config", str(config), "--run-dir", str(a_file / "run")],
         "cannot create the run directory"),
        (["sample", "--run", run, "-n", "0"], "-n/--num must be at least 1"),
        (["sample", "--run", run, "--temperature", "-1"], "temperature must be a positive"),
        (["sample", "--run", run, "--out", str(tmp_path / "missing" / "s.png")],
         "does not exist"),
        (["sample", "--run", run, "--out", str(tmp_path / "s.jpg")], "ending in .png"),
        (["sample", "--run", str(tmp_path)], "is not a run directory"),
        (["evaluate", "--run", run, "--set", "model.latent_dim=7"],
         "cannot change the experiment"),
        (["export", "--run", run, "--version", "0", "--base-dir", str(tmp_path / "e")],
         "positive integer"),
    ]
    for args, message in cases:
        code = main(args)
        stderr = capsys.readouterr().err
        assert code == 2, (args, stderr[-2000:])
        assert message in stderr, (args, stderr[-2000:])
        assert stderr.count("error:") == 1, (args, stderr)


def test_an_unusable_tfds_folder_is_named_with_the_fix(tmp_path):
    """TFDS prepares datasets under `$TFDS_DATA_DIR` (read when TFDS is imported, hence a fresh
    process): one that cannot be created (its parent is a file) stops with exit 2 and says how
    to choose another, not with a traceback."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(TINY))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    env = {**os.environ, "TFDS_DATA_DIR": str(a_file / "tfds")}
    result = subprocess.run(
        [sys.executable, "-m", "tfdgm", "train", "--config", str(config), "--run-dir",
         str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "set TFDS_DATA_DIR to a writable folder" in result.stderr, result.stderr[-2000:]
