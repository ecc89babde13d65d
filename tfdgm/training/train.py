"""`train_and_evaluate(config, run_dir)`: the whole life of a run.

A run directory holds:

    config.yaml              the resolved config
    checkpoints/             last.weights.h5, best.weights.h5 (model + optimizer), state.json
    logs/                    TensorBoard event files
    metrics.json             final test figures
    samples.png, reconstructions.png, interpolation.png

Running the same command again resumes from `checkpoints/last.weights.h5` (after Ctrl-C or
`kill -9`); a finished run only re-evaluates if its `metrics.json` is missing.
"""

import dataclasses
import json
import os
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from tfdgm import config as config_lib
from tfdgm.data import load_datasets, load_images
from tfdgm.errors import ConfigError
from tfdgm.evaluation import (active_units, image_grids, importance_sampled_log_likelihood,
                              posterior_statistics, save_png)
from tfdgm.evaluation.elbo_surgery import elbo_surgery, supports_elbo_surgery
from tfdgm.models import build_model
from tfdgm.training import callbacks as cb
from tfdgm.training.strategy import is_chief, make_strategy
from tfdgm.training.tensorboard import TensorBoardLogger

# Sections that may change between a run and its resumption.
RESUMABLE_CHANGES = ("training.epochs", "training.patience", "training.image_every_epochs",
                     "evaluation", "export", "distribute", "data.data_dir", "data.eval_batch_size")


