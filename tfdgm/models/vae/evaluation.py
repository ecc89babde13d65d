"""The VAE's test evaluation: what lands in `metrics.json`.

* `test_elbo`, `test_reconstruction`, `test_kl` (and `test_iwae`): the `test_step` metrics over
  the whole test split;
* `test_nll`: the importance-sampled negative log-likelihood with `evaluation.nll_samples`
  samples on `evaluation.nll_examples` test examples spread evenly over the split, with the IWAE
  bounds `test_iwae_k` from the same samples (`tfdgm.evaluation.likelihood`);
* `active_units` and, under a standard-normal prior, `kl_per_dimension`;
* ELBO surgery (`test_mutual_information`, `test_marginal_kl`, ...) on
  `evaluation.surgery_examples` evenly spaced test examples.
"""

from typing import Any, Dict

from tfdgm.data.subsets import evenly_spaced
from tfdgm.evaluation.elbo_surgery import elbo_surgery
from tfdgm.evaluation.likelihood import importance_sampled_log_likelihood
from tfdgm.models.vae.diagnostics import active_units, posterior_statistics


def evaluate_vae(model, datasets, config) -> Dict[str, Any]:
    """The test figures of `model` (restored to its best checkpoint) on `datasets.test`."""
    model.eval_step.assign(0)
    test = model.evaluate(datasets.test, verbose=0, return_dict=True)
    evaluation = config.evaluation
    metrics: Dict[str, Any] = {f"test_{k}": float(v) for k, v in test.items() if k != "loss"}
    num_test = datasets.info.num_examples["test"]
    if evaluation.nll_samples > 0:
        print(f"Importance-sampled NLL with S={evaluation.nll_samples} samples:")
        nll_data, count = evenly_spaced(datasets.test, num_test, evaluation.nll_examples)
        estimates = importance_sampled_log_likelihood(
            model, nll_data.batch(max(1, evaluation.nll_pass_size // evaluation.nll_chunk)),
            num_samples=evaluation.nll_samples, chunk=evaluation.nll_chunk,
            seed=config.seed + 1, num_examples=count,
            jit_compile=model.jit_compile is True)  # as the run's steps (tfdgm.training.xla)
        metrics["test_nll"] = float(-estimates["log_likelihood"].mean())
        metrics["test_nll_examples"] = int(len(estimates["log_likelihood"]))
        for key, values in estimates.items():
            if key.startswith("iwae_"):
                metrics[f"test_{key}"] = float(values.mean())
    stats = posterior_statistics(model, datasets.test)
    metrics["active_units"] = int(active_units(stats["mean"],
                                               evaluation.active_unit_threshold).sum())
    if "kl_per_dim" in stats and model.prior.is_standard_normal:  # KL to N(0, I) per dimension
        metrics["kl_per_dimension"] = [float(v) for v in stats["kl_per_dim"].mean(axis=0)]
    if evaluation.surgery_examples > 0 and model.supports_elbo_surgery:
        surgery_data, count = evenly_spaced(datasets.test, num_test, evaluation.surgery_examples)
        surgery = elbo_surgery(model, surgery_data.batch(config.data.eval_batch_size),
                               max_examples=count, seed=config.seed + 2)
        metrics["test_surgery_examples"] = surgery.pop("num_examples")
        metrics.update({f"test_{key}": value for key, value in surgery.items()})
    return metrics
