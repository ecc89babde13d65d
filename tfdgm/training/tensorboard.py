"""TensorBoard logging of a VAE run.

Per epoch (step = epoch number, 1-based): `train/<metric>` and `validation/<metric>` for every
metric the model reports (elbo, reconstruction, kl, loss, ...), `beta`, `learning_rate`,
`examples_per_second`, and `kl_per_dimension/z<d>` with `active_units` on a fixed validation batch.
Every `image_every` epochs: one tiled grid each under `images/samples`, `images/reconstructions`
and `images/interpolation`, and `images/pseudo_inputs` (the first `max_pseudo_inputs` of them) when
the prior has pseudo-inputs (VampPrior). At the start: the run's hyperparameters (HParams plugin).
After the test evaluation: `test/<metric>` (NLL, ELBO surgery included) via `log_test_metrics`.
The per-dimension KL is the analytic KL to N(0, I), logged only under a standard-normal prior.
"""

import time

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from tfdgm.evaluation.diagnostics import active_units
from tfdgm.evaluation.images import image_grids, tile


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


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes the scalars, image grids and hyperparameters described in the module docstring.

    Args:
      log_dir: the run's TensorBoard directory.
      images: `[N, H, W, C]` fixed validation images used for reconstructions, interpolation and
        the per-dimension KL (N >= 2).
      hparams: the resolved config as a nested dict.
      global_batch_size: examples per training step, for the throughput.
      image_every: epochs between image grids.
      seed: seed of the fixed prior noise of the sample grid.
    """

    def __init__(self, log_dir, images, hparams, global_batch_size, image_every=1, seed=0,
                 num_samples=64, interpolation_steps=10, max_pseudo_inputs=100):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.images = np.asarray(images, np.float32)
        self.hparams = flatten_config(hparams)
        self.global_batch_size, self.image_every = global_batch_size, max(1, image_every)
        self.seed, self.num_samples, self.steps = seed, num_samples, interpolation_steps
        self.max_pseudo_inputs = max_pseudo_inputs
        self._epoch_start, self._batches = time.time(), 0

    def on_train_begin(self, logs=None):
        with self.writer.as_default():
            hparams_api.hparams(self.hparams, trial_id=str(self.hparams.get("name", "run")))
        self.writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._batches = time.time(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.time() - self._epoch_start
        step = epoch + 1
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tag = f"validation/{name[4:]}" if name.startswith("val_") else f"train/{name}"
                tf.summary.scalar(tag, float(value))
            tf.summary.scalar("beta", float(self.model.beta.numpy()))
            tf.summary.scalar("learning_rate", float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
            tf.summary.scalar("examples_per_second",
                              self._batches * self.global_batch_size / max(seconds, 1e-9))
            self._log_latents()
            if epoch % self.image_every == 0:
                self.log_images()
        self.writer.flush()

    def _log_latents(self):
        q = self.model.posterior(self.model.encoder(self.images), num_samples=1,
                                 seed=tf.constant([0, 0], tf.int64))
        tf.summary.scalar("active_units", int(active_units(q.mean.numpy()).sum()))
        if q.kl_per_dim is not None and self.model.prior.is_standard_normal:
            kl = tf.reduce_mean(q.kl_per_dim, axis=0).numpy()
            width = len(str(len(kl) - 1))
            for d, value in enumerate(kl):
                tf.summary.scalar(f"kl_per_dimension/z{d:0{width}d}", float(value))

    def log_images(self):
        grids = image_grids(self.model, self.images, self.seed, self.num_samples, self.steps)
        pseudo_inputs = getattr(self.model.prior, "pseudo_inputs", None)
        if callable(pseudo_inputs):
            grids["pseudo_inputs"] = tile(pseudo_inputs()[: self.max_pseudo_inputs].numpy())
        for name, grid in grids.items():
            tf.summary.image(f"images/{name}", grid[None], max_outputs=1)

    def log_test_metrics(self, metrics, step):
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(f"test/{name.removeprefix('test_')}", float(value))
        self.writer.flush()
