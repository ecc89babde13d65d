"""Start-up work done once: `--help` without TensorFlow, the XLA probe's traces reused by
training, the divergence reference from one validation batch; and the TensorBoard records of a
run's start (no execution settings among the hyperparameters, readable empty cells)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from tfdgm import experiment
from tfdgm.training import xla
from tfdgm.training.tensorboard import TensorBoardLogger, metrics_table
from tfdgm.training.train import load_training_datasets, run_optimizers, train_and_evaluate

RAW = {
    "name": "startup",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 100,
             "max_examples": 200},
    "model": {"name": "vae", "latent_dim": 4,
              "encoder": {"name": "gated_mlp", "hidden_units": [16]},
              "decoder": {"name": "gated_mlp", "hidden_units": [16]},
              "objective": {"warmup_epochs": 0}},
    "training": {"epochs": 1},
    "evaluation": {"nll_samples": 0, "surgery_examples": 0},
}


def test_help_imports_no_tensorflow():
    code = ("import runpy, sys\n"
            "sys.argv = ['tfdgm', '--help']\n"
            "try:\n"
            "    runpy.run_module('tfdgm', run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    assert exit.code == 0, exit.code\n"
            "print('tensorflow imported:', 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "train, evaluate, sample or export" in result.stdout
    assert "tensorflow imported: False" in result.stdout


def _compiled_model(config, datasets):
    keras.utils.set_random_seed(config.seed)
    model = experiment.build_model(config, datasets.info)
    model.compile_for_training(run_optimizers(model, config, datasets.steps_per_epoch),
                               jit_compile=False)
    return model


def test_the_steps_the_xla_probe_traces_are_the_ones_training_runs():
    config = experiment.from_dict({**RAW, "training": {"epochs": 1, "jit_compile": True}})
    datasets = load_training_datasets(config, first_epoch=0)
    model = _compiled_model(config, datasets)
    strategy = tf.distribute.get_strategy()
    decision = xla.select(model, strategy, True, datasets.train, datasets.validation)
    assert decision.train and decision.test
    train_step = xla.keras_step_function(model, "train")
    test_step = xla.keras_step_function(model, "test")
    assert train_step is not None and test_step is not None
    traced = (train_step.experimental_get_tracing_count(),
              test_step.experimental_get_tracing_count())
    assert traced == (1, 1)  # the probe traced Keras's own compiled steps

    model.fit(datasets.train, validation_data=datasets.validation, epochs=1,
              steps_per_epoch=datasets.steps_per_epoch, verbose=0)
    model.evaluate(datasets.test, verbose=0)
    assert xla.keras_step_function(model, "train") is train_step  # nothing rebuilt them
    assert (train_step.experimental_get_tracing_count(),
            test_step.experimental_get_tracing_count()) == traced  # nor traced them again


def test_a_step_left_uncompiled_is_rebuilt_without_xla():
    config = experiment.from_dict({**RAW, "training": {"epochs": 1, "jit_compile": True}})
    datasets = load_training_datasets(config, first_epoch=0)
    model = _compiled_model(config, datasets)
    strategy = tf.distribute.get_strategy()
    xla.select(model, strategy, True, datasets.train, datasets.validation)
    probed = xla.keras_step_function(model, "train")
    decision = xla.select(model, strategy, False, datasets.train, datasets.validation)
    assert not (decision.train or decision.test)
    rebuilt = xla.keras_step_function(model, "train")
    assert rebuilt is not probed and rebuilt.experimental_get_tracing_count() == 0
    assert not model.jit_compile


def test_the_divergence_reference_is_the_first_validation_batch(tmp_path, capsys):
    config = experiment.from_dict(RAW)  # 200 validation examples: two batches of 100
    run_dir = str(tmp_path / "run")
    train_and_evaluate(config, run_dir)
    out = capsys.readouterr().out
    with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
        reference = json.load(f)["initial_value"]

    datasets = load_training_datasets(config, first_epoch=0)
    untrained = _compiled_model(config, datasets)  # the run's initial weights (same seed)
    first = datasets.images("validation", 100)
    expected = untrained.evaluate(first, batch_size=100, verbose=0, return_dict=True)["elbo"]
    np.testing.assert_allclose(reference, expected, rtol=1e-5)
    assert f"before training: {reference:.4g} (first 100 validation examples)" in out


def test_hyperparameters_leave_out_execution_settings(tmp_path):
    config = experiment.from_dict({**RAW, "training": {"epochs": 1, "jit_compile": False}})
    logger = TensorBoardLogger(str(tmp_path / "logs"), np.zeros([1, 28, 28, 1], np.float32),
                               config.to_dict(), global_batch_size=50)
    assert "training.jit_compile" not in logger.hparams
    assert {"training.epochs", "model.latent_dim", "optimizer.learning_rate"} <= set(
        logger.hparams)


def test_an_empty_list_in_the_metrics_table_reads_as_empty():
    table = metrics_table({"warnings": [], "kl_per_dimension": [0.5, 0.25]})
    assert "| warnings | [] |" in table.splitlines()
    assert "| kl_per_dimension | 0.5, 0.25 |" in table.splitlines()
