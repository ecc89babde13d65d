"""Model families, each a package implementing the contract of `tfdgm.models.base`.

    base.py   GenerativeModel, Monitor, Signature: what the trainer, exporter and CLI call
    vae/      VAE and HVAE with pluggable posteriors, priors and likelihoods

Importing this package registers every family in `tfdgm.registry.MODELS`; `tfdgm.experiment`
resolves a config against the family it names and builds the model.
"""

from tfdgm.models.base import GenerativeModel, Monitor, Signature
from tfdgm.models import vae  # noqa: F401  (registers vae, hvae)
from tfdgm.models import gan  # noqa: F401  (registers gan, bigan)
from tfdgm.models import ebm  # noqa: F401  (registers rbm, dbn)
from tfdgm.models import flows  # noqa: F401  (registers glow, realnvp, maf)
from tfdgm.models.vae import VAE, HierarchicalVAE

__all__ = ["GenerativeModel", "HierarchicalVAE", "Monitor", "Signature", "VAE"]
