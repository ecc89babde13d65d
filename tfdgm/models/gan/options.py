"""The adversarial family's config sections: `model:` (`GANOptions`, `BiGANOptions`) and
`evaluation:` (`GANEvaluationOptions`).

```yaml
model:
  name: gan
  loss: wgan_gp             # non_saturating | minimax | wgan | wgan_gp | hinge
  network: dcgan            # dcgan (28x28 images) | mlp (2-D points, or flattened images)
  latent_dim: 100
  n_critic: null            # null: the loss's paper default (5 for wgan, wgan_gp; else 1)
  gradient_penalty: 10.0    # lambda of wgan_gp
  clip_value: 0.01          # c of wgan
  spectral_norm: false
```

Paper defaults (the optimizers are the defaults of the config's `optimizer:` section, per loss,
`GAN.default_optimizers_for`; each role can still be overridden there):

```none
loss              optimizer (both players)               n_critic  other
non_saturating    Adam 2e-4, beta_1 0.5 (DCGAN)          1         batch norm in D
wgan              RMSProp 5e-5 (Arjovsky et al. 2017)    5         clip c = 0.01
wgan_gp           Adam 1e-4, betas (0, 0.9) (Gulrajani)  5         lambda 10, no batch norm in D
hinge + SN        Adam 2e-4, betas (0.5, 0.999) (Miyato) 1         spectral norm, no BN in D
```
"""

import dataclasses
from typing import List, Optional

from tfdgm.errors import ConfigError
from tfdgm.models.gan.losses import LOSSES
from tfdgm.models.base import SampleQualityOptions

__all__ = ["BiGANOptions", "GANEvaluationOptions", "GANOptions"]


def _check_common(options):
    if options.latent_dim < 1:
        raise ConfigError(f"model.latent_dim must be >= 1, got {options.latent_dim}.")
    if options.filters < 1 or any(units < 1 for units in options.hidden_units):
        raise ConfigError("model.filters and model.hidden_units must be positive.")
    if options.power_iterations < 1:
        raise ConfigError(f"model.power_iterations must be >= 1, got {options.power_iterations}.")


@dataclasses.dataclass(frozen=True)
class GANOptions:
    """A GAN: the loss, the networks and the critic's constraints.

    `n_critic` discriminator updates, each on its own minibatch, precede every generator update
    (Arjovsky et al. 2017, Algorithm 1; Gulrajani et al. 2017, Algorithm 1). One training step
    (one `fit` batch) is one such round: a batch of `data.batch_size` examples is split into
    `n_critic` minibatches (`data.batch_size` must be a multiple of `n_critic`). `None` fields
    take the loss's paper default (see the module docstring): `n_critic` 5 for `wgan` and
    `wgan_gp`, else 1; `discriminator_batch_norm` on for `non_saturating`, `minimax` and `wgan`
    with the dcgan network and no spectral norm, off otherwise (never with `wgan_gp`).
    """
    name: str = "gan"
    loss: str = dataclasses.field(default="non_saturating", metadata={"choices": LOSSES})
    network: str = dataclasses.field(default="dcgan", metadata={"choices": ("dcgan", "mlp")})
    latent_dim: int = 100
    filters: int = 64
    hidden_units: List[int] = dataclasses.field(default_factory=lambda: [512, 512])
    generator_batch_norm: Optional[bool] = None
    discriminator_batch_norm: Optional[bool] = None
    n_critic: Optional[int] = None
    clip_value: float = 0.01
    gradient_penalty: float = 10.0
    spectral_norm: bool = False
    power_iterations: int = 1

    def __post_init__(self):
        _check_common(self)
        if self.n_critic is not None and self.n_critic < 1:
            raise ConfigError(f"model.n_critic must be >= 1, got {self.n_critic}.")
        if not self.clip_value > 0 or self.gradient_penalty < 0:
            raise ConfigError("model.clip_value must be positive and model.gradient_penalty "
                              ">= 0.")
        if self.loss == "wgan_gp" and self.discriminator_batch_norm:
            raise ConfigError("model.discriminator_batch_norm: the gradient penalty is taken "
                              "per interpolate, which batch norm couples across the batch "
                              "(Gulrajani et al. 2017, section 4); set it to false (or null).")

    @property
    def critic_steps(self) -> int:
        """`n_critic`, or the loss's paper default."""
        if self.n_critic is not None:
            return self.n_critic
        return 5 if self.loss in ("wgan", "wgan_gp") else 1

    @property
    def uses_discriminator_batch_norm(self) -> bool:
        if self.discriminator_batch_norm is not None:
            return self.discriminator_batch_norm
        return (self.network == "dcgan" and not self.spectral_norm
                and self.loss in ("non_saturating", "minimax", "wgan"))

    @property
    def uses_generator_batch_norm(self) -> bool:
        if self.generator_batch_norm is not None:
            return self.generator_batch_norm
        return self.network == "dcgan"


@dataclasses.dataclass(frozen=True)
class BiGANOptions:
    """A BiGAN (Donahue et al. 2017): encoder, generator and joint discriminator trained with
    the non-saturating cross-entropy game, one discriminator update per generator-and-encoder
    update. `latent_dim` 50 as in the paper's MNIST experiments; `joint_units` is the width of
    the joint discriminator's hidden layer on `[features(x), z]`."""
    name: str = "bigan"
    network: str = dataclasses.field(default="dcgan", metadata={"choices": ("dcgan", "mlp")})
    latent_dim: int = 50
    filters: int = 64
    hidden_units: List[int] = dataclasses.field(default_factory=lambda: [512, 512])
    joint_units: int = 512
    generator_batch_norm: Optional[bool] = None
    spectral_norm: bool = False
    power_iterations: int = 1

    loss = "non_saturating"
    critic_steps = 1
    uses_discriminator_batch_norm = False

    def __post_init__(self):
        _check_common(self)
        if self.joint_units < 1:
            raise ConfigError(f"model.joint_units must be >= 1, got {self.joint_units}.")

    @property
    def uses_generator_batch_norm(self) -> bool:
        if self.generator_batch_norm is not None:
            return self.generator_batch_norm
        return self.network == "dcgan"


@dataclasses.dataclass(frozen=True)
class GANEvaluationOptions(SampleQualityOptions):
    """Test-time figures: the losses of both players on the test split, and `num_samples`
    generator samples for the sample statistics (mode coverage on 2-D Gaussian mixtures, within
    `mode_num_std` standard deviations of a centre)."""
    num_samples: int = 2500
    mode_num_std: float = 3.0

    def __post_init__(self):
        super().__post_init__()
        if self.num_samples < 1 or not self.mode_num_std > 0:
            raise ConfigError("evaluation.num_samples must be >= 1 and evaluation.mode_num_std "
                              "positive.")
