"""Test-time estimates and diagnostics."""

from tfdgm.evaluation.diagnostics import active_units, posterior_statistics
from tfdgm.evaluation.images import image_grids, interpolate, save_png, tile
from tfdgm.evaluation.likelihood import importance_sampled_log_likelihood
from tfdgm.evaluation.elbo_surgery import elbo_surgery
