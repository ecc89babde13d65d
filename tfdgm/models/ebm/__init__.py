"""The energy-based family: RBMs trained by contrastive divergence, DBNs, and AIS.

    energy.py      E(v, h), F(v), the conditionals and the Gibbs steps, Bernoulli and Gaussian
                   visibles (pure tensor functions)
    layer.py       BernoulliRBM, GaussianBernoulliRBM: the Keras layers owning W, b, c (and
                   log sigma^2); CD loss, pseudo-likelihood
    rbm.py         RBM: the `rbm` model (CD-k, persistent CD; `visible: bernoulli | gaussian`)
    dbn.py         DBN: the `dbn` model (greedy phases, down-pass sampling, variational bound)
    ais.py         annealed importance sampling of log Z (base-rate or Gaussian base model);
                   exact log Z by enumeration
    evaluation.py  metrics.json: AIS log Z, test log-likelihood

Importing it registers the model names `rbm` and `dbn`.
"""

from tfdgm.models.ebm.ais import (AISResult, ais_log_partition, base_rate_visible_bias,
                                  beta_schedule, exact_log_partition, gaussian_base_model)
from tfdgm.models.ebm.dbn import DBN, GreedyLayerPhase
from tfdgm.models.ebm.layer import BernoulliRBM, GaussianBernoulliRBM
from tfdgm.models.ebm.options import DBNOptions, EBMEvaluationOptions, RBMOptions
from tfdgm.models.ebm.rbm import RBM

__all__ = ["AISResult", "BernoulliRBM", "DBN", "DBNOptions", "EBMEvaluationOptions",
           "GaussianBernoulliRBM", "GreedyLayerPhase", "RBM", "RBMOptions", "ais_log_partition",
           "base_rate_visible_bias", "beta_schedule", "exact_log_partition",
           "gaussian_base_model"]
