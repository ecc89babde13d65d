"""Numeric precision of a run: `training.precision: float32 | mixed_float16 | mixed_bfloat16`.

Mixed precision (Micikevicius et al., 2018, "Mixed Precision Training", ICLR): the networks
compute in float16 or bfloat16, which halves their memory traffic and runs on the tensor cores
of a GPU, while every variable and every quantity whose error would bias the objective stays in
float32. Here the policy is, layer by layer:

* **Networks** (encoders, decoders, MADEs, coupling conditioners, the GAN's players) take the
  run's Keras dtype policy: float32 variables, low-precision compute, low-precision outputs.
* **Density layers** (posteriors, priors, likelihoods, the invertible flow layers, the
  dequantizer; `FullPrecision`) compute in the policy's *variable* dtype, float32: their own
  parameters (ActNorm's scales, the 1x1 convolutions' matrices, the VampPrior's pseudo-inputs)
  are never rounded, and the outputs of the networks they own are cast to float32 before they
  parameterize a distribution or a bijector. Log-densities, log-determinants, logsumexps,
  Bessel functions, the bounds and bits/dim are therefore float32, and a flow's inverse and
  log-det are those of exactly the map its forward pass applies.
* **Models** keep their data path (quantization, dequantization noise, the latent noise) in
  float32 (`full_precision_dtype`), feed Keras metrics float32 terms, and their custom
  `train_step`s scale the loss with `optimizer.scale_loss` (the identity unless the optimizer
  is a `LossScaleOptimizer`, whose `apply` unscales the gradients).

A layer takes the global dtype policy when it is constructed, so the policy only needs to hold
while a model is built (`policy_scope`, used by `tfdgm.experiment.build_model`); it is restored
afterwards, so one process can build models of several precisions. Under `mixed_float16` every
optimizer is wrapped in Keras's `LossScaleOptimizer` (dynamic loss scaling: float16 gradients
underflow without it; `with_loss_scaling`); bfloat16 has float32's exponent range and needs no
scaling. The wrapper forwards `learning_rate` and `iterations` to the optimizer it wraps
(`tfdgm.optimizers.unwrap`), not `clipnorm`: set that on the inner optimizer.

Example:

```python
from tfdgm.data import dataset_info
from tfdgm.experiment import build_model, load_config

config = load_config("configs/quickstart.yaml", ["training.precision=mixed_bfloat16"])
vae = build_model(config, dataset_info(config.data))
vae.encoder.compute_dtype      # "bfloat16": the networks compute in bfloat16
vae.posterior.compute_dtype    # "float32": the densities do not
vae.elbo(images).dtype         # float32
```

#### References

[1]: Paulius Micikevicius, Sharan Narang, Jonah Alben, Gregory Diamos, Erich Elsen, David
     Garcia, Boris Ginsburg, Michael Houston, Oleksii Kuchaiev, Ganesh Venkatesh and Hao Wu.
     Mixed Precision Training. In _International Conference on Learning Representations_, 2018.
     https://arxiv.org/abs/1710.03740
"""

import contextlib
from typing import TYPE_CHECKING, Dict

if TYPE_CHECKING:
    import keras

# Nothing here imports Keras at module level: configs are checked before TensorFlow loads.

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

__all__ = ["FullPrecision", "PRECISIONS", "full_precision_dtype", "full_precision_policy",
           "policy_scope", "with_loss_scaling"]


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


def full_precision_policy(dtype=None) -> "keras.DTypePolicy":
    """The policy of a layer that computes densities: `dtype` (a policy, its name, or `None`
    for the global policy) reduced to its variable dtype, `float32` for `mixed_bfloat16` and
    `mixed_float16`; a plain policy (`float32`, `float64`) is returned as it is."""
    import keras

    policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
    if policy.compute_dtype == policy.variable_dtype:
        return policy
    return keras.dtype_policies.get(policy.variable_dtype)


def full_precision_dtype(layer: "keras.layers.Layer") -> str:
    """The dtype `layer` computes densities and holds data in: its variable dtype (`float32`
    under a mixed policy)."""
    return layer.dtype_policy.variable_dtype


class FullPrecision:
    """Mixin of Keras layers that compute densities: first base of `class L(FullPrecision,
    keras.layers.Layer)`.

    The layer's `dtype` argument (default: the global policy) is the run's policy. The layer
    itself computes in that policy's variable dtype (`full_precision_policy`: float32 under a
    mixed policy), so its variables are read unrounded inside `call` and Keras casts its
    inputs to float32; `self.network_policy` is the run's policy itself, for the networks the
    layer owns (pass `dtype=self.network_policy` to them, and to density sublayers, which reduce
    it again). Network outputs come back in the low precision: cast them with
    `self.full_precision(...)` before they parameterize a distribution or a bijector.
    `get_config()["dtype"]` is the run's policy, so `from_config` rebuilds the same split.
    """

    def __init__(self, *args, dtype=None, **kwargs):
        import keras

        network_policy = (keras.dtype_policies.get(dtype) if dtype is not None
                          else keras.config.dtype_policy())
        super().__init__(*args, dtype=full_precision_policy(network_policy), **kwargs)
        self.network_policy = network_policy

    def full_precision(self, *tensors):
        """`tensors` cast to the layer's compute dtype (one tensor, or a tuple of them)."""
        import tensorflow as tf

        cast = tuple(tf.cast(tensor, self.compute_dtype) for tensor in tensors)
        return cast[0] if len(cast) == 1 else cast

    def get_config(self):
        import keras

        return {**super().get_config(),
                "dtype": keras.dtype_policies.serialize(self.network_policy)}
