"""The density-flow family's config sections: `model:` (`GlowOptions`, `RealNVPOptions`,
`MAFOptions`) and `evaluation:` (`FlowEvaluationOptions`).

```yaml
model:
  name: glow                     # or realnvp, maf
  n_bits: 8                      # levels K = 2^n_bits (below 8: Glow's reduced bit depth)
  dequantization: variational    # or uniform
  dequantization_steps: 4        # conditional couplings of q(u | x) (variational only)
  dequantization_hidden: 32
  logit_alpha: 0.0               # 0: no logit (the flow sees y - 1/2); RealNVP 0.05, MNIST 1e-6
  num_levels: 2
  num_steps: 8
  hidden_channels: 128
evaluation: {dequantization_samples: 16, round_trip_examples: 100}
```
"""

import dataclasses
from typing import List

from tfdgm.errors import ConfigError
from tfdgm.models.base import SampleQualityOptions

_DEQUANTIZATIONS = ("uniform", "variational")
_SCALES = ("sigmoid", "tanh", "additive")


@dataclasses.dataclass(frozen=True)
class DensityFlowOptions:
    """Preprocessing shared by every density flow (see `tfdgm.models.flows.dequantization`).

    `n_bits`: bit depth the images are reduced to (`x_q = floor(255 x / 2^(8 - n_bits))`).
    `dequantization`: `uniform` (`u ~ U[0, 1)^D`) or `variational` (Flow++'s `q(u | x)`, a
    conditional flow of `dequantization_steps` couplings of width `dequantization_hidden`).
    `logit_alpha`: the flow models `logit(alpha + (1 - 2 alpha) y)` with its log-det included
    (RealNVP: 0.05; 1e-6 on MNIST); 0 models `y - 1/2` directly (Glow).
    """
    name: str = "glow"
    n_bits: int = 8
    dequantization: str = dataclasses.field(default="uniform",
                                            metadata={"choices": _DEQUANTIZATIONS})
    dequantization_steps: int = 4
    dequantization_hidden: int = 32
    logit_alpha: float = 0.0

    def __post_init__(self):
        if not 1 <= self.n_bits <= 8:
            raise ConfigError(f"model.n_bits must be in 1..8, got {self.n_bits}.")
        if not 0. <= self.logit_alpha < 0.5:
            raise ConfigError(f"model.logit_alpha must be in [0, 0.5) (0: no logit), got "
                              f"{self.logit_alpha}.")
        if self.dequantization_steps < 1 or self.dequantization_hidden < 1:
            raise ConfigError("model.dequantization_steps and model.dequantization_hidden "
                              "must be >= 1.")


@dataclasses.dataclass(frozen=True)
class GlowOptions(DensityFlowOptions):
    """Glow (Kingma & Dhariwal 2018): `num_levels` levels of `num_steps` steps (actnorm, LU 1x1
    convolution if `lu`, affine coupling of width `hidden_channels` with `coupling_scale`),
    learned split priors and a learned top prior. Images need `H, W` divisible by
    `2^num_levels`. `split_prior_log_std`: the split priors' log-std at initialization, 0 as in
    the paper; -2 is TFP's `tfb.Glow` start, 0.7 bits/dim better after 300 steps on mnist5k
    (3 seeds) but far worse on a tiny model's short run (docs/RESULTS.md)."""
    name: str = "glow"
    num_levels: int = 2
    num_steps: int = 8
    hidden_channels: int = 128
    lu: bool = True
    coupling_scale: str = dataclasses.field(default="sigmoid", metadata={"choices": _SCALES})
    learn_top: bool = True
    learn_split_priors: bool = True
    split_prior_log_std: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.num_levels < 1 or self.num_steps < 1 or self.hidden_channels < 1:
            raise ConfigError("model.num_levels, model.num_steps and model.hidden_channels "
                              "must be >= 1.")


@dataclasses.dataclass(frozen=True)
class RealNVPOptions(DensityFlowOptions):
    """RealNVP (Dinh et al. 2017): `num_scales` scales of checkerboard and channel couplings of
    width `hidden_channels`, `num_final_couplings` at the last scale, optional ActNorm before
    each coupling. Images need `H, W` divisible by `2^(num_scales - 1)`."""
    name: str = "realnvp"
    logit_alpha: float = 0.05
    num_scales: int = 2
    hidden_channels: int = 64
    num_final_couplings: int = 4
    coupling_scale: str = dataclasses.field(default="tanh", metadata={"choices": _SCALES})
    actnorm: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.num_scales < 1 or self.hidden_channels < 1 or self.num_final_couplings < 1:
            raise ConfigError("model.num_scales, model.hidden_channels and "
                              "model.num_final_couplings must be >= 1.")


@dataclasses.dataclass(frozen=True)
class MAFOptions(DensityFlowOptions):
    """MAF (Papamakarios et al. 2017) over the flattened pixels in logit space: `num_flows`
    MADE layers (MAF(5), MAF(10)) with `hidden_units`, orderings alternating, log-scales
    soft-clamped at `log_scale_bound`. Density: one MADE pass per layer; sampling: `D`
    sequential passes per layer."""
    name: str = "maf"
    logit_alpha: float = 1e-6
    num_flows: int = 5
    hidden_units: List[int] = dataclasses.field(default_factory=lambda: [1024])
    activation: str = "relu"
    log_scale_bound: float = 3.0

    def __post_init__(self):
        super().__post_init__()
        if self.num_flows < 1 or not self.hidden_units or min(self.hidden_units) < 1:
            raise ConfigError("model.num_flows must be >= 1 and model.hidden_units a "
                              "non-empty list of positive widths.")
        if not self.log_scale_bound > 0:
            raise ConfigError(f"model.log_scale_bound must be > 0, got {self.log_scale_bound}.")


@dataclasses.dataclass(frozen=True)
class FlowEvaluationOptions(SampleQualityOptions):
    """Test-time figures. `dequantization_samples`: `S` of the importance-weighted estimate of
    `log P(x)` over the dequantization noise (variational dequantization only; 0: off), on
    `iw_examples` evenly spaced test images. `round_trip_examples`: test images of the
    `x -> z -> x` check. `temperatures`: one grid of 64 samples each (`image_grids`)."""
    dequantization_samples: int = 16
    iw_examples: int = 1000
    round_trip_examples: int = 100
    temperatures: List[float] = dataclasses.field(default_factory=lambda: [0.5, 0.7, 0.85, 1.0])

    def __post_init__(self):
        super().__post_init__()
        if self.dequantization_samples < 0 or self.iw_examples < 1:
            raise ConfigError("evaluation.dequantization_samples must be >= 0 and "
                              "evaluation.iw_examples >= 1.")
        if self.round_trip_examples < 1:
            raise ConfigError("evaluation.round_trip_examples must be >= 1.")
        if any(not t > 0 for t in self.temperatures):
            raise ConfigError(f"evaluation.temperatures must be positive, got "
                              f"{self.temperatures}.")
