"""Numeric precision of a run: `training.precision: float32 | mixed_float16 | mixed_bfloat16`.

Under a mixed policy (Micikevicius et al., 2018, "Mixed Precision Training") Keras layers keep
float32 variables and compute in float16 or bfloat16. A layer takes the global dtype policy when
it is constructed, so the policy only needs to hold while a model is built
(`tfdgm.experiment.build_model`); it is restored afterwards, so one process can build models of
several precisions. Under `mixed_float16` every optimizer is wrapped in Keras's
`LossScaleOptimizer` (dynamic loss scaling: float16 gradients underflow without it), and custom
`train_step`s scale their losses through `optimizer.scale_loss`; bfloat16 has float32's exponent
range and needs no scaling.
"""

import contextlib
from typing import TYPE_CHECKING, Dict

if TYPE_CHECKING:
    import keras

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def policy_scope(precision: str):
    """Sets Keras's global dtype policy to `precision` (one of `PRECISIONS`) for the block."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_loss_scaling(optimizers: Dict[str, "keras.optimizers.Optimizer"], precision: str):
    """`optimizers` (`{role: optimizer}`), each wrapped in a `LossScaleOptimizer` under
    `mixed_float16`; unchanged otherwise."""
    import keras

    if precision != "mixed_float16":
        return optimizers
    return {role: keras.optimizers.LossScaleOptimizer(optimizer)
            for role, optimizer in optimizers.items()}
