"""The energy-based family's test evaluation: what lands in `metrics.json`.

* `test_free_energy`, `test_reconstruction_error`, `test_pseudo_log_likelihood`: the
  `test_step` metrics over the test split;
* with `evaluation.ais_chains > 0`: `test_log_z` (AIS, Salakhutdinov & Murray 2008, with the
  base-rate model of the training marginals), `test_log_z_std_error` (delta method),
  `test_log_z_lower` / `test_log_z_upper` (`log(Z_hat -+ 3 sigma)`; null when the lower one is
  `-inf`), and `test_log_likelihood = mean_test(-F(v)) - log Z` with the bounds that the two
  `log Z` bounds give. For a DBN the log-likelihood is the variational lower bound
  (`test_log_likelihood_bound`, `tfdgm.models.ebm.dbn`) with `log Z` of its top RBM.
* Gaussian visibles: AIS from the Gaussian base model of the standardized training data, and
  `test_log_likelihood` is a continuous density in nats of the standardized pixels
  `v = (x - m) / s`; `test_log_likelihood_pixels = test_log_likelihood - sum_i log s_i` is the
  density of the pixel values `x` in [0, 1]^D; `test_log_likelihood_base_model` is the
  (standardized) log-likelihood of the factorial Gaussian of the training marginals (AIS's base
  model), the reference to beat. `test_log_likelihood_density` says so in words:
  neither compares with a binary RBM's log-probabilities or with a flow's bits/dim (those model
  dequantized or discrete data).
"""

import math
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from tfdgm.data.batches import images_of
from tfdgm.models.ebm.ais import (AISResult, ais_log_partition, base_rate_visible_bias,
                                  summarize_log_weights)


def _finite_or_none(value: float) -> Optional[float]:
    return float(value) if math.isfinite(value) else None


def run_ais(layer, base_rate, evaluation, seed, base_scale=None) -> AISResult:
    """AIS on the RBM `layer` from the base-rate biases `base_rate [D]` (a `BernoulliRBM`), or
    from the Gaussian base model `N(base_rate, base_scale^2)` (a `GaussianBernoulliRBM`); with
    `evaluation.ais_runs > 1` the runs' weights are pooled into one estimate."""
    betas = evaluation.betas()
    gaussian = {}
    if hasattr(layer, "sigma"):
        gaussian = dict(visible_sigma=layer.sigma, base_sigma=base_scale)
    log_weights = []
    for run in range(evaluation.ais_runs):
        result = ais_log_partition(layer.kernel, layer.visible_bias, layer.hidden_bias,
                                   base_rate, betas, evaluation.ais_chains, seed=seed + run,
                                   **gaussian)
        log_weights.append(result.log_weights)
    return summarize_log_weights(np.concatenate(log_weights), result.log_z_base, len(betas) - 1)


def ais_metrics(result: AISResult, mean_log_unnormalized: float, prefix="test_log_likelihood"
                ) -> Dict[str, Any]:
    """`metrics.json` entries of an AIS estimate and of `mean(log f(v)) - log Z`."""
    return {
        "test_log_z": result.log_z, "test_log_z_std_error": result.std_error,
        "test_log_z_lower": _finite_or_none(result.log_z_lower),
        "test_log_z_upper": result.log_z_upper,
        prefix: mean_log_unnormalized - result.log_z,
        f"{prefix}_lower": mean_log_unnormalized - result.log_z_upper,
        f"{prefix}_upper": _finite_or_none(mean_log_unnormalized - result.log_z_lower),
        "test_ais_chains": len(result.log_weights), "test_ais_betas": result.num_betas,
    }


def mean_over_test(fn, dataset, max_examples=None) -> (float, int):
    """The mean of `fn(images) [B]` over the test batches (the first `max_examples`)."""
    compiled = tf.function(fn, reduce_retracing=True)
    total, count = 0.0, 0
    for data in dataset:
        x = images_of(data)
        if max_examples is not None:
            x = x[: max_examples - count]
        if x.shape[0] == 0:
            break
        total += float(tf.reduce_sum(tf.cast(compiled(x), tf.float64)))
        count += int(x.shape[0])
    return total / max(count, 1), count


def evaluate_rbm(model, datasets, config) -> Dict[str, Any]:
    """The test figures of an `RBM` (restored to its best checkpoint)."""
    model.eval_step.assign(0)
    results = model.evaluate(datasets.test, verbose=0, return_dict=True)
    metrics = {f"test_{k}": float(v) for k, v in results.items() if k != "loss"}
    evaluation = config.evaluation
    if evaluation.ais_chains > 0:
        print(f"AIS: {evaluation.ais_chains} chains x {len(evaluation.betas()) - 1} betas")
        result = run_ais(model.rbm, model.base_rate, evaluation, seed=config.seed + 1,
                         base_scale=model.base_scale if model.gaussian else None)
        mean, count = mean_over_test(model.log_unnormalized, datasets.test,
                                     evaluation.max_test_examples)
        metrics.update(ais_metrics(result, mean))
        metrics["test_log_likelihood_examples"] = count
        if model.gaussian:
            metrics["test_log_likelihood_pixels"] = (metrics["test_log_likelihood"]
                                                     + model.log_pixel_jacobian())
            metrics["test_log_likelihood_base_model"], _ = mean_over_test(
                model.base_log_likelihood, datasets.test, evaluation.max_test_examples)
            metrics["test_log_likelihood_density"] = (
                "continuous: test_log_likelihood is log p(v) in nats of the standardized pixels "
                "v = (x - mean) / scale, test_log_likelihood_pixels the density of x in "
                "[0, 1]^D; not comparable with binary log-likelihoods or bits/dim")
    return metrics




def evaluate_dbn(model, datasets, config) -> Dict[str, Any]:
    """The test figures of a `DBN`: the top RBM's `log Z` by AIS and the variational bound
    `test_log_likelihood_bound` (`tfdgm.models.ebm.dbn`)."""
    from tfdgm.data import load_images

    metrics: Dict[str, Any] = {}
    evaluation = config.evaluation
    if evaluation.ais_chains > 0:
        top = len(model.rbms) - 1
        images = load_images(config.data, "train").reshape(-1, model.visible_units)
        marginals = model.up_pass(tf.constant(images), top).numpy()
        base_rate = base_rate_visible_bias(marginals).astype(np.float32)
        print(f"AIS on the top RBM: {evaluation.ais_chains} chains x "
              f"{len(evaluation.betas()) - 1} betas")
        result = run_ais(model.rbms[top], base_rate, evaluation, seed=config.seed + 1)
        seed = tf.constant([config.seed, 5], tf.int64)
        mean, count = mean_over_test(
            lambda x: model.log_likelihood_bound(x, evaluation.bound_samples, seed),
            datasets.test, evaluation.max_test_examples)
        metrics.update(ais_metrics(result, mean, prefix="test_log_likelihood_bound"))
        metrics["test_log_likelihood_examples"] = count
    return metrics


__all__ = ["ais_metrics", "evaluate_dbn", "evaluate_rbm", "mean_over_test", "run_ais"]
