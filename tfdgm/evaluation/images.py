"""Image grids for TensorBoard and PNG files."""

import numpy as np


def tile(images: np.ndarray, columns: int = None) -> np.ndarray:
    """Tiles `[N, H, W, C]` images in [0, 1] into one `[rows * (H + 1) - 1, cols * (W + 1) - 1, C]`
    grid with 1-pixel white separators."""
    images = np.asarray(images)
    n, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, channels), images.dtype)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (height + 1): r * (height + 1) + height,
             c * (width + 1): c * (width + 1) + width] = images[i]
    return grid


def save_png(grid: np.ndarray, path: str) -> None:
    """Writes a `[H, W, C]` grid with values in [0, 1] as an 8-bit PNG."""
    from PIL import Image

    pixels = np.clip(np.round(np.asarray(grid) * 255.0), 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    Image.fromarray(pixels).save(path)


def interpolate(z_start: np.ndarray, z_end: np.ndarray, steps: int) -> np.ndarray:
    """Linear interpolation `[steps, D]` between two latent codes."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return (1.0 - t) * z_start[None] + t * z_end[None]


def image_grids(model, images, seed=0, num_samples=64, interpolation_steps=10):
    """The three grids a run shows, `{name: [H', W', C]}` in [0, 1].

    * `samples`: the decoder means at `num_samples` prior samples (fixed noise from `seed`);
    * `reconstructions`: originals and their reconstructions side by side;
    * `interpolation`: decoder means along the line between the codes of `images[0]` and
      `images[1]`.
    """
    import tensorflow as tf

    eps = tf.random.stateless_normal([num_samples, model.noise_dim], [seed, 7])
    samples = model.generate(eps).numpy()
    originals = np.asarray(images[: num_samples // 2], np.float32)
    reconstructions = model.reconstruct(originals).numpy()
    columns = int(np.ceil(np.sqrt(len(originals) * 2)))
    columns += columns % 2
    pairs = np.stack([originals, reconstructions], axis=1).reshape((-1,) + originals.shape[1:])
    codes = model.encode(originals[:2]).numpy()
    path = interpolate(codes[0], codes[1], interpolation_steps).astype(np.float32)
    interpolation = model.decode(path).numpy()
    return {"samples": tile(samples), "reconstructions": tile(pairs, columns),
            "interpolation": tile(interpolation, interpolation_steps)}
