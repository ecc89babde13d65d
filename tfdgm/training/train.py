"""`train_and_evaluate(config, run_dir)`: the whole life of a run.

A run directory holds:

    config.yaml              the resolved config
    checkpoints/             last.weights.h5, best.weights.h5 (model + optimizer), state.json
    logs/                    TensorBoard event files
    metrics.json             final test figures
    samples.png, reconstructions.png, interpolation.png

Running the same command again resumes from `checkpoints/last.weights.h5` (after Ctrl-C or
`kill -9`); a finished run only re-evaluates if its `metrics.json` is missing.

Before the first step a run decides whether its steps are XLA-compiled (`tfdgm.training.xla`;
the steps it traces to decide are the ones training runs), measures the monitored validation
quantity of the untrained model on the first validation batch (the reference of the divergence
warning, `callbacks.diverged`: one batch of `data.eval_batch_size` examples, the batch the
evaluation step was traced on, instead of a whole validation pass) and prints a banner: the run
directory, the data and its split sizes, the model's parameter count, the strategy and its
devices, the TensorBoard command, the XLA and precision modes, and the family's
`config_warnings` as `WARNING:` lines. The seconds from the process's start to the first
training step are printed and saved (`state.json`, `metrics.json`: `startup_seconds`).
"""

import contextlib
import fcntl
import json
import os
import time
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from tfdgm import config as config_lib
from tfdgm import experiment
from tfdgm.data import load_datasets
from tfdgm.errors import ConfigError, DataError
from tfdgm.evaluation import save_png
from tfdgm.optimizers import make_optimizers, unwrap
from tfdgm.precision import with_loss_scaling
from tfdgm.training import callbacks as cb
from tfdgm.training import execution, xla
from tfdgm.training.strategy import is_chief, make_strategy

# Keys that may change between a run and its resumption (a lower learning rate or a clipnorm is
# what the NaN guard advises: the new values replace those of the restored optimizer state).
RESUMABLE_CHANGES = ("training.epochs", "training.patience", "training.image_every_epochs",
                     "training.validate_every", "training.jit_compile",
                     "training.steps_per_execution", "evaluation", "export",
                     "distribute", "data.data_dir", "data.eval_batch_size")
RESUMABLE_OPTIMIZER_KEYS = ("learning_rate", "clipnorm")


def _resumable(key: str, allowed=RESUMABLE_CHANGES) -> bool:
    if any(key == r or key.startswith(r + ".") for r in allowed):
        return True
    return key.startswith("optimizer.") and key.rsplit(".", 1)[-1] in RESUMABLE_OPTIMIZER_KEYS


def run_optimizers(model, config: config_lib.Config, steps_per_epoch: Optional[int] = None):
    """`{role: optimizer}` of a resolved config: its `optimizer` section (schedules in epochs
    need `steps_per_epoch`), with loss scaling under `training.precision: mixed_float16`."""
    return with_loss_scaling(make_optimizers(model, config.optimizer, steps_per_epoch),
                             config.training.precision)