def make_optimizer(config: config_lib.OptimizerConfig) -> keras.optimizers.Optimizer:
    optimizer_class = {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax}[config.name]
    return optimizer_class(learning_rate=config.learning_rate, clipnorm=config.clipnorm)


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("encoder", "decoder", "posterior", "prior",
                                                   "likelihood"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_same_experiment(saved: config_lib.Config, current: config_lib.Config, run_dir: str):
    """Raises `ConfigError` if `current` differs from the run's saved config beyond what a
    resumption may change."""
    old, new = _flat(saved.to_dict()), _flat(current.to_dict())
    changed = [key for key in sorted(set(old) | set(new))
               if old.get(key) != new.get(key)
               and not any(key == r or key.startswith(r + ".") for r in RESUMABLE_CHANGES)]
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


def restore(model: keras.Model, path: str) -> None:
    """Loads weights (and optimizer state, if the model has a built optimizer) from `path`."""
    if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(path)


def fit(model, strategy, datasets, config, callbacks, initial_epoch):
    """Runs the epochs with `model.fit`, or with the custom loop under multi-worker training
    (Keras 3.15's `fit` fails under `MultiWorkerMirroredStrategy`, keras#20585)."""
    training = config.training
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from tfdgm.training.loop import custom_fit
        return custom_fit(model, strategy, datasets.train, datasets.validation,
                          epochs=training.epochs, initial_epoch=initial_epoch,
                          steps_per_epoch=training.steps_per_epoch, callbacks=callbacks)
    return model.fit(datasets.train, validation_data=datasets.validation,
                     epochs=training.epochs, initial_epoch=initial_epoch,
                     steps_per_epoch=training.steps_per_epoch, callbacks=callbacks, verbose=1)


def train_and_evaluate(config: config_lib.Config, run_dir: str,
                       strategy: Optional[tf.distribute.Strategy] = None) -> Dict[str, Any]:
    """Trains (or resumes) the run in `run_dir`, then evaluates its best checkpoint on the test
    split and writes `metrics.json`. Returns the metrics."""
    strategy = strategy or make_strategy(config.distribute.strategy)
    chief = is_chief(strategy)
    run = Run(run_dir)
    if os.path.exists(run.config):
        check_same_experiment(config_lib.load(run.config), config, run_dir)
    os.makedirs(run.checkpoints, exist_ok=True)
    if chief:
        config_lib.dump(config, run.config)

    datasets = load_datasets(config.data, seed=config.seed)
    state = cb.RunState.load(run.checkpoints) if os.path.exists(run.checkpoint("last")) else None
    with strategy.scope():
        keras.utils.set_random_seed(config.seed)  # the same config, the same initial weights
        model = build_model(config, datasets.info)
        model.compile(optimizer=make_optimizer(config.optimizer),
                      jit_compile=config.training.jit_compile)
        if state is not None:
            restore(model, run.checkpoint("last"))
            print(f"Resuming {run_dir} after epoch {state.epochs_done}.")
        elif getattr(model.prior, "needs_training_images", False):
            # VampPrior with init=training_images: K random training images (a fresh run only).
            model.prior.initialize_pseudo_inputs(load_images(config.data, "train"),
                                                 seed=config.seed)
    state = state or cb.RunState()

    finished = state.stopped_early or state.epochs_done >= config.training.epochs
    logger = None
    if chief:  # only the chief writes TensorBoard events
        images = next(iter(datasets.validation.unbatch().batch(64))).numpy()
        logger = TensorBoardLogger(run.logs, images, config.to_dict(),
                                   global_batch_size=config.data.batch_size,
                                   image_every=config.training.image_every_epochs,
                                   seed=config.seed)
    if not finished:
        callbacks = [
            cb.KLWarmup(config.objective.warmup_epochs),
            cb.NonFiniteGuard(run.checkpoints),
            cb.RunCheckpointer(run.checkpoints, state, config.training.patience,
                               config.objective.warmup_epochs, write=chief),
        ] + ([logger] if logger else [])
        fit(model, strategy, datasets, config, callbacks, initial_epoch=state.epochs_done)
    elif os.path.exists(run.metrics):
        print(f"{run_dir} is finished; its results are in {run.metrics}.")
        with open(run.metrics) as f:
            return json.load(f)

    if not chief:
        return {}
    logger.set_model(model)
    metrics = evaluate(model, datasets, config, run, state, strategy=strategy)
    logger.log_test_metrics(metrics, step=max(state.epochs_done, 1))
    return metrics


def evenly_spaced(dataset, num_examples: int, limit: Optional[int]):
    """`(unbatched dataset, count)`: every example of a batched `dataset` of `num_examples`, or
    `limit` of them spread evenly over it (every k-th), so a subset does not inherit the order of
    the file (the first 1000 static-MNIST test digits score 12 nats worse than the rest)."""
    examples = dataset.unbatch()
    if not limit or limit >= num_examples:
        return examples, num_examples
    return examples.shard(num_examples // limit, 0).take(limit), limit


def evaluate(model, datasets, config, run: Run, state: Optional[cb.RunState] = None,
             write: bool = True, strategy: Optional[tf.distribute.Strategy] = None
             ) -> Dict[str, Any]:
    """Restores the best checkpoint and computes the test figures; writes `metrics.json` and the
    image grids."""
    with (strategy or tf.distribute.get_strategy()).scope():
        restore(model, run.checkpoint("best"))
    model.eval_step.assign(0)
    test = model.evaluate(datasets.test, verbose=0, return_dict=True)
    evaluation = config.evaluation
    metrics: Dict[str, Any] = {f"test_{k}": float(v) for k, v in test.items() if k != "loss"}
    if evaluation.nll_samples > 0:
        print(f"Importance-sampled NLL with S={evaluation.nll_samples} samples:")
        nll_data, count = evenly_spaced(datasets.test, datasets.info.num_examples["test"],
                                        evaluation.nll_examples)
        estimates = importance_sampled_log_likelihood(
            model, nll_data.batch(max(1, evaluation.nll_pass_size // evaluation.nll_chunk)),
            num_samples=evaluation.nll_samples, chunk=evaluation.nll_chunk,
            seed=config.seed + 1, num_examples=count)
        metrics["test_nll"] = float(-estimates["log_likelihood"].mean())
        metrics["test_nll_examples"] = int(len(estimates["log_likelihood"]))
        for key, values in estimates.items():
            if key.startswith("iwae_"):
                metrics[f"test_{key}"] = float(values.mean())
    stats = posterior_statistics(model, datasets.test)
    active = active_units(stats["mean"], evaluation.active_unit_threshold)
    metrics["active_units"] = int(active.sum())
    if "kl_per_dim" in stats and model.prior.is_standard_normal:  # KL to N(0, I) per dimension
        metrics["kl_per_dimension"] = [float(v) for v in stats["kl_per_dim"].mean(axis=0)]
    if evaluation.surgery_examples > 0 and supports_elbo_surgery(model):
        surgery_data, count = evenly_spaced(datasets.test, datasets.info.num_examples["test"],
                                            evaluation.surgery_examples)
        surgery = elbo_surgery(model, surgery_data.batch(config.data.eval_batch_size),
                               max_examples=count, seed=config.seed + 2)
        metrics["test_surgery_examples"] = surgery.pop("num_examples")
        metrics.update({f"test_{key}": value for key, value in surgery.items()})
    if state is not None:
        metrics.update(epochs_trained=state.epochs_done, best_epoch=state.best_epoch + 1,
                       stopped_early=state.stopped_early,
                       train_seconds=float(sum(h["seconds"] for h in state.history)))
    if write:
        cb.write_atomically(run.metrics, lambda tmp: cb.dump_json(metrics, tmp))
        images = next(iter(datasets.test.unbatch().batch(64))).numpy()
        for name, grid in image_grids(model, images, seed=config.seed).items():
            save_png(grid, os.path.join(run.dir, f"{name}.png"))
    return metrics
