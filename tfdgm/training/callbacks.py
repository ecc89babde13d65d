"""Keras callbacks that make a run resumable, stoppable and safe.

* `NonFiniteGuard` stops training at the end of an epoch in which a watched loss term or a
  weight became NaN/Inf, naming the epoch, its steps and the term (or weight), before any
  checkpoint is written.
* `RunCheckpointer` saves the last and the best checkpoints (by the model's `Monitor`) with the
  run state after every epoch, atomically; on validated epochs it updates the best value, stops
  early when the monitored quantity has not improved for `patience` epochs (counted from the
  monitor's `patience_from_epoch`), and warns when the quantity has diverged (`diverged`).
* `StartupTimer` records the seconds from the process's start to the first training step.

None of them does work per batch: Keras then dispatches the batch hooks it still has (the
progress bar) to a background thread, and the host never waits on a step to read its logs.

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
import tensorflow as tf

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
      epochs_without_improvement: epochs since the last improvement, counted from the
        monitor's `patience_from_epoch` (checked on validated epochs).
      stopped_early: whether early stopping ended training.
      history: per-epoch logs (train and, on validated epochs, validation metrics; beta,
        seconds).
      initial_value: the monitored validation value before the first step (None: not
        measured), the reference of `diverged`.
      warnings: what went wrong without stopping the run (a diverged validation quantity);
        printed at the end and written to `metrics.json`.
      startup_seconds: seconds from the start of the process that last trained the run to its
        first training step; `preparation_seconds` the part of them after the trainer was
        called (the rest is imports and whatever the caller did first).
      xla: the XLA decision of the run's start (`tfdgm.training.xla.JitDecision.record()`),
        which its resumptions keep under `training.jit_compile: auto`.
    """
    epochs_done: int = 0
    best_value: Optional[float] = None
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    history: List[Dict[str, float]] = dataclasses.field(default_factory=list)
    initial_value: Optional[float] = None
    warnings: List[str] = dataclasses.field(default_factory=list)
    startup_seconds: Optional[float] = None
    preparation_seconds: Optional[float] = None
    xla: Optional[Dict] = None

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
    """Raises `NonFiniteLossError` at the end of an epoch in which training went non-finite.

    Keras's running means of the loss terms become non-finite at the first bad batch and stay
    so, so the epoch's logged means show whether any batch had a NaN/Inf term; the weights are
    checked as well (a finite loss with an infinite gradient leaves NaN weights and finite
    logs). The guard runs before the checkpointer in the callback list, so no checkpoint is
    written from a non-finite state and the last good one stays intact. The error names the
    epoch, its optimizer steps, and the first offending term (or weight). It reads nothing per
    batch: the steps run without waiting for the host.
    """

    def __init__(self, checkpoint_dir: str, terms=("loss",)):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.terms = tuple(terms)
        self._first_step = 0

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self._first_step = self._step() + 1

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        where = f"training stopped after epoch {epoch + 1} (optimizer steps {self._first_step}"
        where += f" to {self._step()})"
        for term in self.terms:
            if term in logs and not math.isfinite(float(logs[term])):
                raise NonFiniteLossError(
                    f"{where}: the '{term}' term of the loss is {float(logs[term])} (its mean "
                    f"over the epoch: at least one batch was not finite). {self._advice()}")
        weight = _first_non_finite(self.model.trainable_variables)
        if weight is not None:
            raise NonFiniteLossError(
                f"{where}: the weight '{weight}' is not finite although the logged loss terms "
                f"are (an overflowing gradient). {self._advice()}")

    def _advice(self):
        lower = lower_learning_rate_advice(self.model)
        keys = (["optimizer"] if len(self.model.optimizers) == 1
                else [f"optimizer.{role}" for role in self.model.optimizers])
        clip = " ".join(f"--set {key}.clipnorm=1.0" for key in keys)
        if os.path.exists(os.path.join(self.checkpoint_dir, LAST)):
            where = (f"The last good checkpoint in {self.checkpoint_dir} is intact; run the same "
                     f"command again to resume from it")
        else:
            where = ("No checkpoint was written yet, so running the same command again starts "
                     "the run afresh")
        return (f"{where}, with a lower learning rate ({lower}) or gradient clipping ({clip}); "
                f"the new values replace the checkpoint's.")


def _first_non_finite(variables) -> Optional[str]:
    """The path of the first float variable holding a NaN/Inf, else None (one reduction on the
    device per variable, read once)."""
    floats = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
    if not floats:
        return None
    finite = tf.stack([tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v)))
                       for v in floats]).numpy()
    bad = [v for v, ok in zip(floats, finite) if not ok]
    return (getattr(bad[0], "path", None) or bad[0].name) if bad else None


DIVERGENCE_FACTOR = 100.0
"""`diverged`: how many times worse than its reference the monitored value must be."""


def divergence_reference(monitor, state: "RunState") -> Optional[float]:
    """The best of the value before training and the best validated value so far."""
    values = [v for v in (state.initial_value, state.best_value) if v is not None]
    if not values:
        return None
    best = values[0]
    for value in values[1:]:
        if monitor.better(value, best):
            best = value
    return best


def diverged(monitor, value: float, reference: Optional[float]) -> bool:
    """Whether the monitored `value` is worse than `reference` by more than `DIVERGENCE_FACTOR`
    times the reference's magnitude (at least 1): `|value - reference| > 100 max(|reference|,
    1)` in the wrong direction.

    A run that learns never loses two orders of magnitude on its validation quantity against
    where it started or the best it reached (an ELBO of -100 nats falling to -10^4, bits/dim of
    2 rising to 200); one whose learning rate is far too high does (learning rate 1 takes a
    VAE's ELBO from -543 to -10^13 in one epoch).
    """
    if reference is None or monitor.better(value, reference) or value == reference:
        return False
    return abs(value - reference) > DIVERGENCE_FACTOR * max(abs(reference), 1.0)


