"""A custom training loop with `model.fit`'s contract, for strategies where `fit` fails.

Keras 3.15's `model.fit` fails under `MultiWorkerMirroredStrategy` (keras#20585). `custom_fit`
runs the same epochs with `strategy.run(model.train_step)` inside a `tf.function` and drives the
Keras callbacks through the same hooks, in the same order and with the same logs as `fit`:

    on_train_begin
    for each epoch:
        reset metrics; on_epoch_begin(epoch)
        for each step: on_train_batch_begin(step); train step; on_train_batch_end(step, logs)
        if the epoch is validated (`validation_freq`): reset metrics; on_test_begin; test
        steps over the validation set (on_test_batch_*); on_test_end(val logs)
        on_epoch_end(epoch, {**train logs, **{"val_" + k: v}})
        stop if `model.stop_training`
    on_train_end(last epoch logs)

It works under any strategy (`OneDeviceStrategy` and `MirroredStrategy` too), which is how it is
tested in-process against `fit`.

Metric logs are the model's metrics read in the cross-replica context. Keras metrics keep
`total` and `count` in sync-on-read variables with SUM aggregation, so read there they are the
sums over all replicas (of every worker) and a `Mean` tracker reports the mean over the global
batch, exactly: no averaging of per-replica means. Outputs of `train_step` that are not model
metrics are averaged over replicas (`fit` does the same).

Differences from `fit`: `steps_per_execution` and `jit_compile` are not used (one step per
`tf.function` call, not XLA-compiled: the gradient all-reduce of multi-worker training runs
inside the step), and the data must already be a batched `tf.data.Dataset` (or a
`tf.distribute.DistributedDataset`).
"""

import warnings
from typing import Any, Dict, Optional

import keras
import tensorflow as tf

from tfdgm.training.strategy import is_chief


def _cardinality(dataset) -> Optional[int]:
    """The number of batches of `dataset` when it is finite and known, else None."""
    if isinstance(dataset, tf.data.Dataset):
        cardinality = int(dataset.cardinality())
        if cardinality >= 0:
            return cardinality
    return None


class _EpochBatches:
    """Distributes a batched dataset and yields the batches of each epoch as `fit` does.

    Without `steps_per_epoch` every epoch is one full pass over a fresh iterator. With it, an
    epoch is `steps_per_epoch` batches and the iterator carries over from epoch to epoch; when
    the data runs out the epoch ends early (with Keras's warning) and the next epoch starts a
    fresh pass.
    """

    def __init__(self, strategy, dataset, steps_per_epoch=None):
        self.num_batches = _cardinality(dataset)
        if not isinstance(dataset, tf.distribute.DistributedDataset):
            dataset = strategy.experimental_distribute_dataset(dataset)
        self.distributed = dataset
        self.steps_per_epoch = steps_per_epoch
        self._iterator = None
        self._seen = 0

    @property
    def steps(self) -> Optional[int]:
        """Steps of an epoch, if known (the progress bar's target)."""
        return self.steps_per_epoch or self.num_batches

    def _interrupted(self):
        if self.steps_per_epoch:
            warnings.warn(
                "Your input ran out of data; interrupting training. Make sure that your "
                "dataset can generate at least `steps_per_epoch * epochs` batches. You may "
                "need to use the `.repeat()` function when building your dataset.",
                stacklevel=3)

    def epoch(self):
        """Yields `(step, batch)` for one epoch; `batch` is a per-replica value."""
        if self._iterator is None or self.steps_per_epoch is None:
            self._iterator = iter(self.distributed)
            self._seen = 0
        step = 0
        while self.steps_per_epoch is None or step < self.steps_per_epoch:
            if self.num_batches is not None and self._seen >= self.num_batches:
                self._interrupted()
                break
            try:
                batch = next(self._iterator)
            except (StopIteration, tf.errors.OutOfRangeError):
                if self.num_batches is None:
                    self.num_batches = self._seen
                self._interrupted()
                self._iterator = None
                return
            self._seen += 1
            yield step, batch
            step += 1
        if self.num_batches is not None and self._seen >= self.num_batches:
            self._iterator = None


def _validates(epoch: int, validation_freq) -> bool:
    """Whether epoch `epoch` (0-based) is validated under `fit`'s `validation_freq`."""
    if isinstance(validation_freq, int):
        return (epoch + 1) % validation_freq == 0
    return epoch + 1 in validation_freq


def _metric_results(model) -> Dict[str, Any]:
    """The model's metrics as a flat dict (dict-valued results are merged in, as in Keras)."""
    results = {}
    for metric in model.metrics:
        result = metric.result()
        if isinstance(result, dict):
            results.update(result)
        else:
            results[metric.name] = result
    return results


