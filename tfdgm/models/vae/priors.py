"""Priors p(z) over the latent space.

A prior is a Keras layer (so that learnable priors own their weights) with
`log_prob(z [..., D]) -> [...]`, `sample(n, seed) -> [n, D]` and
`generate(eps [B, noise_dim]) -> [B, D]`,
which maps standard-normal noise to a prior sample deterministically (the exported `generate`
signature takes its noise as an input). A prior that evaluates the encoder (the VampPrior) is
given the model by `attach(model)` once the model is built.
"""

import keras
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.models.vae.posteriors import standard_normal_log_prob
from tfdgm.precision import FullPrecision
from tfdgm.registry import PRIORS


class Prior(FullPrecision, keras.layers.Layer):
    """Base class of priors; see the module docstring for the contract.

    A density layer (`tfdgm.precision.FullPrecision`): `log_prob` and `generate` are computed
    in float32 under a mixed-precision policy; the networks a prior owns (flow conditioners)
    take the run's policy.

    Attributes:
      geometry: `"euclidean"` or `"sphere"`, matched against the posterior's.
      is_standard_normal: whether the analytic Gaussian KL applies.
    """

    geometry = "euclidean"
    is_standard_normal = False

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim

    @property
    def noise_dim(self):
        """Width of the standard-normal noise `generate` maps to a prior sample (default `D`)."""
        return self.latent_dim

    def attach(self, model):
        """Called once by the VAE with itself; priors that need the encoder keep a reference."""

    def scale_noise(self, eps, temperature):
        """The noise `[B, noise_dim]` of a sample at `temperature`: reduced-temperature sampling
        draws the prior's Gaussian noise from N(0, T^2 I) (here: all of it)."""
        return eps * temperature

    def sample(self, n, seed):
        eps = tfdgm_random.stateless_normal([n, self.noise_dim], seed)
        return self.generate(eps)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


@PRIORS.register("standard_normal")
@keras.saving.register_keras_serializable("tfdgm")
class StandardNormalPrior(Prior):
    """p(z) = N(z; 0, I)."""

    is_standard_normal = True

    def log_prob(self, z):
        return standard_normal_log_prob(z)

    def generate(self, eps):
        return eps
