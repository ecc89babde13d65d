"""The VAE family: one- and two-level VAEs composed from pluggable components.

Importing it registers the model names `vae` and `hvae` and every component (encoders and
decoders in `tfdgm.nn.networks`; posteriors, priors, likelihoods here).
"""

from tfdgm.nn import networks  # noqa: F401  (encoders, decoders)
from tfdgm.models.vae import likelihoods, posteriors, priors  # noqa: F401
from tfdgm.models.vae import flow_posteriors, flow_priors, spherical, vamp_prior  # noqa: F401
from tfdgm.models.vae.hvae import HierarchicalVAE
from tfdgm.models.vae.model import VAE
from tfdgm.models.vae.options import ObjectiveOptions, VAEEvaluationOptions, VAEOptions

__all__ = ["HierarchicalVAE", "ObjectiveOptions", "VAE", "VAEEvaluationOptions", "VAEOptions"]
