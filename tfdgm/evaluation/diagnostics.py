"""Latent-space diagnostics: active units and per-dimension KL.

Active units (Burda et al. 2016): dimension d is active when `Cov_x(E_q[z_d | x]) > threshold`
(0.01 in the paper), i.e. when the posterior mean moves with the data.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tfdgm.models.vae import images_of


def posterior_statistics(model, dataset, max_examples=None) -> Dict[str, np.ndarray]:
    """Posterior means `[N, D]` and, where the posterior gives it, per-dimension KL to N(0, I)
    `[N, D]` (key absent otherwise)."""

    @tf.function(reduce_retracing=True)
    def statistics(x):
        q = model.posterior(model.encoder(x), num_samples=1, seed=tf.constant([0, 0], tf.int64))
        kl = q.kl_per_dim if q.kl_per_dim is not None else tf.zeros([0])
        return q.mean, kl

    means, kls, seen = [], [], 0
    for data in dataset:
        mean, kl = statistics(images_of(data))
        means.append(mean.numpy())
        if kl.shape.rank == 2:
            kls.append(kl.numpy())
        seen += mean.shape[0]
        if max_examples is not None and seen >= max_examples:
            break
    result = {"mean": np.concatenate(means)[:max_examples]}
    if kls:
        result["kl_per_dim"] = np.concatenate(kls)[:max_examples]
    return result


def active_units(means: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Boolean `[D]`: which dimensions' posterior means vary across the data more than
    `threshold` (variance over examples of `E_q[z_d | x]`)."""
    return np.var(means, axis=0) > threshold
