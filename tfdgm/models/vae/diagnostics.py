"""Latent-space diagnostics (active units, per-dimension KL) and the VAE's image grids.

Active units (Burda et al. 2016): dimension d is active when `Cov_x(E_q[z_d | x]) > threshold`
(0.01 in the paper), i.e. when the posterior mean moves with the data.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tfdgm.data.batches import images_of
from tfdgm.evaluation.images import interpolate, slerp, tile


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


def latent_summaries(model, images):
    """Per-epoch latent diagnostics on fixed `images`: the number of active units, and the
    per-dimension KL to N(0, I) `[D]` (a histogram; under a standard-normal prior only)."""
    q = model.posterior(model.encoder(images), num_samples=1, seed=tf.constant([0, 0], tf.int64))
    summaries = {"active_units": float(active_units(q.mean.numpy()).sum())}
    if q.kl_per_dim is not None and model.prior.is_standard_normal:
        summaries["kl_per_dimension"] = tf.reduce_mean(q.kl_per_dim, axis=0).numpy()
    return summaries


def vae_image_grids(model, images, seed=0, num_samples=64, interpolation_steps=10,
                    max_pseudo_inputs=100):
    """The grids a VAE run shows, `{name: [H', W', C]}` in [0, 1].

    * `samples`: the decoder means at `num_samples` prior samples (fixed noise from `seed`);
    * `reconstructions`: originals and their reconstructions side by side;
    * `interpolation`: decoder means along the line between the codes of `images[0]` and
      `images[1]` (the great-circle arc, `slerp`, when the posterior's geometry is `"sphere"`);
    * `pseudo_inputs`: the first `max_pseudo_inputs` pseudo-inputs of a VampPrior.
    """
    eps = tf.random.stateless_normal([num_samples, model.noise_dim], [seed, 7])
    samples = model.generate(eps).numpy()
    originals = np.asarray(images[: num_samples // 2], np.float32)
    reconstructions = model.reconstruct(originals).numpy()
    columns = int(np.ceil(np.sqrt(len(originals) * 2)))
    columns += columns % 2
    pairs = np.stack([originals, reconstructions], axis=1).reshape((-1,) + originals.shape[1:])
    codes = model.encode(originals[:2]).numpy()
    sphere = getattr(getattr(model, "posterior", None), "geometry", "euclidean") == "sphere"
    path = (slerp if sphere else interpolate)(codes[0], codes[1], interpolation_steps)
    path = path.astype(np.float32)
    interpolation = model.decode(path).numpy()
    grids = {"samples": tile(samples), "reconstructions": tile(pairs, columns),
             "interpolation": tile(interpolation, interpolation_steps)}
    pseudo_inputs = getattr(model.prior, "pseudo_inputs", None)
    if callable(pseudo_inputs):
        grids["pseudo_inputs"] = tile(pseudo_inputs()[:max_pseudo_inputs].numpy())
    return grids
