"""Keras callbacks that make a run resumable, stoppable and safe.

* `NonFiniteGuard` stops training at the first NaN/Inf, naming the step and the term.
* `RunCheckpointer` saves the last and the best checkpoints (by the model's `Monitor`) with the
  run state after every epoch, atomically, and stops early when the monitored quantity has not
  improved for `patience` epochs (counted from the monitor's `patience_from_epoch`).

They speak only the model contract (`tfdgm.models.base`): family-specific callbacks (the VAE's
KL warm-up) come from `model.training_callbacks(config)`.
"""

import dataclasses
import json
import math
import os
import time
from typing import Dict, List, Optional

import keras

from tfdgm.errors import DataError, NonFiniteLossError

STATE_FILE = "state.json"
LAST = "last.weights.h5"
BEST = "best.weights.h5"


@dataclasses.dataclass
class RunState:
    """What a run must remember to resume: saved next to the checkpoints as `state.json`.

    Attributes:
      epochs_done: completed epochs (the next epoch to run, 0-based).
      best_value: best monitored validation value so far (None: none yet), and `best_epoch`
        the epoch that reached it, counted from 1 as in `history` and `metrics.json` (0: none).
      epochs_without_improvement: counted from the monitor's `patience_from_epoch`.
      stopped_early: whether early stopping ended training.
      history: per-epoch logs (train and validation metrics, beta, seconds).
    """
    epochs_done: int = 0
    best_value: Optional[float] = None
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    history: List[Dict[str, float]] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, checkpoint_dir: str) -> Optional["RunState"]:
        """The state of the run whose checkpoints are in `checkpoint_dir`: the copy written
        inside `last.weights.h5` (so weights and state cannot disagree after a kill between two
        writes), else `state.json`; None for a run without checkpoints."""
        last = os.path.join(checkpoint_dir, LAST)
        if os.path.exists(last):
            embedded = _read_embedded_state(last)
            if embedded is not None:
                return cls._from_fields(embedded)
        path = os.path.join(checkpoint_dir, STATE_FILE)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                fields = json.load(f)
            return cls._from_fields(fields)
        except (ValueError, TypeError) as error:
            raise DataError(
                f"the run state {path} is damaged ({error}); remove the run's checkpoints "
                f"folder to start the run afresh (or restore state.json from a backup).") from None

    @classmethod
    def _from_fields(cls, fields):
        if "best_elbo" in fields:  # written before the model contract: the ELBO was monitored,
            fields["best_epoch"] = fields["best_epoch"] + 1  # and best_epoch counted from 0
            best = fields.pop("best_elbo")
            fields["best_value"] = best if math.isfinite(best) else None
        return cls(**fields)

    def save(self, checkpoint_dir: str) -> None:
        write_atomically(os.path.join(checkpoint_dir, STATE_FILE),
                         lambda tmp: dump_json(dataclasses.asdict(self), tmp))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


STATE_ATTRIBUTE = "tfdgm_run_state"
"""The HDF5 attribute of a weights file that holds the run state written with those weights."""


def _read_embedded_state(path: str) -> Optional[dict]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get(STATE_ATTRIBUTE)
    except OSError as error:
        raise DataError(f"the checkpoint {path} is damaged ({error}); copy best.weights.h5 over "
                        f"it to resume from the best epoch, or remove the run's checkpoints "
                        f"folder to start the run afresh.") from None
    return None if text is None else json.loads(text)


def dump_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def write_atomically(path: str, write) -> None:
    """Calls `write(tmp_path)` then renames onto `path`: a crash never leaves a torn file."""
    base, name = os.path.split(path)
    tmp = os.path.join(base, f".tmp.{name}")
    write(tmp)
    os.replace(tmp, path)


def save_weights_atomically(model: keras.Model, path: str, state: Optional[RunState] = None):
    """Saves the model's weights and every optimizer's state (`model.save_weights`), with
    `state` as an attribute of the same file, in one atomic rename."""
    def write(tmp):
        model.save_weights(tmp)
        if state is not None:
            import h5py

            with h5py.File(tmp, "a") as f:
                f.attrs[STATE_ATTRIBUTE] = state.to_json()
    write_atomically(path, write)


