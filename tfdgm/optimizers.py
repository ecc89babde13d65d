"""Optimizers: the `optimizer:` config section and the Keras optimizers it makes.

A family with one optimizer role reads one `OptimizerConfig`; one with several (a GAN's
generator and discriminator) reads one per role (`tfdgm.experiment.resolve`).

Schedules (Hinton 2010, "A Practical Guide to Training Restricted Boltzmann Machines", sections
7 and 9: a learning rate that decays, a momentum of 0.5 for the first epochs and 0.9 after):

```yaml
optimizer:
  name: sgd
  learning_rate: 0.05          # the base rate r
  momentum: 0.5                # the first momentum
  schedule: {name: exponential, decay_rate: 0.95, unit: epochs}   # r 0.95^epoch
  momentum_schedule: {final: 0.9, after: 5, unit: epochs}         # 0.9 from the 6th epoch
```

The rate of update `t` (counted from 0, the optimizer's `iterations`) is `r f(u)` with `u = t`
(`unit: steps`) or `u = floor(t / S)` (`unit: epochs`, `S` steps an epoch: the rate is constant
within an epoch, and epoch `e`, counted from 0, has `u = e`):

```none
constant      f(u) = 1
exponential   f(u) = decay_rate ^ (u / decay_every)
cosine        f(u) = final_factor + (1 - final_factor) (1 + cos(pi min(u, decay_length) /
                                                        decay_length)) / 2
step          f(u) = factors[i], i = #{boundaries b : u >= b}  (boundaries in units done)
momentum      mu(u) = momentum for u < after, final for u >= after
```

Both are functions of the update counter that checkpoints keep, so a resumed run continues its
schedules exactly. The base rate `r` stays the optimizer's `learning_rate` variable: a
resumption that sets a new `optimizer.learning_rate` (the NaN guard's advice) rescales the rest
of the schedule, and reading `optimizer.learning_rate` gives the scheduled rate of the next
update, `r f(u)`. The factors are Keras schedules (`keras.optimizers.schedules`) of `u` with an
initial rate of 1; Keras's SGD and RMSprop take a constant momentum, so the scheduled optimizers
here compute their momentum update with `mu(u)`.
"""

import dataclasses
import math
from typing import TYPE_CHECKING, Dict, List, Optional

from tfdgm.errors import ConfigError

if TYPE_CHECKING:
    import keras