def divergence_warning(monitor, value, reference, epoch, advice="") -> str:
    return (f"validation {monitor.name} {value:.4g} after epoch {epoch} is more than "
            f"{DIVERGENCE_FACTOR:g}x worse than {reference:.4g} (the best of before training "
            f"and the epochs so far): training has diverged{advice}.")


def lower_learning_rate_advice(model) -> str:
    """`--set optimizer.learning_rate=...` (per role) at a tenth of the current base rates (of
    a schedule, its `r`: the config value)."""
    from tfdgm.optimizers import base_learning_rate

    rates = {role: base_learning_rate(optimizer) for role, optimizer in model.optimizers.items()}
    keys = (["optimizer"] if len(rates) == 1 else [f"optimizer.{role}" for role in rates])
    return " ".join(f"--set {key}.learning_rate={rate / 10:g}"
                    for key, rate in zip(keys, rates.values()))


class StartupTimer(keras.callbacks.Callback):
    """Records, at the first training step of this process, `state.startup_seconds` (since
    `process_start`, a `time.time()` such as `process_start_time()`: imports included) and
    `state.preparation_seconds` (since `call_start`, when the trainer was called: data, model,
    compilation probe, validation reference), and prints them."""

    def __init__(self, state: "RunState", process_start: float,
                 call_start: Optional[float] = None, verbose: bool = True):
        super().__init__()
        self.state, self.process_start, self.verbose = state, process_start, verbose
        self.call_start = process_start if call_start is None else call_start
        self._done = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._done:
            return
        self._done = True
        now = time.time()
        self.state.startup_seconds = now - self.process_start
        self.state.preparation_seconds = now - self.call_start
        if self.verbose:
            print(f"First training step {self.state.startup_seconds:.1f} s after the process "
                  f"started ({self.state.preparation_seconds:.1f} s of them preparing the run: "
                  f"data, model, XLA probe, validation reference).")


def process_start_time() -> float:
    """When this process started, as a `time.time()` value: from `/proc/self/stat` and
    `/proc/uptime` (10 ms resolution) on Linux, else when this module was imported."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat(5): starttime in clock ticks
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - started_ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(age, 0.0)
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


class RunCheckpointer(keras.callbacks.Callback):
    """After each epoch: records the epoch, saves the `last` checkpoint with the run state;
    on validated epochs (those whose logs hold the monitored `val_` value) also updates the
    best value and the `best` checkpoint, stops early once `patience` epochs have passed
    without improvement, and warns (printed, and kept in `state.warnings`) when the monitored
    value has diverged (`diverged`).

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
        self._pending = []  # printed once the progress bar has finished its line

    def _print_pending(self):
        for message in self._pending:
            print(f"WARNING: {message}")
        self._pending = []

    def on_epoch_begin(self, epoch, logs=None):
        self._print_pending()
        self._epoch_start = time.time()

    def on_train_end(self, logs=None):
        self._print_pending()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if not all(math.isfinite(v) for v in logs.values()):
            raise NonFiniteLossError(
                f"epoch {epoch + 1} ended with non-finite metrics {logs}; the last good "
                f"checkpoint in {self.checkpoint_dir} is intact.")
        state = self.state
        validated = True
        if self.monitor is None:
            improved = True
        else:
            value = logs.get(self.monitor.key)
            validated = value is not None
            if not validated and any(key.startswith("val_") for key in logs):
                raise KeyError(f"the monitored '{self.monitor.key}' is not among the epoch's "
                               f"logs {sorted(logs)}")
            improved = False
            if validated:
                reference = divergence_reference(self.monitor, state)
                if diverged(self.monitor, value, reference):
                    message = divergence_warning(
                        self.monitor, value, reference, epoch + 1,
                        f"; lower the learning rate ({lower_learning_rate_advice(self.model)})")
                    self._pending.append(message)
                    if not any(w.startswith(f"validation {self.monitor.name} ")
                               for w in state.warnings):
                        state.warnings.append(message)
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
        if validated and state.epochs_without_improvement >= self.patience:
            state.stopped_early = True
            self.model.stop_training = True
        if self.write:
            save_checkpoints(self.model, self.checkpoint_dir, state, best=improved)
            state.save(self.checkpoint_dir)  # a readable copy; the weights file's is the authority


def save_checkpoints(model: keras.Model, checkpoint_dir: str, state: RunState, best: bool):
    """Writes `last.weights.h5` (weights, optimizer states, `state`) and, with `best`, the same
    file as `best.weights.h5`: serialized once, the best a hard link of it (a copy where the
    file system has no links), each renamed into place atomically, the best first (a kill
    between the two renames leaves the previous `last`, whose rerun rewrites the same best)."""
    last = os.path.join(checkpoint_dir, LAST)
    staged = os.path.join(checkpoint_dir, f".tmp.{LAST}")
    model.save_weights(staged)
    import h5py

    with h5py.File(staged, "a") as f:
        f.attrs[STATE_ATTRIBUTE] = state.to_json()
    if best:
        staged_best = os.path.join(checkpoint_dir, f".tmp.{BEST}")
        if os.path.exists(staged_best):
            os.remove(staged_best)
        try:
            os.link(staged, staged_best)
        except OSError:
            import shutil

            shutil.copyfile(staged, staged_best)
        os.replace(staged_best, os.path.join(checkpoint_dir, BEST))
    os.replace(staged, last)
