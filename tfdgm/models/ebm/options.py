"""The energy-based family's config sections: `model:` (`RBMOptions`, `DBNOptions`) and
`evaluation:` (`EBMEvaluationOptions`).

```yaml
model: {name: rbm, hidden_units: 500, cd_steps: 1, persistent: false, weight_decay: 2e-4}
# or, for grey images: {name: rbm, visible: gaussian, hidden_units: 500, ...}
optimizer: {name: sgd, learning_rate: 0.05, momentum: 0.9}
evaluation: {ais_chains: 100, ais_betas: null}     # null: the paper's 15000 betas
```
"""

import dataclasses
from typing import List, Optional

from tfdgm.errors import ConfigError
from tfdgm.models.base import SampleQualityOptions


def _check_common(options, where="model"):
    if options.cd_steps < 1:
        raise ConfigError(f"{where}.cd_steps must be >= 1 (k of CD-k), got {options.cd_steps}.")
    if options.weight_decay < 0 or options.init_stddev <= 0:
        raise ConfigError(f"{where}.weight_decay must be >= 0 and {where}.init_stddev > 0.")
    if options.num_chains is not None and options.num_chains < 1:
        raise ConfigError(f"{where}.num_chains must be >= 1 (or null: data.batch_size).")
    if options.sample_steps < 1:
        raise ConfigError(f"{where}.sample_steps must be >= 1, got {options.sample_steps}.")
    if options.pseudo_likelihood_coordinates is not None and \
            options.pseudo_likelihood_coordinates < 1:
        raise ConfigError(f"{where}.pseudo_likelihood_coordinates must be >= 1 (or null: "
                          f"exact, all D coordinates).")


@dataclasses.dataclass(frozen=True)
class RBMOptions:
    """An RBM trained by CD-k or persistent CD.

    `visible`: `bernoulli` (binary images) or `gaussian` (grey images: the Gaussian-Bernoulli
    RBM on pixels standardized per component, `v = (x - mean) / max(std, pixel_scale_floor)`
    with the training split's means and standard deviations; Hinton 2010, section 13.2).
    `learn_sigma` (gaussian only): learn the visible standard deviations (Cho, Ilin & Raiko
    2011) instead of keeping them at 1. `pixel_scale_floor` (gaussian only): the least scale, in
    pixel units, of a standardized component (near-constant border pixels would otherwise blow
    up).

    `cd_steps`: Gibbs sweeps per negative sample (k). `persistent`: the negative samples come
    from `num_chains` fantasy chains that persist across updates (PCD, Tieleman 2008; null:
    `data.batch_size` chains) instead of chains started at the data (CD-k). `weight_decay`:
    L2 penalty `weight_decay / 2 ||W||^2` added to the loss. `init_stddev`: `W ~ N(0, s^2)`.
    `sample_steps`: Gibbs sweeps of `sample` (and the sample grids).
    `pseudo_likelihood_coordinates`: coordinates per example of the stochastic
    pseudo-log-likelihood the validation monitors (null: exact, all D).
    """
    name: str = "rbm"
    visible: str = dataclasses.field(default="bernoulli",
                                     metadata={"choices": ("bernoulli", "gaussian")})
    learn_sigma: bool = False
    pixel_scale_floor: Optional[float] = None
    hidden_units: int = 500
    cd_steps: int = 1
    persistent: bool = False
    num_chains: Optional[int] = None
    weight_decay: float = 0.0
    init_stddev: float = 0.01
    sample_steps: int = 1000
    pseudo_likelihood_coordinates: Optional[int] = 16

    def __post_init__(self):
        if self.hidden_units < 1:
            raise ConfigError(f"model.hidden_units must be >= 1, got {self.hidden_units}.")
        _check_common(self)
        if self.visible == "bernoulli":
            for key, unset in (("learn_sigma", not self.learn_sigma),
                               ("pixel_scale_floor", self.pixel_scale_floor is None)):
                if not unset:
                    raise ConfigError(f"model.{key} applies to Gaussian visible units; set "
                                      f"model.visible=gaussian or remove model.{key}.")
        elif self.pixel_scale_floor is not None and not 0 < self.pixel_scale_floor <= 1:
            raise ConfigError(f"model.pixel_scale_floor must be in (0, 1] (pixel units), got "
                              f"{self.pixel_scale_floor}.")

    @property
    def scale_floor(self) -> float:
        """`pixel_scale_floor`, 0.01 (2.55 grey levels) when unset."""
        return 0.01 if self.pixel_scale_floor is None else self.pixel_scale_floor


