"""`training.jit_compile`: whether a run's training and evaluation steps are compiled with XLA.

`auto` (the default) decides once, at the start of a run (a resumed run keeps the decision of
its start), from the strategy, the run's length and the steps themselves:

1. XLA compiles a step for one device: under a strategy of several replicas (`MirroredStrategy`
   over 2 GPUs, the multi-worker loop) the steps stay plain `tf.function`s (Keras's replica step
   reads variables on other devices, and the gradient all-reduce runs inside it).
2. Compilation takes seconds to a minute and saves milliseconds a step: a run of fewer than
   `MIN_STEPS` training steps in all (`training.epochs` times the steps of an epoch) is not
   compiled (smoke tests, tiny runs).
3. Each step (`strategy.run(model.train_step)`, and `test_step`) is traced and lowered to HLO
   on a real first batch with `experimental_get_compiler_ir(...)(stage="hlo")` on the
   strategy's device: that converts every op or fails naming the ops XLA has no kernel for
   (`StatelessRandomGammaV3`, say), and it executes nothing, so weights, optimizer slots,
   counters and random streams are exactly what they were (a resumed run still ends where an
   uninterrupted one does). A step that does not convert is run without XLA. The function
   traced is Keras's own compiled step (`make_train_function`, `make_test_function`), traced
   for its dataset's element spec, so a step that is compiled is traced once: `fit`, its
   validation passes and the test evaluation reuse the probe's trace.
4. On a CPU, a step with convolutions stays without XLA: XLA's CPU backend has no oneDNN
   convolutions and ran Glow, RealNVP and DCGAN steps 1.3-2x slower than TensorFlow's kernels
   (2 cores), while fusing the many small ops of an MLP step made the static-MNIST VAE's 2.3x
   and the S-VAE's 4x faster. On GPUs XLA keeps cuDNN's convolutions.

`true` skips rules 2 and 4 and stops with a `ConfigError` naming the reason where 1 or 3 fails;
`false` never compiles. The decision is one line of the run's start banner, e.g.
`XLA: off, the training step uses StatelessRandomGammaV3, which XLA cannot compile for CPU`.

Results do not depend on the choice beyond the order of floating-point operations: the noise
of every model comes from `tfdgm.random`, which builds its floats from Philox's integer bits, the
same inside and outside an XLA cluster (TensorFlow's own float samplers map one seed to other
floats under XLA, and their default algorithm is about 50x slower there on a CPU).
"""

import dataclasses
import re
import time
from typing import Optional

import tensorflow as tf

from tfdgm.errors import ConfigError

MIN_STEPS = 1000
"""Rule 2: the fewest training steps of a run that `auto` compiles. Measured on 2 CPU cores: the
static-MNIST VAE step took 26 ms plain and 11 ms under XLA after 2-5 s of compilation (break-even
near 300 steps); the quickstart VAE step gained nothing."""

CONVOLUTION_OPS = ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput",
                   "Conv2DBackpropFilter", "Conv3DBackpropInputV2", "Conv3DBackpropFilterV2",
                   "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter",
                   "Conv")
"""Op types XLA's CPU backend runs slower than TensorFlow's oneDNN kernels (rule 4)."""


@dataclasses.dataclass(frozen=True)
class JitDecision:
    """What `select` decided: XLA for the training step (`train`) and the evaluation step
    (`test`), and the one-line reason (`describe()`)."""
    train: bool
    test: bool
    reason: str
    probe_seconds: float = 0.0

    def record(self) -> dict:
        """What a run keeps in its state (`RunState.xla`) for its resumption."""
        return {"train": self.train, "test": self.test, "reason": self.reason}

    def describe(self) -> str:
        if self.train and self.test:
            return "XLA: on (training and evaluation steps compiled)"
        if self.train or self.test:
            which = "training" if self.train else "evaluation"
            return f"XLA: on for the {which} step only; {self.reason}"
        return f"XLA: off, {self.reason}" if self.reason else "XLA: off"


def _device_type(strategy, device: Optional[str] = None) -> str:
    """`CPU` or `GPU`: the type of `device`, else of `strategy`'s first device, else of the
    device TensorFlow places ops on by default."""
    if device is None:
        try:
            device = strategy.extended.worker_devices[0]
        except RuntimeError:  # the default strategy
            device = tf.random.uniform([]).device
    return tf.DeviceSpec.from_string(device).device_type or "CPU"


