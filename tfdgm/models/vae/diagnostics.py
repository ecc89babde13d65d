"""Latent-space diagnostics (active units, per-dimension KL, posterior means and scales) and the
VAE's image grids.

Active units (Burda et al. 2016): dimension d is active when `Cov_x(E_q[z_d | x]) > threshold`
(0.01 in the paper), i.e. when the posterior mean moves with the data.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.data.batches import images_of
from tfdgm.evaluation.images import interpolate, slerp, stretch_each, tile


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


def posterior_scales(posterior, h, num_samples=16):
    """The standard deviation of each coordinate of q(z | x), `[B, D]`.

    Exact for the diagonal Gaussian (`sigma`) and the full-covariance one (the norm of each row
    of the Cholesky factor, `sqrt((L L^T)_dd)`); for other posteriors (flows, the sphere) the
    sample standard deviation of `num_samples` draws.
    """
    if hasattr(posterior, "loc_and_scale"):
        return posterior.loc_and_scale(h)[1]
    if hasattr(posterior, "loc_and_cholesky"):
        return tf.norm(posterior.loc_and_cholesky(h)[2], axis=-1)
    z = posterior(h, num_samples=num_samples, seed=tf.constant([0, 1], tf.int64)).z
    return tf.math.reduce_std(z, axis=0)


def latent_summaries(model, images):
    """Per-epoch latent diagnostics on fixed `images [B, ...]`:

    * `active_units`: the number of active units (a scalar);
    * `kl_per_dimension`: the per-dimension KL to N(0, I) averaged over the images, `[D]`, one
      histogram over the dimensions (under a standard-normal prior only);
    * `posterior_mean`, `posterior_scale`: the means `[B, D]` and standard deviations `[B, D]`
      (`posterior_scales`) of q(z | x), histograms over images and dimensions.
    """
    h = model.encoder(images)
    q = model.posterior(h, num_samples=1, seed=tf.constant([0, 0], tf.int64))
    means = q.mean.numpy()
    summaries = {"active_units": float(active_units(means).sum()),
                 "posterior_mean": means,
                 "posterior_scale": posterior_scales(model.posterior, h).numpy()}
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
    * `pseudo_inputs`: the first `max_pseudo_inputs` pseudo-inputs of a VampPrior, each
      stretched to [0, 1] by its own range (`stretch_each`): they start at 0 (the paper's
      initialization, clipped) and take many epochs to fill [0, 1], so shown as they are they
      stay nearly black.
    """
    eps = tfdgm_random.stateless_normal([num_samples, model.noise_dim], [seed, 7])
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
        grids["pseudo_inputs"] = tile(stretch_each(pseudo_inputs()[:max_pseudo_inputs].numpy()))
    return grids