SCHEDULE_OPTIONS = {
    "constant": {"required": (), "optional": ()},
    "exponential": {"required": ("decay_rate",), "optional": ("decay_every",)},
    "cosine": {"required": ("decay_length",), "optional": ("final_factor",)},
    "step": {"required": ("boundaries", "factors"), "optional": ()},
}
"""The keys of `optimizer.schedule` each schedule needs and accepts beyond `name` and `unit`."""


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """`optimizer.schedule`: the factor `f(u)` of the base learning rate (module docstring).

    `name`: `constant` (default), `exponential` (`decay_rate` in (0, 1] per `decay_every` units,
    default 1), `cosine` (from 1 down to `final_factor`, default 0, over `decay_length` units,
    then constant) or `step` (`factors[i]` from `boundaries[i - 1]` units on; `factors` has one
    more entry than the increasing positive `boundaries`). `unit`: `epochs` or `steps`.
    """
    name: str = dataclasses.field(default="constant",
                                  metadata={"choices": tuple(SCHEDULE_OPTIONS)})
    unit: str = dataclasses.field(default="epochs", metadata={"choices": ("epochs", "steps")})
    decay_rate: Optional[float] = None
    decay_every: Optional[float] = None
    decay_length: Optional[int] = None
    final_factor: Optional[float] = None
    boundaries: Optional[List[int]] = None
    factors: Optional[List[float]] = None

    def __post_init__(self):
        where = "optimizer.schedule"
        accepted = SCHEDULE_OPTIONS[self.name]
        for key in ("decay_rate", "decay_every", "decay_length", "final_factor", "boundaries",
                    "factors"):
            given = getattr(self, key) is not None
            if given and key not in accepted["required"] + accepted["optional"]:
                users = [name for name, keys in SCHEDULE_OPTIONS.items()
                         if key in keys["required"] + keys["optional"]]
                raise ConfigError(f"{where}.{key} belongs to the {' and '.join(users)} "
                                  f"schedule, not to name: {self.name}; remove it.")
            if not given and key in accepted["required"]:
                raise ConfigError(f"{where}: the {self.name} schedule needs {key} "
                                  f"({self._meaning(key)}).")
        if self.decay_rate is not None and not 0 < self.decay_rate <= 1:
            raise ConfigError(f"{where}.decay_rate must be in (0, 1] (the factor per "
                              f"decay_every {self.unit}), got {self.decay_rate}.")
        if self.decay_every is not None and not self.decay_every > 0:
            raise ConfigError(f"{where}.decay_every must be positive, got {self.decay_every}.")
        if self.decay_length is not None and self.decay_length < 1:
            raise ConfigError(f"{where}.decay_length must be at least 1 {self.unit[:-1]}, got "
                              f"{self.decay_length}.")
        if self.final_factor is not None and not 0 <= self.final_factor <= 1:
            raise ConfigError(f"{where}.final_factor must be in [0, 1], got "
                              f"{self.final_factor}.")
        if self.name == "step":
            if not self.boundaries or any(b < 1 for b in self.boundaries) or any(
                    b <= a for a, b in zip(self.boundaries, self.boundaries[1:])):
                raise ConfigError(f"{where}.boundaries must be increasing positive counts of "
                                  f"{self.unit} done, got {self.boundaries}.")
            if len(self.factors) != len(self.boundaries) + 1:
                raise ConfigError(
                    f"{where}.factors needs one more entry than boundaries (the factor before "
                    f"the first boundary, then one from each boundary on): got "
                    f"{len(self.factors)} factors for {len(self.boundaries)} boundaries.")
            if any(not f > 0 for f in self.factors):
                raise ConfigError(f"{where}.factors must be positive, got {self.factors}.")

    def _meaning(self, key):
        return {"decay_rate": f"the factor per {self.unit[:-1]}, e.g. decay_rate: 0.95",
                "decay_length": f"the {self.unit} from the base rate to final_factor times it",
                "boundaries": f"the {self.unit} done at which the factor changes, e.g. [10, 20]",
                "factors": "the factors of the base rate, one more than boundaries, e.g. "
                           "[1.0, 0.1, 0.01]"}[key]

    def factor(self, u: float) -> float:
        """`f(u)` in plain Python (the formula the Keras schedule computes; tests, reports)."""
        if self.name == "constant":
            return 1.0
        if self.name == "exponential":
            return self.decay_rate ** (u / (self.decay_every or 1.0))
        if self.name == "cosine":
            alpha = self.final_factor or 0.0
            progress = min(u, self.decay_length) / self.decay_length
            return alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.factors[sum(u >= b for b in self.boundaries)]


