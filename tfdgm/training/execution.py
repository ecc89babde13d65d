"""`training.steps_per_execution`: how many training steps one call of Keras's training function
runs.

With one step a call, `fit` returns to Python after every step: it fetches the step's logs,
calls the callbacks and dispatches the next call. For a small compiled step that host round trip
is a large share of the step. On 2 CPU cores it was about 1.2 ms of the static-MNIST VAE's 7.7 ms
XLA step (the library epoch took 0.89x the bare non-XLA step with one step a call, and 0.75x
with 10; `bench/bench_vae.py`). With `N` steps a call, Keras runs them in one `tf.while_loop`
(its `steps_per_execution`). The inner step is the same function, compiled or not, so the
weights, metrics and noise after an epoch do not change (`tests/training/test_execution.py`).
What changes: batch-level callbacks (`on_train_batch_begin`/`_end`, and the progress bar) run
once a call, with the logs of its last step. The library's own callbacks act per epoch.

`auto` (the default) chooses:

* when the training step is XLA-compiled (`tfdgm.training.xla`), the largest divisor of the
  epoch's steps up to `AUTO_LIMIT`: an epoch then ends on a call's boundary, since Keras would
  otherwise run a whole last call past it;
* one step a call otherwise. A step that XLA does not compile is a convolutional step on a CPU,
  or a step on several replicas or workers, or one with ops that XLA lacks; it is either long
  (tens to hundreds of ms, where the round trip is noise) or runs in a loop that calls one step
  at a time (the multi-worker loop). One step a call also keeps the progress bar fine-grained.

An integer forces that many steps a call. It must divide the epoch's steps, and be 1 under the
multi-worker loop; otherwise `choose` raises a `ConfigError` that names the divisors.
"""

import dataclasses

from tfdgm.errors import ConfigError

AUTO_LIMIT = 32
"""The most steps a call that `auto` chooses. On 2 CPU cores the VAE epoch took 0.75x the bare
step with 10 a call and 0.73x with 100, so most of the gain is there by 10. A limit of 32 keeps
the progress bar's updates frequent."""


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


def choose(setting, steps_per_epoch: int, compiled: bool, multi_worker: bool) -> Execution:
    """The steps a call for `training.steps_per_execution` (`setting`: "auto" or an int).

    Args:
      setting: `training.steps_per_execution`.
      steps_per_epoch: the training steps of an epoch.
      compiled: whether the training step is XLA-compiled (`JitDecision.train`).
      multi_worker: whether the run trains with the multi-worker loop, which runs one step
        a call.

    Raises:
      ConfigError: `setting` is an int that does not divide `steps_per_epoch`, or is more than
        1 under the multi-worker loop.
    """
    if setting == "auto":
        if multi_worker:
            return Execution(1, "the multi-worker loop runs one step a call")
        if not compiled:
            return Execution(1, "auto: the training step is not XLA-compiled")
        steps = divisors(steps_per_epoch, AUTO_LIMIT)[-1]
        return Execution(steps, f"auto: the largest divisor of the epoch's {steps_per_epoch} "
                                f"steps up to {AUTO_LIMIT}, for an XLA-compiled step")
    if multi_worker and setting != 1:
        raise ConfigError(f"training.steps_per_execution: {setting}, but the multi-worker loop "
                          f"runs one step a call. Set training.steps_per_execution: auto or 1.")
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
