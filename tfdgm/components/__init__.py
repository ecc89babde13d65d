"""The VAE's pluggable components; importing this package registers all of them."""

from tfdgm.nn import networks  # noqa: F401  (encoders, decoders)
from tfdgm.components import likelihoods, posteriors, priors  # noqa: F401
from tfdgm.components import flow_priors  # noqa: F401  (maf, realnvp priors)
from tfdgm.components import vamp_prior  # noqa: F401
from tfdgm.components import flow_posteriors  # noqa: F401  (planar ... sylvester, iaf)
from tfdgm.components import spherical  # noqa: F401  (vMF, power spherical, uniform on S^D-1)
