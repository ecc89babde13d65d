"""Keras 3 layers that own the weights of image flows and build `tfdgm.bijectors` in `call()`.

Every invertible layer is a `FlowLayer`: `layer(x, training) -> (y, log_det [B])` in the
normalizing direction (data to latent), `layer.inverse(y) -> x`, `layer.bijector()`. The
multi-scale flows (`RealNVPFlow`, `GlowFlow`) share `MultiScaleFlow`'s API: `log_prob_parts`,
`log_prob`, `encode`, `decode`, `encode_to_noise`, `sample_from_noise(eps, temperature)`.
"""

from tfdgm.flows.actnorm import ActNorm
from tfdgm.flows.base import FlowLayer, Squeeze, gaussian_log_prob
from tfdgm.flows.coupling import AffineCoupling, CouplingConvNet
from tfdgm.flows.glow import GlowFlow, GlowStep
from tfdgm.flows.invertible_conv import InvertibleConv1x1, lu_decompose, random_rotation
from tfdgm.flows.multiscale import MultiScaleFlow
from tfdgm.flows.priors import ConditionalGaussianPrior, LearnedGaussianPrior
from tfdgm.flows.realnvp import RealNVPFlow

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "ConditionalGaussianPrior",
    "CouplingConvNet",
    "FlowLayer",
    "GlowFlow",
    "GlowStep",
    "InvertibleConv1x1",
    "LearnedGaussianPrior",
    "MultiScaleFlow",
    "RealNVPFlow",
    "Squeeze",
    "gaussian_log_prob",
    "lu_decompose",
    "random_rotation",
]
