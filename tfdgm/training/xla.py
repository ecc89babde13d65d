"""`training.jit_compile`: whether a run's training and evaluation steps are compiled with XLA.

`auto` (the default) decides once, before the first step, from the steps themselves:

1. XLA compiles a step for one device: under a strategy of several replicas (`MirroredStrategy`
   over 2 GPUs, the multi-worker loop) the steps stay plain `tf.function`s (Keras's replica step
   reads variables on other devices, and the gradient all-reduce runs inside it).
2. Each step (`strategy.run(model.train_step)`, and `test_step`) is traced on a real first
   batch and lowered to HLO with `experimental_get_compiler_ir(...)(stage="hlo")` on the
   strategy's device: that converts every op or fails naming the ops XLA has no kernel for
   (`StatelessRandomGammaV3`, say), and it executes nothing, so weights, optimizer slots,
   counters and random streams are exactly what they were (a resumed run still ends where an
   uninterrupted one does). A step that does not convert is run without XLA.
3. On a CPU, a step with convolutions stays without XLA: XLA's CPU backend has no oneDNN
   convolutions and ran Glow, RealNVP and DCGAN steps 1.3-2x slower than TensorFlow's kernels
   (2 cores, `bench/`), while fusing the many small ops of an MLP step made the VAE's 2-4x
   faster. On GPUs XLA keeps cuDNN's convolutions.

`true` skips rule 3 and stops with a `ConfigError` naming the reason where 1 or 2 fails; `false`
never compiles. The decision is one line of the run's start banner, e.g.
`XLA: off, the training step uses StatelessRandomGammaV3, which XLA cannot compile for CPU`.

Results do not depend on the choice beyond the order of floating-point operations, with one
exception to know about: TensorFlow's stateless float samplers (`tf.random.stateless_normal`,
`stateless_uniform`) map the same Philox bits to floats differently with and without XLA, so the
same seed gives other noise (the integer bits, `stateless_uniform(dtype=tf.uint32, minval=None,
maxval=None)`, agree). Under the default `alg="auto_select"` XLA on a CPU also draws them with a
slow generator (about 60x slower than `alg="philox"`).
"""

import dataclasses
import re
import time
from typing import Optional

import tensorflow as tf

from tfdgm.errors import ConfigError

CONVOLUTION_OPS = ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput",
                   "Conv2DBackpropFilter", "Conv3DBackpropInputV2", "Conv3DBackpropFilterV2",
                   "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter",
                   "Conv")
"""Op types XLA's CPU backend runs slower than TensorFlow's oneDNN kernels (rule 3)."""


@dataclasses.dataclass(frozen=True)
class JitDecision:
    """What `select` decided: XLA for the training step (`train`) and the evaluation step
    (`test`), and the one-line reason (`describe()`)."""
    train: bool
    test: bool
    reason: str
    probe_seconds: float = 0.0

    def describe(self) -> str:
        if self.train and self.test:
            return "XLA: on (training and evaluation steps compiled)"
        if self.train or self.test:
            which = "training" if self.train else "evaluation"
            return f"XLA: on for the {which} step only; {self.reason}"
        return f"XLA: off, {self.reason}" if self.reason else "XLA: off"


def _device(strategy) -> str:
    return strategy.extended.worker_devices[0]


def _device_type(strategy) -> str:
    return tf.DeviceSpec.from_string(_device(strategy)).device_type or "CPU"


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


def probe(model, strategy, step, batch, what: str, cpu_rule: bool) -> Optional[str]:
    """None if `step` (`model.train_step` or `test_step`) compiles with XLA on `strategy`'s
    device for `batch` (a distributed element, as Keras's step receives it), else why not.

    Traces the step and lowers it to HLO; nothing runs. With `cpu_rule`, a step with
    convolutions on a CPU is refused without lowering it (rule 3 of the module docstring).
    """
    device_type = _device_type(strategy)
    function = _replica_function(model, strategy, step)
    try:
        concrete = function.get_concrete_function(batch)
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


def select(model, strategy, setting, train_dataset, validation_dataset=None) -> JitDecision:
    """Decides `training.jit_compile` (`"auto"`, True or False) for `model` (compiled, inside
    `strategy`) and builds its training and evaluation functions accordingly.

    The datasets give the first batches the steps are traced on (`train_dataset` is the run's
    training stream: a new iterator of its first element, which consumes nothing of `fit`'s).

    Raises:
      ConfigError: `setting` is True and a step cannot be compiled (the message says why).
    """
    start = time.perf_counter()
    model.build_optimizers()  # no variable may be created while a step is traced
    decision = _decide(model, strategy, setting, train_dataset, validation_dataset)
    apply(model, decision)
    return dataclasses.replace(decision, probe_seconds=time.perf_counter() - start)


def _decide(model, strategy, setting, train_dataset, validation_dataset) -> JitDecision:
    if setting is False:
        return JitDecision(False, False, "training.jit_compile: false")
    replicas = strategy.num_replicas_in_sync
    reason = None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        reason = "the multi-worker loop runs its steps as plain tf.functions"
    elif replicas > 1:
        reason = (f"{type(strategy).__name__} runs the step on {replicas} replicas and XLA "
                  f"compiles a step for one device")
    elif not _supports_jit(model):
        reason = "a layer of the model declares that it does not support XLA"
    if reason is None:
        cpu_rule = setting == "auto"
        reason = probe(model, strategy, model.train_step, _first_element(strategy, train_dataset),
                       "training", cpu_rule)
        test_reason = None
        if reason is None and validation_dataset is not None:
            test_reason = probe(model, strategy, model.test_step,
                                _first_element(strategy, validation_dataset), "evaluation",
                                cpu_rule)
        if reason is None:
            if test_reason is not None and setting is True:
                raise _forced_error(test_reason)
            return JitDecision(True, test_reason is None, test_reason or "")
    if setting is True:
        raise _forced_error(reason)
    return JitDecision(False, False, reason)


def _forced_error(reason: str) -> ConfigError:
    return ConfigError(f"training.jit_compile: true, but {reason}. Set training.jit_compile: "
                       f"auto (XLA where it compiles) or false.")


def _supports_jit(model) -> bool:
    from keras.src.trainers.trainer import model_supports_jit

    return model_supports_jit(model)


def apply(model, decision: JitDecision) -> None:
    """Builds `model`'s Keras training and evaluation functions with XLA as `decision` says
    (`fit` and `evaluate` then reuse them)."""
    model.jit_compile = decision.test
    model.make_test_function(force=True)
    model.jit_compile = decision.train
    model.make_train_function(force=True)
    model.jit_compile = decision.train and decision.test  # what later functions (predict) use
