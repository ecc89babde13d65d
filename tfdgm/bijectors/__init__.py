"""Latent-space normalizing flows as `tfp.bijectors.Bijector`s holding tensors, never weights."""

from tfdgm.bijectors.householder import Householder, householder_product, reflect
from tfdgm.bijectors.iaf import IAF
from tfdgm.bijectors.planar import Planar, constrain_planar_u
from tfdgm.bijectors.radial import Radial
from tfdgm.bijectors.sylvester import (
    Sylvester, constrain_triangular, orthogonalize, orthogonalize_unrolled, reversal_permutation,
    triangular_q)

__all__ = [
    "Householder",
    "IAF",
    "Planar",
    "Radial",
    "Sylvester",
    "constrain_planar_u",
    "constrain_triangular",
    "householder_product",
    "orthogonalize",
    "orthogonalize_unrolled",
    "reflect",
    "reversal_permutation",
    "triangular_q",
]
