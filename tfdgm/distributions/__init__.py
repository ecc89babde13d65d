"""TFP distributions that tfdgm adds: a von Mises-Fisher distribution reparameterized in every
dimension (for the hyperspherical VAE), and the uniform distribution on the sphere it is paired
with (TFP's own `tfd.SphericalUniform`, re-exported; `KL(VonMisesFisher || SphericalUniform)` is
registered in closed form).
"""

from tensorflow_probability import distributions as _tfd

from tfdgm.distributions import bessel
from tfdgm.distributions.von_mises_fisher import VonMisesFisher

SphericalUniform = _tfd.SphericalUniform

__all__ = ["SphericalUniform", "VonMisesFisher", "bessel"]