@dataclasses.dataclass(frozen=True)
class MomentumScheduleConfig:
    """`optimizer.momentum_schedule`: `final` momentum from `after` `unit`s done on (before it:
    `optimizer.momentum`); `final: null` keeps the momentum constant. SGD and RMSprop only."""
    final: Optional[float] = None
    after: Optional[int] = None
    unit: str = dataclasses.field(default="epochs", metadata={"choices": ("epochs", "steps")})

    def __post_init__(self):
        where = "optimizer.momentum_schedule"
        if (self.final is None) != (self.after is None):
            raise ConfigError(f"{where}: give both final (the momentum after the switch) and "
                              f"after (the {self.unit} before it), e.g. {{final: 0.9, after: "
                              f"5}}, or neither.")
        if self.final is not None and not 0 <= self.final < 1:
            raise ConfigError(f"{where}.final must be in [0, 1), got {self.final}.")
        if self.after is not None and self.after < 1:
            raise ConfigError(f"{where}.after must be at least 1 {self.unit[:-1]}, got "
                              f"{self.after}.")

    @property
    def active(self) -> bool:
        return self.final is not None


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """One optimizer: `adam`, `adamax`, `rmsprop` or `sgd` with its learning rate, moments
    (`beta_1`, `beta_2` for Adam and Adamax; `rho` for RMSProp; `momentum` for SGD and RMSProp)
    and optional gradient clipping by global norm (`clipnorm`).

    `learning_rate` is the base rate of `schedule` (`ScheduleConfig`; default constant) and
    `momentum` the first momentum of `momentum_schedule` (`MomentumScheduleConfig`; default
    constant), see the module docstring."""
    name: str = dataclasses.field(
        default="adam", metadata={"choices": ("adam", "adamax", "rmsprop", "sgd")})
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-7
    clipnorm: Optional[float] = None
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    momentum_schedule: MomentumScheduleConfig = dataclasses.field(
        default_factory=MomentumScheduleConfig)

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ConfigError(f"optimizer.learning_rate must be positive, got "
                              f"{self.learning_rate}.")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ConfigError(f"optimizer.clipnorm must be positive (or null), got "
                              f"{self.clipnorm}.")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"optimizer.momentum must be in [0, 1), got {self.momentum}.")
        if self.momentum_schedule.active and self.name not in ("sgd", "rmsprop"):
            raise ConfigError(f"optimizer.momentum_schedule: {self.name} has no momentum (its "
                              f"first moment is beta_1); use name: sgd or rmsprop, or remove "
                              f"momentum_schedule.")

    @property
    def scheduled(self) -> bool:
        """Whether the rate or the momentum follows a schedule."""
        return self.schedule.name != "constant" or self.momentum_schedule.active

    def needs_steps_per_epoch(self) -> bool:
        return ((self.schedule.name != "constant" and self.schedule.unit == "epochs")
                or (self.momentum_schedule.active and self.momentum_schedule.unit == "epochs"))

    def learning_rate_at(self, step: int, steps_per_epoch: Optional[int] = None) -> float:
        """The rate of update `step` (from 0), `learning_rate f(u)`, in plain Python."""
        return self.learning_rate * self.schedule.factor(
            _units(step, self.schedule.unit, steps_per_epoch))

    def momentum_at(self, step: int, steps_per_epoch: Optional[int] = None) -> float:
        """The momentum of update `step` (from 0), in plain Python."""
        schedule = self.momentum_schedule
        if not schedule.active:
            return self.momentum
        return schedule.final if _units(step, schedule.unit, steps_per_epoch) >= schedule.after \
            else self.momentum


def _units(step, unit, steps_per_epoch):
    if unit == "steps":
        return step
    if not steps_per_epoch:
        raise ValueError("a schedule in epochs needs steps_per_epoch")
    return step // steps_per_epoch


# The Keras side ---------------------------------------------------------------------------------

def _keras_factor(schedule: ScheduleConfig):
    """The Keras schedule of `f(u)` (initial rate 1), or None for `constant`."""
    import keras

    schedules = keras.optimizers.schedules
    if schedule.name == "exponential":
        return schedules.ExponentialDecay(1.0, decay_steps=schedule.decay_every or 1.0,
                                          decay_rate=schedule.decay_rate)
    if schedule.name == "cosine":
        return schedules.CosineDecay(1.0, decay_steps=schedule.decay_length,
                                     alpha=schedule.final_factor or 0.0)
    if schedule.name == "step":
        # Keras's piecewise schedule takes factors[i + 1] for u > boundary i; u is an integer,
        # so u >= b (b units done) is u > b - 1.
        return schedules.PiecewiseConstantDecay([b - 1 for b in schedule.boundaries],
                                                [float(f) for f in schedule.factors])
    return None


