"""Optimizers: the `optimizer:` config section and the Keras optimizers it makes.

A family with one optimizer role reads one `OptimizerConfig`; one with several (a GAN's
generator and discriminator) reads one per role (`tfdgm.experiment.resolve`).
"""

import dataclasses
from typing import TYPE_CHECKING, Dict, Optional

from tfdgm.errors import ConfigError

if TYPE_CHECKING:
    import keras


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """One optimizer: `adam`, `adamax`, `rmsprop` or `sgd` with its learning rate, moments
    (`beta_1`, `beta_2` for Adam and Adamax; `rho` for RMSProp; `momentum` for SGD and RMSProp)
    and optional gradient clipping by global norm (`clipnorm`)."""
    name: str = dataclasses.field(
        default="adam", metadata={"choices": ("adam", "adamax", "rmsprop", "sgd")})
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-7
    clipnorm: Optional[float] = None

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ConfigError(f"optimizer.learning_rate must be positive, got {self.learning_rate}.")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ConfigError(f"optimizer.clipnorm must be positive (or null), got {self.clipnorm}.")



def _keras_optimizers():
    import keras  # not at import time: configs are checked before TensorFlow loads

    return {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax,
            "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}


def make_optimizer(config: OptimizerConfig):
    """The Keras optimizer of one `OptimizerConfig`."""
    optimizers = _keras_optimizers()
    common = dict(learning_rate=config.learning_rate, clipnorm=config.clipnorm)
    if config.name in ("adam", "adamax"):
        return optimizers[config.name](beta_1=config.beta_1, beta_2=config.beta_2,
                                       epsilon=config.epsilon, **common)
    if config.name == "rmsprop":
        return optimizers["rmsprop"](rho=config.rho, momentum=config.momentum,
                                     epsilon=config.epsilon, **common)
    return optimizers["sgd"](momentum=config.momentum, **common)


def make_optimizers(model, optimizer_config) -> Dict[str, "keras.optimizers.Optimizer"]:
    """`{role: optimizer}` for the model's `optimizer_roles` from the resolved `optimizer`
    section (one `OptimizerConfig`, or one per role)."""
    if isinstance(optimizer_config, OptimizerConfig):
        (role,) = model.optimizer_roles
        return {role: make_optimizer(optimizer_config)}
    return {role: make_optimizer(optimizer_config[role]) for role in model.optimizer_roles}


