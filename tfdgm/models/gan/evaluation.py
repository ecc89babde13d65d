"""The test figures of a GAN (`metrics.json`).

* `test_<term>`: both players' losses and the discriminator's mean outputs on the test split
  (`GAN.test_step`, fixed noise).
* 2-D Gaussian mixtures (`ring_of_gaussians`, `grid_of_gaussians`): mode coverage of
  `evaluation.num_samples` samples (`tfdgm.evaluation.mixture_modes`, the VEEGAN protocol):
  `test_modes_captured`, `test_num_modes`, `test_high_quality_fraction`; and, for any point
  dataset with a closed-form density, `test_sample_log_prob`, the mean exact data
  log-density at the samples (high when samples lie where the data is).
* Images: `test_mean_image_rmse`, the root-mean-square difference between the mean sample and
  the mean test image (a cheap check of pixel statistics; the classifier-based FID, KID and
  precision/recall are computed for every family by the library); BiGAN adds
  `test_reconstruction_rmse` of `G(E(x))`.
"""

import numpy as np

from tfdgm.registry import DATASETS

__all__ = ["evaluate_gan"]


def _test_examples(datasets, limit):
    batches, count = [], 0
    for batch in datasets.test:
        batch = batch[0] if isinstance(batch, (tuple, list)) else batch
        batches.append(np.asarray(batch))
        count += len(batches[-1])
        if count >= limit:
            break
    return np.concatenate(batches)[:limit]


def evaluate_gan(model, datasets, config):
    """The figures listed in the module docstring, as a JSON-ready dict."""
    results = model.evaluate(datasets.test, verbose=0, return_dict=True)
    metrics = {f"test_{key}": float(value) for key, value in results.items() if key != "loss"}
    options = config.evaluation
    samples = model.sample(options.num_samples, seed=config.seed)
    real = _test_examples(datasets, options.num_samples)
    if datasets.info.kind == "points":
        spec = DATASETS.get(config.data.name)
        if hasattr(spec, "mixture_centers"):
            from tfdgm.evaluation.mixture_modes import mode_coverage

            coverage = mode_coverage(samples, spec.mixture_centers, spec.mixture_std,
                                     num_std=options.mode_num_std)
            metrics.update(test_modes_captured=coverage["modes_captured"],
                           test_num_modes=coverage["num_modes"],
                           test_high_quality_fraction=coverage["high_quality_fraction"])
        try:
            metrics["test_sample_log_prob"] = float(np.mean(spec.log_prob(samples)))
        except (NotImplementedError, AttributeError):
            pass
        return metrics
    metrics["test_mean_image_rmse"] = float(np.sqrt(np.mean(
        (samples.mean(axis=0) - real.mean(axis=0)) ** 2)))
    if hasattr(model, "reconstruct"):
        reconstructions = model.reconstruct(real[:500]).numpy()
        metrics["test_reconstruction_rmse"] = float(np.sqrt(np.mean(
            (reconstructions - real[:500]) ** 2)))
    return metrics