class NonFiniteGuard(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` at the first batch whose loss terms are not finite.

    The running means that Keras reports become non-finite at the first bad batch and stay so;
    the error names the optimizer step and the first offending term. Checkpoints are written only
    at the end of a finite epoch, so the last good one stays intact.
    """

    def __init__(self, checkpoint_dir: str, terms=("loss",)):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.terms = tuple(terms)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for term in self.terms:
            if logs and term in logs and not math.isfinite(float(logs[term])):
                step = int(self.model.optimizer.iterations.numpy())
                raise NonFiniteLossError(
                    f"training stopped at step {step} (epoch {self.epoch + 1}, batch {batch + 1}): "
                    f"the '{term}' term of the loss is {float(logs[term])}. "
                    f"{self._advice()}")

    def _advice(self):
        rates = {role: float(keras.ops.convert_to_numpy(optimizer.learning_rate))
                 for role, optimizer in self.model.optimizers.items()}
        keys = (["optimizer"] if len(rates) == 1 else [f"optimizer.{role}" for role in rates])
        lower = " ".join(f"--set {key}.learning_rate={rate / 10:g}"
                         for key, rate in zip(keys, rates.values()))
        clip = " ".join(f"--set {key}.clipnorm=1.0" for key in keys)
        if os.path.exists(os.path.join(self.checkpoint_dir, LAST)):
            where = (f"The last good checkpoint in {self.checkpoint_dir} is intact; run the same "
                     f"command again to resume from it")
        else:
            where = ("No checkpoint was written yet, so running the same command again starts "
                     "the run afresh")
        return (f"{where}, with a lower learning rate ({lower}) or gradient clipping ({clip}); "
                f"the new values replace the checkpoint's.")


class RunCheckpointer(keras.callbacks.Callback):
    """After each epoch: records the monitored validation value, saves `last` (and `best` on
    improvement) checkpoints with the run state, and stops early once `patience` epochs have
    passed without improvement.

    Args:
      checkpoint_dir: where `last.weights.h5`, `best.weights.h5` and `state.json` live.
      state: the `RunState` to update (resumed runs pass the loaded one).
      patience: epochs without improvement (from `monitor.patience_from_epoch`) before stopping.
      monitor: the model's `tfdgm.models.base.Monitor`; None: every epoch is the best (no early
        stopping).
      write: whether this worker writes files (the chief only).
    """

    def __init__(self, checkpoint_dir, state, patience, monitor=None, write=True):
        super().__init__()
        self.checkpoint_dir, self.state = checkpoint_dir, state
        self.patience, self.monitor = patience, monitor
        self.write = write
        self._epoch_start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if not all(math.isfinite(v) for v in logs.values()):
            raise NonFiniteLossError(
                f"epoch {epoch + 1} ended with non-finite metrics {logs}; the last good "
                f"checkpoint in {self.checkpoint_dir} is intact.")
        state = self.state
        if self.monitor is None:
            improved = True
        else:
            value = logs.get(self.monitor.key, logs.get(self.monitor.name))
            if value is None:
                raise KeyError(f"the monitored '{self.monitor.key}' is not among the epoch's "
                               f"logs {sorted(logs)}")
            improved = self.monitor.better(value, state.best_value)
            if improved:
                state.best_value = value
        if improved:
            state.best_epoch = epoch + 1
            state.epochs_without_improvement = 0
        elif epoch >= self.monitor.patience_from_epoch:
            state.epochs_without_improvement += 1
        state.epochs_done = epoch + 1
        optimizers = self.model.optimizers
        rates = {("learning_rate" if len(optimizers) == 1 else f"learning_rate_{role}"):
                 float(keras.ops.convert_to_numpy(optimizer.learning_rate))
                 for role, optimizer in optimizers.items()}
        state.history.append({"epoch": epoch + 1, "seconds": time.time() - self._epoch_start,
                              **logs, **rates})
        if state.epochs_without_improvement >= self.patience:
            state.stopped_early = True
            self.model.stop_training = True
        if self.write:
            if improved:
                save_weights_atomically(self.model, os.path.join(self.checkpoint_dir, BEST))
            save_weights_atomically(self.model, os.path.join(self.checkpoint_dir, LAST), state)
            state.save(self.checkpoint_dir)  # a readable copy; the weights file's is the authority
