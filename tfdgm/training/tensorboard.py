"""TensorBoard logging of a run, through the model contract only.

The layout follows `keras.callbacks.TensorBoard`: one run per phase under the run's `logs/`,
with the same tag in each, so TensorBoard overlays them in one chart:

    logs/train/        <metric> per epoch (step = epoch, 1-based) for every training metric;
                       learning_rate (one per optimizer role: learning_rate/<role> when there
                       are several), examples_per_second; the model's `epoch_summaries`
                       (floats as scalars, arrays as histograms); every `image_every` epochs the
                       model's `image_grids` as one tiled image each under images/<name>; the
                       run's hyperparameters (HParams plugin) at the start
    logs/validation/   <metric> per epoch for every validation metric (Keras's `val_` prefix
                       dropped)
    logs/test/         <metric> of `metrics.json` after the test evaluation (`test_` dropped)
    logs/              the HParams records: the experiment (the hyperparameters that define
                       the run, and as metrics the model's `key_metrics` from logs/test and its
                       monitored quantity from logs/validation), the session start and, after
                       the test evaluation, the session end with its status
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary

# Config keys that say how a run is evaluated, exported or placed, not what it is.
NOT_HYPERPARAMETERS = ("evaluation.", "export.", "distribute.", "data.data_dir",
                       "data.eval_batch_size", "training.image_every_epochs")


def flatten_config(tree, prefix=""):
    """`{"a": {"b": 1}} -> {"a.b": 1}` with values HParams accepts (lists become strings)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def _learning_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes the events described in the module docstring.

    Args:
      log_dir: the run's TensorBoard directory (`<run>/logs`).
      images: `[N, ...]` fixed validation examples the model's summaries and grids use.
      hparams: the resolved config as a nested dict.
      global_batch_size: examples per training step, for the throughput.
      image_every: epochs between image grids.
      seed: seed of the fixed noise of the sample grids.
    """

    def __init__(self, log_dir, images, hparams, global_batch_size, image_every=1, seed=0):
        super().__init__()
        self.log_dir = log_dir
        self.writers = {phase: tf.summary.create_file_writer(os.path.join(log_dir, phase))
                        for phase in ("", "train", "validation", "test")}
        self.images = np.asarray(images, np.float32)
        self.hparams = {key: value for key, value in flatten_config(hparams).items()
                        if not key.startswith(NOT_HYPERPARAMETERS)}
        self.global_batch_size, self.image_every = global_batch_size, max(1, image_every)
        self.seed = seed
        self._epoch_start, self._batches = time.time(), 0

    def on_train_begin(self, logs=None):
        metrics = [hparams_api.Metric(key.removeprefix("test_"), group="test")
                   for key in self.model.key_metrics]
        if self.model.monitor is not None:
            metrics.append(hparams_api.Metric(self.model.monitor.name, group="validation"))
        with self.writers[""].as_default():
            hparams_api.hparams_config(
                hparams=[hparams_api.HParam(key) for key in sorted(self.hparams)],
                metrics=metrics)
            hparams_api.hparams(self.hparams, trial_id=str(self.hparams.get("name", "run")))
        self.writers[""].flush()

    def log_session_end(self, success=True):
        """The HParams session's end record, with its status."""
        status = api_pb2.STATUS_SUCCESS if success else api_pb2.STATUS_FAILURE
        with self.writers[""].as_default():
            tf.summary.experimental.write_raw_pb(
                hparams_summary.session_end_pb(status).SerializeToString(), step=0)
        self.writers[""].flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._batches = time.time(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.time() - self._epoch_start
        step = epoch + 1
        logs = logs or {}
        with self.writers["validation"].as_default(step=step):
            for name, value in logs.items():
                if name.startswith("val_"):
                    tf.summary.scalar(name[4:], float(value))
        with self.writers["train"].as_default(step=step):
            for name, value in logs.items():
                if not name.startswith("val_"):
                    tf.summary.scalar(name, float(value))
            optimizers = self.model.optimizers
            for role, optimizer in optimizers.items():
                tag = "learning_rate" if len(optimizers) == 1 else f"learning_rate/{role}"
                tf.summary.scalar(tag, _learning_rate(optimizer))
            tf.summary.scalar("examples_per_second",
                              self._batches * self.global_batch_size / max(seconds, 1e-9))
            for name, value in self.model.epoch_summaries(self.images).items():
                if np.ndim(value) == 0:
                    tf.summary.scalar(name, float(value))
                else:
                    tf.summary.histogram(name, np.asarray(value))
            if epoch % self.image_every == 0:
                self.log_images()
        for writer in self.writers.values():
            writer.flush()

    def log_images(self):
        for name, grid in self.model.image_grids(self.images, self.seed).items():
            tf.summary.image(f"images/{name}", grid[None], max_outputs=1)

    def log_test_metrics(self, metrics, step):
        with self.writers["test"].as_default(step=step):
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(name.removeprefix("test_"), float(value))
        self.writers["test"].flush()
        self.log_session_end(success=True)