def _make_step_function(model, strategy, step):
    """`batch -> logs`: runs `step` (train_step or test_step) on every replica, then reads the
    logs in the cross-replica context.

    As in `fit`, the step is traced without AutoGraph (`do_not_convert`): the same Python
    semantics as under `fit`, and no AutoGraph conversion racing in `MirroredStrategy`'s replica
    threads (which fails at random with errors such as "got multiple values for argument").
    """

    @tf.autograph.experimental.do_not_convert
    def run_step(batch):
        outputs = strategy.run(step, args=(batch,))
        metrics = _metric_results(model)
        if not isinstance(outputs, dict):
            return metrics
        logs = {}
        for key, value in outputs.items():
            if key in metrics:
                logs[key] = metrics[key]  # global-batch value, summed over replicas
            else:
                logs[key] = strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
        return logs

    if model.run_eagerly:
        return run_step
    return tf.function(run_step, reduce_retracing=True)


def custom_fit(model: keras.Model, strategy: tf.distribute.Strategy, train_dataset,
               validation_dataset=None, epochs: int = 1, initial_epoch: int = 0,
               steps_per_epoch: Optional[int] = None, callbacks=None, verbose: int = 1,
               validation_steps: Optional[int] = None,
               validation_freq=1) -> keras.callbacks.History:
    """Trains `model` under `strategy` with the contract of `model.fit`.

    Args:
      model: a compiled `keras.Model` with `train_step` / `test_step`, built (with its optimizer
        and metrics) inside `strategy.scope()`.
      strategy: any `tf.distribute.Strategy`, in particular `MultiWorkerMirroredStrategy`.
      train_dataset: a batched `tf.data.Dataset` of *global* batches (each replica gets its
        slice through `strategy.experimental_distribute_dataset`), or a `DistributedDataset`.
      validation_dataset: the same for validation, or None; its metrics are logged as `val_*`.
      epochs: index of the last epoch (as in `fit`); `initial_epoch`: the first one (resuming).
      steps_per_epoch: batches per epoch; None: one full pass over `train_dataset`.
      callbacks: Keras callbacks (or a `keras.callbacks.CallbackList`).
      verbose: 0 for silence, 1 for a progress bar (shown by the chief worker only).
      validation_steps: validation batches per epoch; None: the whole validation set.
      validation_freq: as in `fit`: validate every that many epochs (an int), or the listed
        epochs (1-based).

    Returns:
      The `keras.callbacks.History` of the run (also set as `model.history`), whose `history`
      holds the per-epoch logs.
    """
    if not getattr(model, "compiled", False):
        raise ValueError("custom_fit needs a compiled model: call model.compile(...) (or "
                         "compile_for_training) inside strategy.scope() first.")
    if model.distribute_strategy is not strategy:
        raise ValueError(
            f"custom_fit got a {type(strategy).__name__} object that is not the strategy the "
            f"model was built under (a {type(model.distribute_strategy).__name__}): build and "
            f"compile the model inside the scope of the strategy passed here.")
    with strategy.scope():
        # Optimizer variables must exist before the replica steps (no creation there).
        if hasattr(model, "build_optimizers"):
            model.build_optimizers()
        elif not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)

    train = _EpochBatches(strategy, train_dataset, steps_per_epoch)
    validation = (None if validation_dataset is None
                  else _EpochBatches(strategy, validation_dataset, validation_steps))
    train_function = _make_step_function(model, strategy, model.train_step)
    test_function = (None if validation is None
                     else _make_step_function(model, strategy, model.test_step))
    read_metrics = (_metric_results if model.run_eagerly
                    else tf.function(_metric_results, reduce_retracing=True))

    if not isinstance(callbacks, keras.callbacks.CallbackList):
        show_progress = bool(verbose) and is_chief(strategy)
        callbacks = keras.callbacks.CallbackList(
            callbacks, add_history=True, add_progbar=show_progress,
            verbose=verbose if show_progress else 0, epochs=epochs, steps=train.steps,
            model=model)

    model.stop_training = False
    callbacks.on_train_begin()
    epoch_logs = None
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        logs = None
        for step, batch in train.epoch():
            callbacks.on_train_batch_begin(step)
            logs = train_function(batch)
            callbacks.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        # Like `fit`: the epoch's logs are the last step's (the metrics' running values).
        epoch_logs = dict(logs if logs is not None else read_metrics(model))

        if validation is not None and _validates(epoch, validation_freq):
            model.reset_metrics()
            callbacks.on_test_begin()
            val_logs = None
            for step, batch in validation.epoch():
                callbacks.on_test_batch_begin(step)
                val_logs = test_function(batch)
                callbacks.on_test_batch_end(step, val_logs)
            val_logs = dict(val_logs if val_logs is not None else read_metrics(model))
            callbacks.on_test_end(val_logs)
            epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})

        callbacks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break

    if epochs > 0 and isinstance(getattr(model, "optimizer", None), keras.optimizers.Optimizer):
        with strategy.scope():
            model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs=epoch_logs)
    return model.history
