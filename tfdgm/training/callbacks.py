"""Keras callbacks that make a run resumable, stoppable and safe.

* `KLWarmup` sets the model's `beta` at the start of each epoch.
* `NonFiniteGuard` stops training at the first NaN/Inf, naming the step and the term.
* `RunCheckpointer` saves the last and the best (validation ELBO) checkpoints with the run state
  after every epoch, atomically, and stops early when the validation ELBO has not improved for
  `patience` epochs after warm-up.
"""

import dataclasses
import json
import math
import os
import time
from typing import Dict, List, Optional

import keras

from tfdgm.errors import NonFiniteLossError
from tfdgm.objectives import linear_warmup

STATE_FILE = "state.json"
LAST = "last.weights.h5"
BEST = "best.weights.h5"


@dataclasses.dataclass
class RunState:
    """What a run must remember to resume: saved next to the checkpoints as `state.json`.

    Attributes:
      epochs_done: completed epochs (the next epoch to run, 0-based).
      best_elbo: best validation ELBO so far, and `best_epoch` (0-based) where it was reached.
      epochs_without_improvement: counted only after warm-up, for early stopping.
      stopped_early: whether early stopping ended training.
      history: per-epoch logs (train and validation metrics, beta, seconds).
    """
    epochs_done: int = 0
    best_elbo: float = -math.inf
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    history: List[Dict[str, float]] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, checkpoint_dir: str) -> Optional["RunState"]:
        path = os.path.join(checkpoint_dir, STATE_FILE)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return cls(**json.load(f))

    def save(self, checkpoint_dir: str) -> None:
        write_atomically(os.path.join(checkpoint_dir, STATE_FILE),
                         lambda tmp: dump_json(dataclasses.asdict(self), tmp))


def dump_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def write_atomically(path: str, write) -> None:
    """Calls `write(tmp_path)` then renames onto `path`: a crash never leaves a torn file."""
    base, name = os.path.split(path)
    tmp = os.path.join(base, f".tmp.{name}")
    write(tmp)
    os.replace(tmp, path)


def save_weights_atomically(model: keras.Model, path: str) -> None:
    """Saves the model's weights and its optimizer's state (`model.save_weights`)."""
    write_atomically(path, lambda tmp: model.save_weights(tmp))


class KLWarmup(keras.callbacks.Callback):
    """Linear KL warm-up: `beta = min(1, epoch / warmup_epochs)` (Bowman et al. 2016)."""

    def __init__(self, warmup_epochs: int):
        super().__init__()
        self.warmup_epochs = warmup_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.beta.assign(linear_warmup(epoch, self.warmup_epochs))


class NonFiniteGuard(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` at the first batch whose loss terms are not finite.

    The running means that Keras reports become non-finite at the first bad batch and stay so;
    the error names the optimizer step and the first offending term. Checkpoints are written only
    at the end of a finite epoch, so the last good one stays intact.
    """

    TERMS = ("reconstruction", "kl", "iwae", "loss")

    def __init__(self, checkpoint_dir: str):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for term in self.TERMS:
            if logs and term in logs and not math.isfinite(float(logs[term])):
                step = int(self.model.optimizer.iterations.numpy())
                raise NonFiniteLossError(
                    f"training stopped at step {step} (epoch {self.epoch + 1}, batch {batch + 1}): "
                    f"the '{term}' term of the loss is {float(logs[term])}. The last good "
                    f"checkpoint in {self.checkpoint_dir} is intact; lower "
                    f"optimizer.learning_rate or set optimizer.clipnorm, then run the same "
                    f"command again to resume from it.")


class RunCheckpointer(keras.callbacks.Callback):
    """After each epoch: records the validation ELBO, saves `last` (and `best` on improvement)
    checkpoints with the run state, and stops early once `patience` epochs after warm-up have
    passed without improvement.

    Args:
      checkpoint_dir: where `last.weights.h5`, `best.weights.h5` and `state.json` live.
      state: the `RunState` to update (resumed runs pass the loaded one).
      patience: epochs without improvement (after warm-up) before stopping.
      warmup_epochs: epochs of KL warm-up, during which patience is not counted.
      monitor: the logged quantity to maximize.
    """

    def __init__(self, checkpoint_dir, state, patience, warmup_epochs, monitor="val_elbo",
                 write=True):
        super().__init__()
        self.checkpoint_dir, self.state = checkpoint_dir, state
        self.patience, self.warmup_epochs, self.monitor = patience, warmup_epochs, monitor
        self.write = write
        self._epoch_start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        value = logs.get(self.monitor, logs.get(self.monitor.replace("val_", "")))
        if value is None or not all(math.isfinite(v) for v in logs.values()):
            raise NonFiniteLossError(
                f"epoch {epoch + 1} ended with non-finite metrics {logs}; the last good "
                f"checkpoint in {self.checkpoint_dir} is intact.")
        state = self.state
        improved = value > state.best_elbo
        if improved:
            state.best_elbo, state.best_epoch = value, epoch
            state.epochs_without_improvement = 0
        elif epoch >= self.warmup_epochs:
            state.epochs_without_improvement += 1
        state.epochs_done = epoch + 1
        state.history.append({"epoch": epoch + 1, "seconds": time.time() - self._epoch_start,
                              "beta": float(self.model.beta.numpy()), **logs})
        if state.epochs_without_improvement >= self.patience:
            state.stopped_early = True
            self.model.stop_training = True
        if self.write:
            if improved:
                save_weights_atomically(self.model, os.path.join(self.checkpoint_dir, BEST))
            save_weights_atomically(self.model, os.path.join(self.checkpoint_dir, LAST))
            state.save(self.checkpoint_dir)