class ScheduledOptimizer:
    """Mixin of the scheduled Keras optimizers (`ScheduledSGD`, ...): the learning rate is the
    base-rate variable times a Keras schedule of the update count, the momentum (SGD, RMSprop)
    a function of it (module docstring).

    `schedule_start` (an int64 optimizer variable, saved with the optimizer's state) is the
    update at which the schedules start: `restart_schedules()` sets it to `iterations`, which is
    how a deep belief net gives each greedily trained layer the schedules of a fresh optimizer.

    The classes are not registered for Keras serialization: runs keep optimizer *states* in
    weights files and rebuild the optimizers from the config.
    """

    optimizer_config: Optional[OptimizerConfig] = None
    steps_per_epoch: Optional[int] = None
    _rate_factor = None

    def _init_schedules(self, config: OptimizerConfig, steps_per_epoch: Optional[int]):
        self.optimizer_config = config
        self.steps_per_epoch = steps_per_epoch
        self._rate_factor = _keras_factor(config.schedule)
        self.schedule_start = self.add_variable(shape=(), initializer="zeros", dtype="int64",
                                                aggregation="only_first_replica",
                                                name="schedule_start")

    def schedule_units(self, unit: str):
        """`u` of the next update: updates (or whole epochs) since `schedule_start`, int64."""
        import keras

        steps = keras.ops.cast(self.iterations, "int64") - self.schedule_start
        if unit == "steps":
            return steps
        if not self.steps_per_epoch:
            raise ValueError(
                "optimizer.schedule / momentum_schedule in epochs: the optimizer was made "
                "without steps_per_epoch (make_optimizer(config, steps_per_epoch=S)).")
        return steps // self.steps_per_epoch

    @property
    def base_learning_rate(self):
        """The base-rate variable `r` (`optimizer.learning_rate` in the config)."""
        import keras

        return keras.optimizers.Optimizer.learning_rate.fget(self)

    @property
    def learning_rate(self):
        """The rate of the next update, `r f(u)`."""
        import keras

        base = self.base_learning_rate
        if self._rate_factor is None:
            return base
        factor = self._rate_factor(self.schedule_units(self.optimizer_config.schedule.unit))
        return base * keras.ops.cast(factor, base.dtype)

    @learning_rate.setter
    def learning_rate(self, value):
        """Sets the base rate `r` (the schedule continues from it)."""
        import keras

        keras.optimizers.Optimizer.learning_rate.fset(self, value)

    def current_momentum(self):
        """The momentum of the next update, a float32 scalar tensor."""
        import keras

        config = self.optimizer_config
        schedule = config.momentum_schedule
        if not schedule.active:
            return keras.ops.convert_to_tensor(config.momentum, "float32")
        switched = self.schedule_units(schedule.unit) >= schedule.after
        return keras.ops.where(switched, float(schedule.final), float(config.momentum))

    def restart_schedules(self):
        """The schedules start again at the next update (as for a fresh optimizer)."""
        self.schedule_start.assign(self.iterations)


_SCHEDULED: Dict[str, type] = {}


def _scheduled_classes():
    """`{name: class}` of the scheduled optimizers (defined on first use: configs are checked
    before Keras loads)."""
    if _SCHEDULED:
        return _SCHEDULED
    import keras
    from keras import ops

    class ScheduledAdam(ScheduledOptimizer, keras.optimizers.Adam):
        """Adam with a learning-rate schedule."""

    class ScheduledAdamax(ScheduledOptimizer, keras.optimizers.Adamax):
        """Adamax with a learning-rate schedule."""

    class ScheduledSGD(ScheduledOptimizer, keras.optimizers.SGD):
        """SGD with learning-rate and momentum schedules: `m <- mu(u) m - lr(u) g`,
        `w <- w + m` (Keras's update, with the momentum of the update count)."""

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            if self.optimizer_config.momentum_schedule.active and not self.momentums:
                self.momentums = self.add_optimizer_variables(variables, "momentum")

        def update_step(self, gradient, variable, learning_rate):
            if not self.optimizer_config.momentum_schedule.active:
                return super().update_step(gradient, variable, learning_rate)
            learning_rate = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(gradient, variable.dtype)
            momentum = ops.cast(self.current_momentum(), variable.dtype)
            m = self.momentums[self._get_variable_index(variable)]
            self.assign(m, ops.subtract(ops.multiply(m, momentum),
                                        ops.multiply(gradient, learning_rate)))
            self.assign_add(variable, m)

    class ScheduledRMSprop(ScheduledOptimizer, keras.optimizers.RMSprop):
        """RMSprop with learning-rate and momentum schedules: `s <- rho s + (1 - rho) g^2`,
        `m <- mu(u) m + lr(u) g / sqrt(s + epsilon)`, `w <- w - m` (Keras's uncentred update,
        with the momentum of the update count)."""

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            if self.optimizer_config.momentum_schedule.active and not self._momentums:
                self._momentums = self.add_optimizer_variables(var_list, "momentum")

        def update_step(self, gradient, variable, learning_rate):
            if not self.optimizer_config.momentum_schedule.active:
                return super().update_step(gradient, variable, learning_rate)
            learning_rate = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(gradient, variable.dtype)
            momentum = ops.cast(self.current_momentum(), variable.dtype)
            index = self._get_variable_index(variable)
            velocity, m = self._velocities[index], self._momentums[index]
            self.assign(velocity, ops.add(ops.multiply(self.rho, velocity),
                                          ops.multiply(1 - self.rho, ops.square(gradient))))
            increment = ops.divide(ops.multiply(learning_rate, gradient),
                                   ops.sqrt(ops.add(velocity, self.epsilon)))
            self.assign(m, ops.add(ops.multiply(momentum, m), increment))
            self.assign_sub(variable, m)

    _SCHEDULED.update(adam=ScheduledAdam, adamax=ScheduledAdamax, sgd=ScheduledSGD,
                      rmsprop=ScheduledRMSprop)
    return _SCHEDULED