def _replica_function(model, strategy, step):
    """`data -> strategy.run(step, data)` as an XLA-compiled `tf.function`, traced without
    AutoGraph as Keras traces its steps."""
    @tf.autograph.experimental.do_not_convert
    def run(data):
        return strategy.run(step, args=(data,))

    return tf.function(run, jit_compile=True)


def _graph_op_types(graph_def) -> set:
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


_UNSUPPORTED = re.compile(r"No registered '(\w+)' OpKernel for (\w+) devices")


def _reason_from_error(error: Exception, what: str, device_type: str) -> str:
    message = str(error)
    ops = list(dict.fromkeys(op for op, _ in _UNSUPPORTED.findall(message)))
    if ops:
        return (f"the {what} step uses {', '.join(ops)}, which XLA cannot compile for "
                f"{device_type}")
    first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return f"XLA cannot compile the {what} step ({first[:200]})"


def keras_step_function(model, which: str):
    """The `tf.function` of one step inside `model`'s Keras `{which}_function` (`which`:
    "train" or "test"), as `make_train_function` / `make_test_function` built it: `data ->
    strategy.run(step, data)` with the model's `jit_compile`; None where Keras builds its
    functions otherwise (then the probe traces a function of its own, `_replica_function`)."""
    function = getattr(model, f"{which}_function", None)
    code, cells = getattr(function, "__code__", None), getattr(function, "__closure__", None)
    if code is None or not cells:
        return None
    step = dict(zip(code.co_freevars, cells)).get("one_step_on_data")
    step = getattr(step.cell_contents, "__wrapped__", None) if step is not None else None
    return step if isinstance(step, tf.types.experimental.PolymorphicFunction) else None


def probe(model, strategy, step, batch, what: str, cpu_rule: bool,
          device: Optional[str] = None, function=None, spec=None) -> Optional[str]:
    """None if `step` (`model.train_step` or `test_step`) compiles with XLA on `strategy`'s
    device for `batch` (a distributed element, as Keras's step receives it), else why not.

    Traces the step and lowers it to HLO; nothing runs. With `cpu_rule`, a step with
    convolutions on a CPU is refused without lowering it (rule 4 of the module docstring).
    `function` is the XLA-compiled `tf.function` of the step to trace (default: a new one,
    `data -> strategy.run(step, data)`), `spec` the input signature to trace it for (default:
    `batch`'s); `batch` must fit `spec`.
    """
    device_type = _device_type(strategy, device)
    function = function or _replica_function(model, strategy, step)
    try:
        concrete = function.get_concrete_function(batch if spec is None else spec)
        if cpu_rule and device_type == "CPU":
            convolutions = sorted(_graph_op_types(concrete.graph.as_graph_def())
                                  & set(CONVOLUTION_OPS))
            if convolutions:
                return (f"the {what} step has convolutions ({', '.join(convolutions)}), which "
                        f"XLA runs slower than TensorFlow's oneDNN kernels on a CPU (set "
                        f"training.jit_compile: true to compile it anyway)")
        function.experimental_get_compiler_ir(batch)(stage="hlo", platform_name=device_type)
    except (ValueError, TypeError, tf.errors.OpError) as error:
        return _reason_from_error(error, what, device_type)
    return None


def _first_element(strategy, dataset):
    return next(iter(strategy.experimental_distribute_dataset(dataset.take(1))))


def _probe_step(model, strategy, which, dataset, cpu_rule, device) -> Optional[str]:
    """`probe` of `model`'s `which` ("train" or "test") step on `dataset`'s first element,
    through the step function of Keras's own compiled `{which}_function` (built with XLA by
    `_decide`) traced for `dataset`'s element spec, so that training reuses the trace."""
    step = getattr(model, f"{which}_step")
    what = "training" if which == "train" else "evaluation"
    return probe(model, strategy, step, _first_element(strategy, dataset), what, cpu_rule,
                 device, function=keras_step_function(model, which),
                 spec=dataset.element_spec)


