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
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api


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
                        for phase in ("train", "validation", "test")}
        self.images = np.asarray(images, np.float32)
        self.hparams = flatten_config(hparams)
        self.global_batch_size, self.image_every = global_batch_size, max(1, image_every)
        self.seed = seed
        self._epoch_start, self._batches = time.time(), 0

    def on_train_begin(self, logs=None):
        with self.writers["train"].as_default():
            hparams_api.hparams(self.hparams, trial_id=str(self.hparams.get("name", "run")))
        self.writers["train"].flush()

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