def _flat(tree, prefix=""):
    """`{"a": {"b": 1}} -> {"a.b": 1}`."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(saved: config_lib.Config, current: config_lib.Config, allowed=()):
    """The flattened keys whose values differ between two configs, minus `allowed` ones."""
    old, new = _flat(saved.to_dict()), _flat(current.to_dict())
    return [key for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key) and not _resumable(key, allowed)]


def check_same_experiment(saved: config_lib.Config, current: config_lib.Config, run_dir: str):
    """Raises `ConfigError` if `current` differs from the run's saved config beyond what a
    resumption may change."""
    changed = changed_keys(saved, current, RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(
            f"{run_dir} holds a run with a different config ({', '.join(changed)} changed). "
            f"Resume it with its own config ({os.path.join(run_dir, 'config.yaml')}), or start a "
            f"new run with --set name=<new name> (or remove {run_dir}).")


class Run:
    """Paths of a run directory."""

    def __init__(self, run_dir: str):
        self.dir = run_dir
        self.config = os.path.join(run_dir, "config.yaml")
        self.checkpoints = os.path.join(run_dir, "checkpoints")
        self.logs = os.path.join(run_dir, "logs")
        self.metrics = os.path.join(run_dir, "metrics.json")

    def checkpoint(self, which: str) -> str:
        return os.path.join(self.checkpoints, {"last": cb.LAST, "best": cb.BEST}[which])


class RunLock:
    """An exclusive lock on a run directory for as long as one process trains it.

    `flock` on `<run>/.lock`: the operating system releases it when the process ends, however it
    ends (a `kill -9` leaves no stale lock). A second trainer of the same directory gets a
    `ConfigError` naming the holder instead of overwriting its checkpoints.
    """

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, ".lock")
        self._file = None

    def __enter__(self):
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "unknown"
            self._file.close()
            raise ConfigError(
                f"{os.path.dirname(self.path)} is being trained by another process (pid "
                f"{holder}); wait for it to finish, or train a new run with --set "
                f"name=<new name>.") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def _make_run_directory(run: "Run") -> None:
    try:
        os.makedirs(run.checkpoints, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the run directory {run.dir} ({error.strerror}); pass "
                          f"--run-dir <a writable folder>.") from None
    if not os.access(run.dir, os.W_OK):
        raise ConfigError(f"the run directory {run.dir} is not writable; pass --run-dir <a "
                          f"writable folder>.")


def restore(model: keras.Model, path: str, optimizer_config=None) -> None:
    """Loads weights and the state of every optimizer of `model` from `path`; with
    `optimizer_config` (the run's resolved `optimizer` section), its learning rates and clipnorms
    then replace the restored ones (what a resumption after a NaN asks for)."""
    model.build_optimizers()
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"the checkpoint {path} is damaged or does not fit this model ({error}); "
                        f"copy best.weights.h5 over it to resume from the best epoch, or remove "
                        f"the run's checkpoints folder to start the run afresh.") from None
    if optimizer_config is not None:
        roles = (optimizer_config if isinstance(optimizer_config, dict)
                 else {role: optimizer_config for role in model.optimizer_roles})
        for role, optimizer in model.optimizers.items():
            optimizer.learning_rate = roles[role].learning_rate
            unwrap(optimizer).clipnorm = roles[role].clipnorm  # the optimizer that clips


def load_training_datasets(config, first_epoch: int):
    """The run's datasets with a training stream that starts at `first_epoch` (0 for a fresh
    run, the epochs done for a resumed one): batch g of the stream is a function of the seed
    and g alone, so a resumed run sees exactly the batches (order and dynamic-binarization
    draws) an uninterrupted run would. The stream is infinite: `fit` takes `steps_per_epoch`."""
    steps = config.training.steps_per_epoch
    if steps is None:
        return load_datasets(config.data, seed=config.seed, initial_epoch=first_epoch)
    return load_datasets(config.data, seed=config.seed, initial_step=first_epoch * steps)


def validated_epochs(training) -> list:
    """The epochs (1-based, as Keras's `validation_freq` counts) that are validated: every
    `training.validate_every`-th and the last."""
    return [epoch + 1 for epoch in range(training.epochs) if training.validates(epoch)]


def fit(model, strategy, datasets, config, callbacks, initial_epoch):
    """Runs the epochs with `model.fit`, or with the custom loop under multi-worker training
    (Keras 3.15's `fit` fails under `MultiWorkerMirroredStrategy`, keras#20585), over the
    infinite stream of `load_training_datasets`, `steps_per_epoch` batches an epoch, validating
    the epochs of `validated_epochs`."""
    training = config.training
    steps_per_epoch = training.steps_per_epoch or datasets.steps_per_epoch
    validation_freq = validated_epochs(training)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from tfdgm.training.loop import custom_fit
        return custom_fit(model, strategy, datasets.train, datasets.validation,
                          epochs=training.epochs, initial_epoch=initial_epoch,
                          steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                          validation_freq=validation_freq)
    # shuffle=False: the stream is already shuffled (Keras would warn that it ignores True).
    return model.fit(datasets.train, validation_data=datasets.validation,
                     epochs=training.epochs, initial_epoch=initial_epoch,
                     steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=1,
                     shuffle=False, validation_freq=validation_freq)


def train_and_evaluate(config: config_lib.Config, run_dir: str,
                       strategy: Optional[tf.distribute.Strategy] = None) -> Dict[str, Any]:
    """Trains (or resumes) the run in `run_dir`, then evaluates its best checkpoint on the test
    split and writes `metrics.json`. Returns the metrics.

    `config` is a resolved config (`tfdgm.experiment.load_config`); the model family it names
    supplies everything family-specific through the contract of `tfdgm.models.base`.
    """
    call_start = time.time()
    process_start = cb.process_start_time()
    strategy = strategy or make_strategy(config.distribute.strategy)
    chief = is_chief(strategy)
    run = Run(run_dir)
    if os.path.exists(run.config):
        check_same_experiment(experiment.load_config(run.config), config, run_dir)
    _make_run_directory(run)
    lock = RunLock(run_dir) if chief else contextlib.nullcontext()
    trainer, device = single_device_placement(strategy)
    with lock, device:
        return _train_and_evaluate(config, run, trainer, chief, process_start, call_start,
                                   shown=strategy)


def single_device_placement(strategy):
    """`(strategy to train under, device scope)`: a `OneDeviceStrategy` is run as TensorFlow's
    default strategy inside `tf.device(its device)`, the same placement and the same steps,
    because Keras feeds a `OneDeviceStrategy` through a multi-device iterator that it builds
    anew for every validation pass (about 0.5 s each on 2 CPU cores: 44% of a quickstart epoch);
    any other strategy is returned as it is."""
    if (isinstance(strategy, tf.distribute.OneDeviceStrategy)
            and not tf.distribute.has_strategy()):
        return tf.distribute.get_strategy(), tf.device(strategy.extended.worker_devices[0])
    return strategy, contextlib.nullcontext()


def _train_and_evaluate(config, run, strategy, chief, process_start, call_start, shown):
    if chief:  # atomically: the other workers of a cluster read it at their start
        cb.write_atomically(run.config, lambda tmp: config_lib.dump(config, tmp))
    state = cb.RunState.load(run.checkpoints) if os.path.exists(run.checkpoint("last")) else None
    finished = state is not None and (state.stopped_early
                                      or state.epochs_done >= config.training.epochs)
    if finished and os.path.exists(run.metrics):
        print(f"{run.dir} is finished; its results are in {run.metrics}.")
        with open(run.metrics) as f:
            return json.load(f)

    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    datasets = load_training_datasets(config, first_epoch=state.epochs_done if state else 0)
    with strategy.scope():
        keras.utils.set_random_seed(config.seed)  # the same config, the same initial weights
        model = experiment.build_model(config, datasets.info)
        steps_per_epoch = config.training.steps_per_epoch or datasets.steps_per_epoch
        model.compile_for_training(run_optimizers(model, config, steps_per_epoch),
                                   jit_compile=False)
        if state is not None:
            restore(model, run.checkpoint("last"), config.optimizer)
            if not finished:
                print(f"Resuming {run.dir} after epoch {state.epochs_done}.")
        else:
            model.prepare_training(datasets, config)
    fresh = state is None
    state = state or cb.RunState()

    decision = steps_per_call = None
    if not finished:
        steps = config.training.steps_per_epoch or datasets.steps_per_epoch
        first_validation_batch = _probe_batches(datasets, config)
        with strategy.scope():
            decision = xla.select(model, strategy, config.training.jit_compile, datasets.train,
                                  first_validation_batch,
                                  run_steps=config.training.epochs * steps, previous=state.xla,
                                  device=_devices(shown)[0])
        state.xla = decision.record()
        steps_per_call = execution.choose(config.training.steps_per_execution, steps,
                                          strategy.num_replicas_in_sync, multi_worker)
        execution.apply(model, steps_per_call)
        if fresh and model.monitor is not None and not multi_worker:
            state.initial_value = _initial_value(model, first_validation_batch)
        if chief:
            for line in banner(config, run, datasets, model, shown, decision, state,
                               steps_per_call):
                print(line)

    logger = None
    if chief:  # only the chief writes TensorBoard events
        from tfdgm.training.tensorboard import TensorBoardLogger  # not needed by other commands

        logger = TensorBoardLogger(run.logs, datasets.images("validation", 64), config.to_dict(),
                                   global_batch_size=config.data.batch_size,
                                   image_every=config.training.image_every_epochs,
                                   seed=config.seed)
    if not finished:
        callbacks = model.training_callbacks(config) + [
            cb.NonFiniteGuard(run.checkpoints, model.watched_terms),
            cb.RunCheckpointer(run.checkpoints, state, config.training.patience,
                               monitor=model.monitor, write=chief),
            cb.StartupTimer(state, process_start, call_start, verbose=chief),
        ] + ([logger] if logger else [])
        fit(model, strategy, datasets, config, callbacks, initial_epoch=state.epochs_done)
        for warning in run_warnings(model, state):
            print(f"WARNING: {warning}")

    metrics = {}
    if chief:
        if multi_worker:
            # The test evaluation is the chief's alone: a model outside the multi-worker
            # strategy, so no collective waits on workers that do not evaluate.
            model = _local_model(config, datasets.info)
        logger.set_model(model)
        metrics = evaluate(model, datasets, config, run, state,
                           strategy=None if multi_worker else strategy, decision=decision,
                           steps_per_call=steps_per_call)
        logger.log_test_metrics(metrics, step=max(state.epochs_done, 1))
    if multi_worker:
        _barrier(strategy)  # no worker leaves before the chief is done (heartbeats)
    return metrics


def _probe_batches(datasets, config) -> tf.data.Dataset:
    """The first validation batch (the first `data.eval_batch_size` examples of the split,
    processed as for evaluation) as a dataset of the validation split's element spec, read from
    the arrays in memory (a partial pass over `datasets.validation` would discard its half-filled
    cache). The evaluation step is traced on it, and the divergence reference measured."""
    images = datasets.images("validation", config.data.eval_batch_size)
    return tf.data.Dataset.from_tensor_slices(images).batch(config.data.eval_batch_size)


def _initial_value(model, first_validation_batch) -> Optional[float]:
    """The monitored validation value of the model before its first step, on the first
    validation batch: the reference of `callbacks.diverged`, which asks whether a value is two
    orders of magnitude worse, so the mean over `data.eval_batch_size` examples serves as well as
    a whole validation pass and costs one evaluation step (the step is already traced)."""
    results = model.evaluate(first_validation_batch, verbose=0, return_dict=True)
    value = results.get(model.monitor.name)
    return None if value is None else float(value)


def _devices(strategy) -> list:
    """The devices `strategy` runs its replicas on (the default device for TensorFlow's default
    strategy)."""
    try:
        return list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has none of its own
        return [tf.random.uniform([]).device]


def _count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def banner(config, run, datasets, model, strategy, decision, state,
           steps_per_call: Optional[execution.Execution] = None) -> list:
    """The lines printed before training (module docstring)."""
    info, training = datasets.info, config.training
    sizes = info.num_examples
    steps = training.steps_per_epoch or datasets.steps_per_epoch
    every = ("every epoch" if training.validate_every == 1
             else f"every {training.validate_every} epochs and the last")
    subset = ("" if datasets.validation_examples == sizes["validation"]
              else f", {datasets.validation_examples} evenly spaced examples of it")
    devices = ", ".join(_devices(strategy))
    replicas = strategy.num_replicas_in_sync
    start = f"resuming after epoch {state.epochs_done}" if state.epochs_done else "fresh"
    family = getattr(model, "registered_name", type(model).__name__)
    lines = [
        f"Run {run.dir}: {start}, {training.epochs} epochs",
        f"  data        {info.name} ({info.kind}, {'x'.join(map(str, info.event_shape))}): "
        f"train {sizes['train']} ({steps} steps of {config.data.batch_size} an epoch), "
        f"validation {sizes['validation']} ({every}{subset}), test {sizes['test']}",
        f"  model       {family}: {_count(model.trainable_variables):,} trainable parameters "
        f"({_count(model.weights):,} weights in all)",
        f"  strategy    {type(strategy).__name__}, {replicas} replica"
        f"{'s' if replicas > 1 else ''} ({devices})",
        f"  compilation {decision.describe() if decision else 'none'}",
        *([f"  execution   {steps_per_call.describe()}"] if steps_per_call else []),
        f"  precision   {training.precision}",
        f"  tensorboard tensorboard --logdir {run.logs}",
    ]
    if model.monitor is not None and state.initial_value is not None:
        first = min(config.data.eval_batch_size, sizes["validation"])
        lines.append(f"  monitor     validation {model.monitor.name} ({model.monitor.mode}) "
                     f"before training: {state.initial_value:.4g} (first {first} validation "
                     f"examples)")
    lines += [f"WARNING: {warning}" for warning in model.config_warnings(config)]
    return lines


def run_warnings(model, state) -> list:
    """`state.warnings`, plus one when the best checkpoint itself has diverged from the
    untrained model's validation value (its test figures then describe a broken model)."""
    warnings = list(state.warnings)
    monitor = model.monitor
    if (monitor is not None and state.best_value is not None
            and cb.diverged(monitor, state.best_value, state.initial_value)):
        warnings.append(
            f"the best checkpoint (epoch {state.best_epoch}, validation {monitor.name} "
            f"{state.best_value:.4g}) is more than {cb.DIVERGENCE_FACTOR:g}x worse than before "
            f"training ({state.initial_value:.4g}): its test figures describe a diverged "
            f"model; train again with a lower learning rate.")
    return warnings


def _local_model(config, info):
    """The run's model built and compiled on this process alone (the default strategy)."""
    model = experiment.build_model(config, info)
    model.compile_for_training(run_optimizers(model, config))
    return model


def _barrier(strategy):
    """Blocks until every worker of `strategy` reaches it: a one-number all-reduce.

    Once a worker exits, the coordination service fails the remaining ones' ops ("task:1
    stopped sending heartbeats"), so workers that are done wait here for the chief."""
    strategy.reduce(tf.distribute.ReduceOp.SUM,
                    strategy.run(lambda: tf.ones([], tf.float32)), axis=None)


def evaluate(model, datasets, config, run: Run, state: Optional[cb.RunState] = None,
             write: bool = True, strategy: Optional[tf.distribute.Strategy] = None,
             decision: Optional[xla.JitDecision] = None,
             steps_per_call: Optional[execution.Execution] = None) -> Dict[str, Any]:
    """Restores the best checkpoint and computes the model's test figures
    (`model.evaluate_test`, and the sample quality of `model.sample` when
    `evaluation.sample_quality_samples` > 0); writes `metrics.json` and the image grids.

    With the run's `state`, the metrics also hold its training record (epochs, best epoch,
    seconds, `startup_seconds`) and, when it has any, its `warnings` (a list of sentences);
    with `decision`, which steps ran under XLA; with `steps_per_call`, the training steps a
    call of the training function.
    """
    with (strategy or tf.distribute.get_strategy()).scope():
        restore(model, run.checkpoint("best"))
    metrics = model.evaluate_test(datasets, config)
    if getattr(config.evaluation, "sample_quality_samples", 0):
        from tfdgm.evaluation.quality import evaluate_sample_quality

        metrics.update(evaluate_sample_quality(model, config))
    if state is not None:
        metrics.update(epochs_trained=state.epochs_done, best_epoch=state.best_epoch,
                       stopped_early=state.stopped_early,
                       train_seconds=float(sum(h["seconds"] for h in state.history)))
        for key in ("startup_seconds", "preparation_seconds"):
            if getattr(state, key) is not None:
                metrics[key] = float(getattr(state, key))
        warnings = run_warnings(model, state)
        if warnings:
            metrics["warnings"] = warnings
    if decision is not None:
        metrics.update(xla_training_step=decision.train, xla_evaluation_step=decision.test)
    if steps_per_call is not None:
        metrics.update(steps_per_execution=steps_per_call.steps)
    if write:  # the grids first: metrics.json marks a finished run, so it comes last
        images = _test_images(datasets)
        grids = model.image_grids(images, seed=config.seed)
        for name, grid in grids.items():
            save_png(grid, os.path.join(run.dir, f"{name}.png"))
        cb.write_atomically(run.metrics, lambda tmp: cb.dump_json(metrics, tmp))
        print(f"Wrote {run.metrics} and {', '.join(f'{name}.png' for name in grids)} in "
              f"{run.dir}.")
    return metrics


def _test_images(datasets, num=64):
    """The first `num` test images (from memory where the datasets keep them)."""
    if getattr(datasets, "_images", None) is not None:
        return datasets.images("test", num)
    return next(iter(datasets.test.unbatch().batch(num))).numpy()
