"""What TensorBoard shows of a GAN each epoch: the discriminator's outputs and sample grids.

Images: a tiled grid of `G(eps)` on fixed noise (the same every epoch, so the grids show the
generator's progress). Points (2-D data): a scatter of generated points (red) over the fixed
validation points (grey), rendered as an RGB array, with axes fitted to the data.
"""

import numpy as np
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.evaluation import tile

__all__ = ["fixed_noise", "gan_image_grids", "gan_summaries", "scatter_image"]

GRID_SAMPLES = 64
SCATTER_SAMPLES = 2000


def fixed_noise(model, num, seed):
    """`[num, latent_dim]` standard-normal noise that depends only on `seed`."""
    return tfdgm_random.stateless_normal([num, model.latent_dim], [seed, 1])


def scatter_image(real, fake, size=256, margin=0.15):
    """A `[size, size, 3]` RGB array in [0, 1]: `real [N, 2]` points grey, `fake [M, 2]` red
    on white, the square view fitted to `real` with a `margin` (fraction of its extent)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    low, high = real.min(axis=0), real.max(axis=0)
    centre, half = (low + high) / 2, np.max(high - low) / 2 * (1 + margin) + 1e-6
    canvas = np.ones((size, size, 3), np.float32)

    def plot(points, colour):
        pixels = np.floor((points - (centre - half)) / (2 * half) * size).astype(np.int64)
        inside = np.all((pixels >= 0) & (pixels < size), axis=1)
        columns, rows = pixels[inside, 0], size - 1 - pixels[inside, 1]
        canvas[rows, columns] = colour

    plot(real, (0.6, 0.6, 0.6))
    plot(fake, (0.85, 0.1, 0.1))
    return canvas


def gan_image_grids(model, images, seed=0):
    """`{"samples": grid}` (and BiGAN's `reconstructions`: rows of `x` above `G(E(x))`)."""
    if len(model.image_shape) == 1:
        fake = model.generate(fixed_noise(model, SCATTER_SAMPLES, seed)).numpy()
        return {"samples": scatter_image(np.asarray(images)[:, :2], fake[:, :2])}
    grids = {"samples": tile(np.clip(model.generate(fixed_noise(model, GRID_SAMPLES, seed))
                                     .numpy(), 0., 1.))}
    if hasattr(model, "reconstruct"):
        x = np.asarray(images, np.float32)[:32]
        pairs = np.stack([x, np.clip(model.reconstruct(x).numpy(), 0., 1.)], axis=1)
        columns = 8
        rows = [pairs[i:i + columns] for i in range(0, len(x), columns)]
        ordered = np.concatenate([np.concatenate([r[:, 0], r[:, 1]]) for r in rows])
        grids["reconstructions"] = tile(ordered, columns=columns)
    return grids


def gan_summaries(model, images, seed=0):
    """Histograms of the discriminator's outputs on the fixed `images` and on as many samples
    of fixed noise (`discriminator/real`, `discriminator/fake`), and their mean gap."""
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    real_scores, fake_scores = (
        scores.numpy() for scores in model.critic_outputs(x, fixed_noise(model, len(x), seed)))
    return {"discriminator/real": real_scores, "discriminator/fake": fake_scores,
            "discriminator/gap": float(np.mean(real_scores) - np.mean(fake_scores))}