def _keras_optimizers():
    import keras  # not at import time: configs are checked before TensorFlow loads

    return {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax,
            "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}


def make_optimizer(config: OptimizerConfig, steps_per_epoch: Optional[int] = None):
    """The Keras optimizer of one `OptimizerConfig`: Keras's own class, or with a schedule its
    `ScheduledOptimizer` subclass. `steps_per_epoch` (`S`) is needed by schedules in epochs
    (only when the rate or momentum is read: a model that is only evaluated needs none).

    Example:

    ```python
    config = build_section(OptimizerConfig, {
        "name": "sgd", "learning_rate": 0.1, "momentum": 0.5,
        "schedule": {"name": "exponential", "decay_rate": 0.9},
        "momentum_schedule": {"final": 0.9, "after": 5}}, "optimizer")
    optimizer = make_optimizer(config, steps_per_epoch=600)
    float(optimizer.learning_rate)      # 0.1 at update 0; 0.1 * 0.9^e in epoch e
    ```
    """
    optimizers = _scheduled_classes() if config.scheduled else _keras_optimizers()
    common = dict(learning_rate=config.learning_rate, clipnorm=config.clipnorm)
    if config.name in ("adam", "adamax"):
        optimizer = optimizers[config.name](beta_1=config.beta_1, beta_2=config.beta_2,
                                            epsilon=config.epsilon, **common)
    elif config.name == "rmsprop":
        optimizer = optimizers["rmsprop"](rho=config.rho, momentum=config.momentum,
                                          epsilon=config.epsilon, **common)
    else:
        optimizer = optimizers["sgd"](momentum=config.momentum, **common)
    if config.scheduled:
        optimizer._init_schedules(config, steps_per_epoch)
    return optimizer


def make_optimizers(model, optimizer_config, steps_per_epoch: Optional[int] = None
                    ) -> Dict[str, "keras.optimizers.Optimizer"]:
    """`{role: optimizer}` for the model's `optimizer_roles` from the resolved `optimizer`
    section (one `OptimizerConfig`, or one per role); `steps_per_epoch` as for
    `make_optimizer`."""
    if isinstance(optimizer_config, OptimizerConfig):
        (role,) = model.optimizer_roles
        return {role: make_optimizer(optimizer_config, steps_per_epoch)}
    return {role: make_optimizer(optimizer_config[role], steps_per_epoch)
            for role in model.optimizer_roles}


def unwrap(optimizer):
    """The optimizer inside a `LossScaleOptimizer` (itself otherwise)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def base_learning_rate(optimizer) -> float:
    """The base rate `r` of `optimizer` (its scheduled rate's `r`, else its rate): what
    `optimizer.learning_rate` sets in a config."""
    import keras

    inner = unwrap(optimizer)
    rate = inner.base_learning_rate if isinstance(inner, ScheduledOptimizer) else \
        inner.learning_rate
    return float(keras.ops.convert_to_numpy(rate))


def restart_schedules(optimizer) -> None:
    """Restarts `optimizer`'s schedules at its next update (no-op without schedules)."""
    inner = unwrap(optimizer)
    if isinstance(inner, ScheduledOptimizer):
        inner.restart_schedules()


__all__ = ["MomentumScheduleConfig", "OptimizerConfig", "ScheduleConfig", "ScheduledOptimizer",
           "base_learning_rate", "make_optimizer", "make_optimizers", "restart_schedules",
           "unwrap"]