def select(model, strategy, setting, train_dataset, validation_dataset=None,
           run_steps: Optional[int] = None, previous: Optional[dict] = None,
           device: Optional[str] = None) -> JitDecision:
    """Decides `training.jit_compile` (`"auto"`, True or False) for `model` (compiled, inside
    `strategy`) and builds its training and evaluation functions accordingly.

    Args:
      model, strategy: the run's compiled model and its strategy.
      setting: `training.jit_compile`.
      train_dataset, validation_dataset: give the first batches the steps are traced on
        (`train_dataset` may be the run's training stream: a new iterator of its first element
        consumes nothing of `fit`'s).
      run_steps: the training steps of the whole run, for rule 2 (None: not applied).
      previous: `JitDecision.record()` of the run's start, which a resumed run under `auto`
        keeps (where its steps still compile), so that it continues with the same steps (the
        same noise either way, but other rounding).
      device: the device the steps run on (default: `strategy`'s first).

    Raises:
      ConfigError: `setting` is True and a step cannot be compiled (the message says why).
    """
    start = time.perf_counter()
    model.build_optimizers()  # no variable may be created while a step is traced
    if setting == "auto" and previous is not None:
        decision = _kept(model, strategy, train_dataset, validation_dataset, previous, device)
    else:
        decision = _decide(model, strategy, setting, train_dataset, validation_dataset, run_steps,
                           device=device)
    apply(model, decision)
    return dataclasses.replace(decision, probe_seconds=time.perf_counter() - start)


def _kept(model, strategy, train_dataset, validation_dataset, previous,
          device=None) -> JitDecision:
    reason = previous.get("reason", "")
    if not (previous["train"] or previous["test"]):
        return JitDecision(False, False, f"{reason} (decided at the run's start)")
    now = _decide(model, strategy, True, train_dataset, validation_dataset, None, forced=False,
                  device=device)
    train, test = previous["train"] and now.train, previous["test"] and now.test
    return JitDecision(train, test, now.reason if (train, test) != (previous["train"],
                                                                    previous["test"]) else reason)


def _decide(model, strategy, setting, train_dataset, validation_dataset, run_steps,
            forced=None, device=None) -> JitDecision:
    if setting is False:
        return JitDecision(False, False, "training.jit_compile: false")
    forced = setting is True if forced is None else forced
    rules = setting == "auto"
    replicas = strategy.num_replicas_in_sync
    reason = None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        reason = "the multi-worker loop runs its steps as plain tf.functions"
    elif replicas > 1:
        reason = (f"{type(strategy).__name__} runs the step on {replicas} replicas and XLA "
                  f"compiles a step for one device")
    elif rules and run_steps is not None and run_steps < MIN_STEPS:
        reason = (f"the run has {run_steps} training steps, too few to repay XLA's compilation "
                  f"(auto compiles runs of {MIN_STEPS} or more; training.jit_compile: true "
                  f"compiles anyway)")
    elif not _supports_jit(model):
        reason = "a layer of the model declares that it does not support XLA"
    if reason is None:
        _build_functions(model, train=True, test=True)
        reason = _probe_step(model, strategy, "train", train_dataset, rules, device)
        test_reason = None
        if reason is None and validation_dataset is not None:
            test_reason = _probe_step(model, strategy, "test", validation_dataset, rules,
                                      device)
        if reason is None:
            if test_reason is not None and forced:
                raise _forced_error(test_reason)
            return JitDecision(True, test_reason is None, test_reason or "")
    if forced:
        raise _forced_error(reason)
    return JitDecision(False, False, reason)


def _forced_error(reason: str) -> ConfigError:
    return ConfigError(f"training.jit_compile: true, but {reason}. Set training.jit_compile: "
                       f"auto (XLA where it compiles) or false.")


def _supports_jit(model) -> bool:
    from keras.src.trainers.trainer import model_supports_jit

    return model_supports_jit(model)


def _build_functions(model, train: bool, test: bool) -> None:
    """Builds `model`'s Keras training and evaluation functions with XLA as `train` and `test`
    say. A function already built (and maybe traced, by the probe) with its setting is kept:
    what each was built with is recorded on the model."""
    built = getattr(model, "_tfdgm_xla_functions", {})
    for which, jit in (("test", test), ("train", train)):
        if built.get(which) is not jit or getattr(model, f"{which}_function") is None:
            model.jit_compile = jit
            getattr(model, f"make_{which}_function")(force=True)
    model.jit_compile = train and test  # what later functions (predict) use
    model._tfdgm_xla_functions = {"train": train, "test": test}


def apply(model, decision: JitDecision) -> None:
    """Builds `model`'s Keras training and evaluation functions with XLA as `decision` says
    (`fit` and `evaluate` then reuse them); those the probe built with the same setting are kept
    with their traces."""
    _build_functions(model, decision.train, decision.test)
