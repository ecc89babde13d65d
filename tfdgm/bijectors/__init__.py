"""Normalizing flows as `tfp.bijectors.Bijector`s holding tensors, never weights.

Latent-space flows act on vectors `[..., D]` (planar ... IAF); image flows act on `[..., H, W, C]`
(actnorm, invertible 1x1 convolutions, affine coupling, squeeze, logit).
"""

from tfdgm.bijectors.actnorm import (
    ActNorm, actnorm_initial_parameters, actnorm_parameters_from_sums)
from tfdgm.bijectors.affine_coupling import AffineCoupling, channel_split, checkerboard_mask
from tfdgm.bijectors.householder import Householder, householder_product, reflect
from tfdgm.bijectors.iaf import IAF
from tfdgm.bijectors.invertible_conv import InvertibleConv1x1, LUInvertibleConv1x1
from tfdgm.bijectors.logit import Logit
from tfdgm.bijectors.planar import Planar, constrain_planar_u
from tfdgm.bijectors.radial import Radial
from tfdgm.bijectors.squeeze import Squeeze
from tfdgm.bijectors.sylvester import (
    Sylvester, constrain_triangular, orthogonalize, orthogonalize_unrolled, reversal_permutation,
    triangular_q)

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "Householder",
    "IAF",
    "InvertibleConv1x1",
    "LUInvertibleConv1x1",
    "Logit",
    "Planar",
    "Radial",
    "Squeeze",
    "Sylvester",
    "actnorm_initial_parameters",
    "actnorm_parameters_from_sums",
    "channel_split",
    "checkerboard_mask",
    "constrain_planar_u",
    "constrain_triangular",
    "householder_product",
    "orthogonalize",
    "orthogonalize_unrolled",
    "reflect",
    "reversal_permutation",
    "triangular_q",
]
