"""Family-agnostic estimators and displays: importance-sampled NLL, ELBO surgery, image grids.

Each takes a model through a small protocol (e.g. `log_weights(x, S, seed)` for the NLL), not a
model class, so any family that provides it gets the estimate.
"""

from tfdgm.evaluation.images import interpolate, save_png, slerp, tile
from tfdgm.evaluation.likelihood import importance_sampled_log_likelihood
from tfdgm.evaluation.elbo_surgery import elbo_surgery
