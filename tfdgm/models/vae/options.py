"""The VAE family's config sections: `model:` (`VAEOptions`) and `evaluation:`
(`VAEEvaluationOptions`).

```yaml
model:
  name: vae                     # or hvae
  latent_dim: 32
  encoder: {name: gated_mlp, hidden_units: [300, 300]}
  decoder: {name: gated_mlp, hidden_units: [300, 300]}
  posterior: {name: diagonal_gaussian}
  prior: {name: standard_normal}
  likelihood: {name: bernoulli}
  objective: {name: elbo, warmup_epochs: 10}
evaluation: {nll_samples: 1000, nll_chunk: 250}
```

Components are `{name: <registered name>, <option>: <value>, ...}`, checked against the
registered component's constructor (`tfdgm.registry`).
"""

import dataclasses
from typing import Optional

from tfdgm.config import Component
from tfdgm.errors import ConfigError
from tfdgm.models.base import SampleQualityOptions


@dataclasses.dataclass(frozen=True)
class ObjectiveOptions:
    """The training bound.

    `elbo`: E_q[log p(x|z)] - beta * KL with beta rising linearly from 0 to 1 over `warmup_epochs`
    and, if `free_bits` > 0, each latent dimension's KL floored at `free_bits` nats (Kingma et al.
    2016). `iwae`: the importance-weighted bound with `num_samples` = k (Burda et al. 2016); its
    runs select checkpoints and stop early on the validation IWAE bound itself.
    """
    name: str = dataclasses.field(default="elbo", metadata={"choices": ("elbo", "iwae")})
    num_samples: int = 1
    warmup_epochs: int = 0
    free_bits: float = 0.0

    def __post_init__(self):
        if self.num_samples < 1:
            raise ConfigError(f"model.objective.num_samples must be >= 1, got {self.num_samples}.")
        if self.warmup_epochs < 0 or self.free_bits < 0:
            raise ConfigError("model.objective.warmup_epochs and free_bits must be >= 0.")
        if self.name == "iwae" and (self.warmup_epochs or self.free_bits):
            raise ConfigError("model.objective: KL warm-up and free bits apply to the ELBO, not "
                              "the IWAE bound; set model.objective.warmup_epochs=0 and "
                              "model.objective.free_bits=0, or model.objective.name=elbo.")


@dataclasses.dataclass(frozen=True)
class VAEOptions:
    """The generative model, composed from registered components."""
    name: str = "vae"
    latent_dim: int = 40
    encoder: Component = dataclasses.field(
        default_factory=lambda: {"name": "gated_mlp", "hidden_units": [300, 300]})
    decoder: Component = dataclasses.field(
        default_factory=lambda: {"name": "gated_mlp", "hidden_units": [300, 300]})
    posterior: Component = dataclasses.field(
        default_factory=lambda: {"name": "diagonal_gaussian"})
    prior: Component = dataclasses.field(default_factory=lambda: {"name": "standard_normal"})
    likelihood: Component = dataclasses.field(default_factory=lambda: {"name": "bernoulli"})
    objective: ObjectiveOptions = dataclasses.field(default_factory=ObjectiveOptions)

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be >= 1, got {self.latent_dim}.")


@dataclasses.dataclass(frozen=True)
class VAEEvaluationOptions(SampleQualityOptions):
    """Test-time estimates: importance-sampled NLL with `nll_samples` samples per example, drawn
    `nll_chunk` at a time so memory stays bounded; `nll_examples` limits how many test examples
    the NLL uses, spread evenly over the test set (null: all). ELBO surgery (mutual information
    and marginal KL, Hoffman & Johnson 2016) on `surgery_examples` test examples, also spread
    evenly (0: off; its cost grows as the square). `nll_pass_size` bounds the decoder passes
    (examples x samples) of one NLL step: lower it for large decoders."""
    nll_samples: int = 5000
    nll_chunk: int = 500
    nll_pass_size: int = 50000
    nll_examples: Optional[int] = None
    active_unit_threshold: float = 0.01
    surgery_examples: int = 1000

    def __post_init__(self):
        super().__post_init__()
        if self.nll_samples < 0:
            raise ConfigError(f"evaluation.nll_samples must be >= 0 (0: no NLL), got "
                              f"{self.nll_samples}.")
        if self.nll_chunk < 1 or self.nll_pass_size < 1:
            raise ConfigError("evaluation.nll_chunk and evaluation.nll_pass_size must be >= 1.")
        if self.nll_samples and self.nll_samples % min(self.nll_chunk, self.nll_samples):
            raise ConfigError(f"evaluation.nll_samples ({self.nll_samples}) must be a multiple "
                              f"of evaluation.nll_chunk ({self.nll_chunk}).")
        if self.nll_examples is not None and self.nll_examples < 1:
            raise ConfigError(f"evaluation.nll_examples must be >= 1 (or null for all), got "
                              f"{self.nll_examples}.")
        if self.surgery_examples < 0:
            raise ConfigError(f"evaluation.surgery_examples must be >= 0 (0: off), got "
                              f"{self.surgery_examples}.")
