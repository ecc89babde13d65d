"""TensorBoard logging of a run, through the model contract only.

The layout follows `keras.callbacks.TensorBoard`: one run per phase under the run's `logs/`,
with the same tag in each, so TensorBoard overlays them in one chart:

    logs/train/        <metric> per epoch (step = epoch, 1-based) for every training metric;
                       learning_rate (one per optimizer role: learning_rate/<role> when there
                       are several), examples_per_second (training steps of the epoch times the
                       global batch, over the seconds before validation starts); the model's
                       `epoch_summaries` (floats as scalars, arrays as histograms); every
                       `image_every` epochs (the first included) the model's `image_grids` as
                       one tiled image each under images/<name> and a histogram of every
                       trainable variable under weights/<variable path>
    logs/validation/   <metric> per epoch for every validation metric (Keras's `val_` prefix
                       dropped)
    logs/test/         <metric> of `metrics.json` after the test evaluation (`test_` dropped);
                       `metrics`, all of `metrics.json` as a text table; the embedding projector
                       (`tfdgm.training.projector`): the model's `embeddings` of up to 1000
                       evenly spaced test examples with their labels and a sprite
    logs/              the HParams records: the experiment (the hyperparameters that define
                       the run, and as metrics the model's `key_metrics` from logs/test and its
                       monitored quantity from logs/validation), the session start and, after
                       the test evaluation, the session end with its status; `config`, the
                       resolved config (the YAML of config.yaml) as text
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
import yaml
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary
from tensorboard.plugins.histogram import metadata as histogram_metadata

from tfdgm import config as config_lib
from tfdgm.training import projector

# Config keys that say how a run is evaluated, exported, placed, displayed or executed, not what
# it is (`training.jit_compile` and `training.steps_per_execution` pick how the steps run; the
# run's choices are in metrics.json).
NOT_HYPERPARAMETERS = ("evaluation.", "export.", "distribute.", "data.data_dir",
                       "data.eval_batch_size", "training.image_every_epochs",
                       "training.jit_compile", "training.steps_per_execution")


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


HISTOGRAM_BUCKETS = 30
"""Buckets of the weight histograms (TensorBoard's default)."""


def histogram_buckets(values, bucket_count=HISTOGRAM_BUCKETS):
    """The `[bucket_count, 3]` float64 tensor of TensorBoard's histogram plugin, rows `(left
    edge, right edge, count)` over `[min, max]` of `values` (any shape, non-empty), as
    `tf.summary.histogram` writes it, counted by the native `tf.histogram_fixed_width`.

    `tf.summary.histogram` counts with a `[N, buckets]` one-hot matrix, which took about 10
    times as long for a model's weights (47 ms against 4.8 ms for the quickstart VAE's 1.1M on
    2 CPU cores, both traced). A single value gives TensorBoard's degenerate histogram: every
    edge at the value, the whole count in the last bucket.
    """
    data = tf.reshape(tf.cast(values, tf.float64), [-1])
    low, high = tf.reduce_min(data), tf.reduce_max(data)
    single = tf.equal(low, high)
    counts = tf.cast(tf.histogram_fixed_width(
        data, tf.stack([low, tf.where(single, low + 1.0, high)]), nbins=bucket_count),
        tf.float64)
    last = tf.one_hot(bucket_count - 1, bucket_count, dtype=tf.float64)
    counts = tf.where(single, tf.cast(tf.size(data), tf.float64) * last, counts)
    edges = tf.concat([tf.linspace(low, high, bucket_count + 1)[:-1], [high]], 0)
    return tf.stack([edges[:-1], edges[1:], counts], axis=1)


def _learning_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _cell(value):
    """One value of `metrics.json` as the text of a markdown table cell."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)):
        text = (", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value)
                if value else "[]")  # as metrics.json writes it, not a blank cell
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text.replace("|", "\\|")


def metrics_table(metrics):
    """`metrics.json` as a markdown table `| metric | value |`, in its order."""
    rows = [f"| {name} | {_cell(value)} |" for name, value in metrics.items()]
    return "\n".join(["| metric | value |", "| --- | --- |"] + rows)


def config_text(config):
    """The resolved config as the YAML of `config.yaml`, in a fenced code block (markdown)."""
    return f"```yaml\n{yaml.safe_dump(config, sort_keys=False)}```"


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes the events described in the module docstring.

    Per batch it does nothing: the epoch's throughput comes from the steps per epoch that `fit`
    (or the custom loop) passes in `params["steps"]`.

    Args:
      log_dir: the run's TensorBoard directory (`<run>/logs`).
      images: `[N, ...]` fixed validation examples the model's summaries and grids use.
      hparams: the resolved config as a nested dict (`Config.to_dict()`); its `data` section
        selects the projector's test examples (none without it).
      global_batch_size: examples per training step, for the throughput.
      image_every: epochs between image grids and weight histograms.
      seed: seed of the fixed noise of the sample grids.
      projector_examples: how many test examples the projector shows (0: no projector).
    """

    def __init__(self, log_dir, images, hparams, global_batch_size, image_every=1, seed=0,
                 projector_examples=projector.EXAMPLES):
        super().__init__()
        self.log_dir = log_dir
        self.writers = {phase: tf.summary.create_file_writer(os.path.join(log_dir, phase))
                        for phase in ("", "train", "validation", "test")}
        self.images = np.asarray(images, np.float32)
        self.config = hparams
        self.hparams = {key: value for key, value in flatten_config(hparams).items()
                        if not key.startswith(NOT_HYPERPARAMETERS)}
        self.global_batch_size, self.image_every = global_batch_size, max(1, image_every)
        self.seed = seed
        self.projector_examples = projector_examples
        self._epoch_start = self._training_end = None
        self._write_histogram = None

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
            tf.summary.text("config", config_text(self.config), step=0)
        self.writers[""].flush()

    def log_session_end(self, success=True):
        """The HParams session's end record, with its status."""
        status = api_pb2.STATUS_SUCCESS if success else api_pb2.STATUS_FAILURE
        with self.writers[""].as_default():
            tf.summary.experimental.write_raw_pb(
                hparams_summary.session_end_pb(status).SerializeToString(), step=0)
        self.writers[""].flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._training_end = time.time(), None

    def on_test_begin(self, logs=None):
        # Within `fit`, the epoch's validation: its training steps are done.
        if self._epoch_start is not None and self._training_end is None:
            self._training_end = time.time()

    def _examples_per_second(self):
        steps = (self.params or {}).get("steps")
        if not steps or self._epoch_start is None:
            return None
        seconds = (self._training_end or time.time()) - self._epoch_start
        return steps * self.global_batch_size / max(seconds, 1e-9)

    def on_epoch_end(self, epoch, logs=None):
        throughput = self._examples_per_second()
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
            if throughput is not None:
                tf.summary.scalar("examples_per_second", throughput)
            for name, value in self.model.epoch_summaries(self.images).items():
                if np.ndim(value) == 0:
                    tf.summary.scalar(name, float(value))
                else:
                    tf.summary.histogram(name, np.asarray(value))
            if epoch % self.image_every == 0:
                self.log_images()
                self.log_weights(step)
        for writer in self.writers.values():
            writer.flush()

    def log_images(self):
        for name, grid in self.model.image_grids(self.images, self.seed).items():
            tf.summary.image(f"images/{name}", grid[None], max_outputs=1)

    def log_weights(self, step):
        """A histogram of each trainable variable, `weights/<variable path>`, at `step`, to the
        default writer.

        The histograms are counted natively (`histogram_buckets`) by one `tf.function` of any
        tensor, traced once for the run and called per variable. Written eagerly by
        `tf.summary.histogram` they took 180 ms an epoch for the quickstart VAE's 22 variables,
        about half of its 40 training steps' time; one function tracing every variable's
        histogram took 5.3 s to trace for a small Glow's 100.
        """
        if self._write_histogram is None:  # traced under this logger's writer
            metadata = histogram_metadata.create_summary_metadata(display_name=None,
                                                                  description=None)

            @tf.function(autograph=False, input_signature=[
                tf.TensorSpec([], tf.string), tf.TensorSpec(None, tf.float32),
                tf.TensorSpec([], tf.int64)])
            def write(tag, values, step):
                tf.summary.write(tag, histogram_buckets(values), step=step, metadata=metadata)

            self._write_histogram = write
        seen = set()
        step = tf.constant(step, tf.int64)
        for variable in self.model.trainable_variables:
            tag = f"weights/{getattr(variable, 'path', variable.name)}"
            while tag in seen:  # paths are unique in Keras 3; names alone need not be
                tag += "_"
            seen.add(tag)
            if variable.shape.num_elements() != 0:
                self._write_histogram(tag, tf.cast(variable, tf.float32), step)

    def log_test_metrics(self, metrics, step):
        """After the test evaluation: the test scalars, `metrics` as text, the projector, and the
        HParams session end."""
        with self.writers["test"].as_default(step=step):
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(name.removeprefix("test_"), float(value))
            tf.summary.text("metrics", metrics_table(metrics))
        self.writers["test"].flush()
        self.log_projector()
        self.log_session_end(success=True)

    def log_projector(self):
        """The model's `embeddings` of the projector's test examples (module docstring); nothing
        for a model without embeddings, a config without `data` or `projector_examples=0`."""
        if not self.projector_examples or "data" not in self.config:
            return None
        data = config_lib.build_section(config_lib.DataConfig, self.config["data"], "data")
        probe = self.model.embeddings(self.images[:1])
        if not probe:
            return None
        examples = projector.projector_examples(data, self.projector_examples)
        embeddings = projector.model_embeddings(self.model, examples.images,
                                                data.eval_batch_size)
        return projector.write_projector(os.path.join(self.log_dir, "test"), embeddings,
                                         examples)
