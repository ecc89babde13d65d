"""`training.steps_per_execution`: how many training steps one call of Keras's training function
runs.

With one step a call, `fit` returns to Python after every step: it fetches the step's logs,
calls the callbacks and dispatches the next call. For a short step that host round trip is a
large share of the step. On 2 CPU cores the static-MNIST VAE's library epoch took 0.93x the bare
non-XLA step at one XLA step a call and 0.75x at 25; the RBM's CD-1 epoch 1.20x and 1.00x;
a reduced Glow's (uncompiled, convolutional, about 60 ms a step) 1.01x and 0.96x at 20
(`bench/bench_vae.py`, `bench/bench_steps.py`, docs/RESULTS.md). With `N` steps a call, Keras
runs them in one `tf.while_loop` (its `steps_per_execution`) around the same step function,
compiled or not, so the weights, metrics and noise after an epoch do not change
(`tests/training/test_execution.py`). What changes: batch-level callbacks
(`on_train_batch_begin`/`_end`, and the progress bar) run once a call, with the logs of its last
step. The library's own callbacks act per epoch.

`auto` (the default) runs the largest divisor of the epoch's steps up to `AUTO_LIMIT` a call: an
epoch then ends on a call's boundary, since Keras would otherwise run a whole last call past it.
It runs one step a call on more than one replica: Keras 3.15's loop of several steps fails under
`MirroredStrategy`, even for a `Sequential` model ("You must feed a value for placeholder tensor
'while/body/.../while/cond/Placeholder'", keras#19246), and the multi-worker loop
(`tfdgm.training.loop`) calls one step at a time.

An integer forces that many steps a call. It must divide the epoch's steps, and be 1 on more
than one replica; otherwise `choose` raises a `ConfigError` that says why.
"""

import dataclasses

from tfdgm.errors import ConfigError

AUTO_LIMIT = 32
"""The most steps a call that `auto` chooses. The VAE epoch took 0.75x the bare step at 10 a call
and 0.73x at 100, so most of the gain is there by 10; 32 keeps the progress bar's updates
frequent (every 32 steps at most)."""


@dataclasses.dataclass(frozen=True)
class Execution:
    """`steps` training steps a call of the training function, and why (`describe()`)."""
    steps: int
    reason: str

    def describe(self) -> str:
        noun = "step" if self.steps == 1 else "steps"
        return f"{self.steps} training {noun} a call ({self.reason})"


def divisors(n: int, limit: int) -> list:
    """The divisors of `n` up to `limit`, ascending."""
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def choose(setting, steps_per_epoch: int, replicas: int = 1,
           multi_worker: bool = False) -> Execution:
    """The steps a call for `training.steps_per_execution` (`setting`: "auto" or an int).

    Args:
      setting: `training.steps_per_execution`.
      steps_per_epoch: the training steps of an epoch.
      replicas: the replicas the steps run on (`strategy.num_replicas_in_sync`).
      multi_worker: whether the multi-worker loop trains the run (one step a call, whatever
        the model says).

    Raises:
      ConfigError: `setting` is an int that does not divide `steps_per_epoch`, or is more than
        1 on more than one replica or under the multi-worker loop.
    """
    if setting == "auto":
        if multi_worker:
            return Execution(1, "the multi-worker loop runs one step a call")
        if replicas > 1:
            return Execution(1, f"auto: one step a call on {replicas} replicas (keras#19246)")
        steps = divisors(steps_per_epoch, AUTO_LIMIT)[-1]
        return Execution(steps, f"auto: the largest divisor of the epoch's {steps_per_epoch} "
                                f"steps up to {AUTO_LIMIT}")
    if multi_worker and setting != 1:
        raise ConfigError(f"training.steps_per_execution: {setting}, but the multi-worker loop "
                          f"runs one step a call. Set training.steps_per_execution: auto or 1.")
    if replicas > 1 and setting != 1:
        raise ConfigError(f"training.steps_per_execution: {setting}, but the steps run on "
                          f"{replicas} replicas, where Keras 3.15's loop of several steps a call "
                          f"fails (keras#19246). Set training.steps_per_execution: auto or 1.")
    if steps_per_epoch % setting:
        options = ", ".join(map(str, divisors(steps_per_epoch, max(AUTO_LIMIT, setting))))
        raise ConfigError(f"training.steps_per_execution: {setting} does not divide the "
                          f"{steps_per_epoch} steps of an epoch, so an epoch would end inside a "
                          f"call. Use one of its divisors (up to {max(AUTO_LIMIT, setting)}: "
                          f"{options}) or auto.")
    return Execution(setting, "training.steps_per_execution")


def apply(model, execution: Execution) -> None:
    """Makes `model`'s Keras training and evaluation functions run `execution.steps` steps a
    call. Keras reads the number when a function is first called (it traces its loop then) and
    when `fit` or `evaluate` makes its epoch iterator, so this must come before the first
    call; functions already built are kept, with their traced steps."""
    model.steps_per_execution = execution.steps