@dataclasses.dataclass(frozen=True)
class DBNOptions:
    """A deep belief net (Hinton, Osindero & Teh 2006) trained greedily, one RBM at a time.

    `hidden_units`: the sizes of the hidden layers, bottom up (one RBM per entry; the top RBM
    is the last pair). Layer `l` trains during epochs `[l E, (l + 1) E)` with
    `E = epochs_per_layer`, on the hidden probabilities of the layers below. The other options
    are those of `RBMOptions`, shared by every layer.
    """
    name: str = "dbn"
    hidden_units: List[int] = dataclasses.field(default_factory=lambda: [500, 2000])
    epochs_per_layer: int = 10
    cd_steps: int = 1
    persistent: bool = False
    num_chains: Optional[int] = None
    weight_decay: float = 0.0
    init_stddev: float = 0.01
    sample_steps: int = 1000
    pseudo_likelihood_coordinates: Optional[int] = 16

    def __post_init__(self):
        if not self.hidden_units or any(units < 1 for units in self.hidden_units):
            raise ConfigError(f"model.hidden_units must be a non-empty list of positive sizes, "
                              f"got {self.hidden_units}.")
        if self.epochs_per_layer < 1:
            raise ConfigError(f"model.epochs_per_layer must be >= 1, got "
                              f"{self.epochs_per_layer}.")
        _check_common(self)


@dataclasses.dataclass(frozen=True)
class EBMEvaluationOptions(SampleQualityOptions):
    """Test-time estimates.

    `ais_chains`: AIS chains M (0: no AIS, hence no log-likelihood). `ais_schedule`:
    `[end beta, count]` segments of the inverse temperatures (Salakhutdinov & Murray 2008:
    1000 to 0.5, 4000 to 0.9, 10000 to 1). `ais_betas`: null keeps the counts; an integer K
    rescales them to K betas in all. `ais_runs`: independent AIS runs whose mean is reported
    (their spread is a second check of the standard error). `bound_samples`: samples of the
    DBN's variational bound per test example. `max_test_examples`: null for all.
    """
    ais_chains: int = 100
    ais_schedule: List[List[float]] = dataclasses.field(
        default_factory=lambda: [[0.5, 1000], [0.9, 4000], [1.0, 10000]])
    ais_betas: Optional[int] = None
    ais_runs: int = 1
    bound_samples: int = 10
    max_test_examples: Optional[int] = None

    def __post_init__(self):
        super().__post_init__()
        if self.ais_chains < 0 or self.ais_runs < 1 or self.bound_samples < 1:
            raise ConfigError("evaluation.ais_chains must be >= 0 (0: off), ais_runs and "
                              "bound_samples >= 1.")
        try:
            self.betas()
        except ValueError as error:
            raise ConfigError(f"evaluation.ais_schedule / ais_betas: {error}.") from None

    def betas(self):
        """The `[K + 1]` inverse temperatures (`tfdgm.models.ebm.ais.beta_schedule`)."""
        from tfdgm.models.ebm.ais import beta_schedule

        for segment in self.ais_schedule:
            if len(segment) != 2:
                raise ValueError(f"each segment is [end beta, count], got {segment}")
        return beta_schedule([(end, int(count)) for end, count in self.ais_schedule],
                             self.ais_betas)
