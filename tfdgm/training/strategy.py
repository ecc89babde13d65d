"""The `tf.distribute` strategy named by the config.

Create it before any other TensorFlow op (multi-worker strategies must be created first), then
build the model, optimizer and metrics inside `strategy.scope()`.
"""

import itertools
import json
import os

import tensorflow as tf

from tfdgm.errors import ConfigError

# Each MirroredStrategy numbers its collective all-reduce keys from the same base, and the runtime
# remembers a key's tensor shapes for the life of the process: a second strategy training a model
# of another size then fails ("Shape mismatch in the collective instance"). One range each.
_COLLECTIVE_KEY_RANGES = itertools.count(1)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the strategy for `distribute.strategy`.

    * `auto`: `MirroredStrategy` over every visible GPU when there are two or more, else
      `OneDeviceStrategy` on the GPU or the CPU.
    * `one_device`: the first GPU, else the CPU.
    * `mirrored`: `MirroredStrategy` over all visible GPUs (or all logical CPUs when there is
      no GPU). XLA does not compile its steps (`tfdgm.training.xla`).
    * `multi_worker`: `MultiWorkerMirroredStrategy`, cluster from the `TF_CONFIG` variable.
    """
    if name == "multi_worker":  # first: listing devices would configure the runtime
        tf_config = os.environ.get("TF_CONFIG")
        if not tf_config:
            raise ConfigError("distribute.strategy=multi_worker needs the TF_CONFIG environment "
                              "variable ({\"cluster\": {\"worker\": [...]}, \"task\": {...}}).")
        try:
            json.loads(tf_config)
        except json.JSONDecodeError as error:
            raise ConfigError(f"TF_CONFIG is not valid JSON: {error}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        tf.distribute.MirroredStrategy._collective_key_base = 10_000 * next(_COLLECTIVE_KEY_RANGES)
        return tf.distribute.MirroredStrategy(devices)
    raise ConfigError(f"distribute.strategy: unknown strategy '{name}'.")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, logs and results (worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())
