"""The test figures of a density flow (`metrics.json`).

* `test_bits_per_dim`: the training bound (dequantization bound, `test_step`) over the test
  split, one noise draw per image.
* Variational dequantization, `evaluation.dequantization_samples = S > 0`: on
  `evaluation.iw_examples` evenly spaced test images, the importance-weighted estimate
  `log P(x) ~ log (1/S) sum_s exp[log p(y_s) - log q(u_s | x) - D log K]`
  (`test_bits_per_dim_iw`, with `test_bits_per_dim_iw_1`, the `S = 1` bound on the same images
  and draws, and `test_dequantization_samples`). Uniform dequantization has `log q = 0`, and
  the estimate is then that of Theis et al. (2016)'s bin integral by Monte Carlo; it is computed
  too when `S > 0`.
* `test_round_trip_max_abs_error`: `max |decode(encode(x)) - c(x)|` over
  `evaluation.round_trip_examples` test images, `c(x)` the bin centres (~1e-5 in float32).
"""

from typing import Any, Dict

import numpy as np
import tensorflow as tf

from tfdgm.data.subsets import evenly_spaced
from tfdgm.models.flows.dequantization import bits_per_dim

__all__ = ["evaluate_flow", "importance_weighted_log_likelihood", "round_trip_error"]


def importance_weighted_log_likelihood(model, images, num_samples, seed=0):
    """`(iw [B], bound [B])` in nats: the log-mean-exp over `S` dequantization draws and
    their plain mean (the `S = 1` bound), for `images [B, H, W, C]`."""
    log_w = model.log_weights(images, num_samples, tf.constant([seed, 7], tf.int64))
    iw = tf.reduce_logsumexp(log_w, axis=0) - np.log(float(num_samples))
    return iw.numpy(), tf.reduce_mean(log_w, axis=0).numpy()


def round_trip_error(model, images):
    """`max |decode(encode(x)) - bin centres(x)|` over `images`."""
    back = model.decode(model.encode(images))
    return float(tf.reduce_max(tf.abs(back - model.bin_centres(images))))


def _images(dataset):
    for batch in dataset:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def evaluate_flow(model, datasets, config) -> Dict[str, Any]:
    """The figures listed in the module docstring, as a JSON-ready dict."""
    options = config.evaluation
    model.eval_step.assign(0)
    results = model.evaluate(datasets.test, verbose=0, return_dict=True)
    metrics: Dict[str, Any] = {"test_bits_per_dim": float(results["bits_per_dim"])}
    num_test = datasets.info.num_examples["test"]
    if options.dequantization_samples > 0:
        subset, count = evenly_spaced(datasets.test, num_test, options.iw_examples)
        chunk = max(1, config.data.eval_batch_size // options.dequantization_samples)
        iw, bound = [], []
        for i, x in enumerate(_images(subset.batch(chunk))):
            a, b = importance_weighted_log_likelihood(
                model, x, options.dequantization_samples, seed=config.seed + i)
            iw.append(a)
            bound.append(b)
        iw, bound = np.concatenate(iw), np.concatenate(bound)
        metrics.update(
            test_bits_per_dim_iw=float(bits_per_dim(iw.mean(), model.num_dims)),
            test_bits_per_dim_iw_1=float(bits_per_dim(bound.mean(), model.num_dims)),
            test_dequantization_samples=int(options.dequantization_samples),
            test_iw_examples=int(len(iw)))
    batches, seen = [], 0
    for x in _images(datasets.test):
        batches.append(np.asarray(x))
        seen += len(batches[-1])
        if seen >= options.round_trip_examples:
            break
    images = np.concatenate(batches)[:options.round_trip_examples]
    metrics["test_round_trip_max_abs_error"] = round_trip_error(model, images)
    return metrics
