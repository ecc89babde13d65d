"""The energy-based family: RBMs trained by contrastive divergence, DBNs, and AIS.

    energy.py      E(v, h), F(v), the conditionals and the Gibbs step (pure tensor functions)
    layer.py       BernoulliRBM: the Keras layer owning W, b, c; CD loss, pseudo-likelihood
    rbm.py         RBM: the `rbm` model (CD-k, persistent CD)
    dbn.py         DBN: the `dbn` model (greedy phases, down-pass sampling, variational bound)
    ais.py         annealed importance sampling of log Z; exact log Z by enumeration
    evaluation.py  metrics.json: AIS log Z, test log-likelihood

Importing it registers the model names `rbm` and `dbn`.
"""

from tfdgm.models.ebm.ais import (AISResult, ais_log_partition, base_rate_visible_bias,
                                  beta_schedule, exact_log_partition)
from tfdgm.models.ebm.dbn import DBN, GreedyLayerPhase
from tfdgm.models.ebm.layer import BernoulliRBM
from tfdgm.models.ebm.options import DBNOptions, EBMEvaluationOptions, RBMOptions
from tfdgm.models.ebm.rbm import RBM

__all__ = ["AISResult", "BernoulliRBM", "DBN", "GreedyLayerPhase", "DBNOptions", "EBMEvaluationOptions", "RBM",
           "RBMOptions", "ais_log_partition", "base_rate_visible_bias", "beta_schedule",
           "exact_log_partition"]
