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


def stretch_each(images: np.ndarray) -> np.ndarray:
    """Maps each image of `[N, ...]` linearly onto [0, 1] by its own range, for display.

    `(x - min_n) / (max_n - min_n)` with the minimum and maximum over image n's pixels; a constant
    image is left as it is. Learned images whose values stay in a small part of [0, 1] (a
    VampPrior's pseudo-inputs early in training: the paper's initialization N(-0.05, 0.01) is
    clipped to 0 and the pixels rise by about one learning rate per step) would otherwise show
    as black cells.

    ```python
    stretch_each(0.1 * digits)   # == digits when every digit has a 0 and a 1 pixel
    ```
    """
    images = np.asarray(images)
    axes = tuple(range(1, images.ndim))
    low = images.min(axis=axes, keepdims=True)
    span = images.max(axis=axes, keepdims=True) - low
    constant = span == 0
    return np.where(constant, images, (images - low) / np.where(constant, 1, span))


def sprite(images: np.ndarray) -> np.ndarray:
    """The `[n H, n W, C]` sprite of TensorBoard's projector: `[N, H, W, C]` images in [0, 1]
    row-major in an `n x n` grid, `n = ceil(sqrt(N))`, no separators, unused cells black."""
    images = np.asarray(images)
    count, height, width, channels = images.shape
    side = int(np.ceil(np.sqrt(count)))
    cells = np.zeros((side * side, height, width, channels), images.dtype)
    cells[:count] = images
    return (cells.reshape(side, side, height, width, channels).transpose(0, 2, 1, 3, 4)
            .reshape(side * height, side * width, channels))


def save_png(grid: np.ndarray, path: str) -> None:
    """Writes a `[H, W, C]` grid with values in [0, 1] as an 8-bit PNG; non-finite values (a
    diverged sample) are drawn black (NaN, -inf) or white (+inf)."""
    from PIL import Image

    grid = np.nan_to_num(np.asarray(grid, np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    pixels = np.clip(np.round(grid * 255.0), 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    Image.fromarray(pixels).save(path)


def interpolate(z_start: np.ndarray, z_end: np.ndarray, steps: int) -> np.ndarray:
    """Linear interpolation `[steps, D]` between two latent codes."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return (1.0 - t) * z_start[None] + t * z_end[None]


def slerp(z_start: np.ndarray, z_end: np.ndarray, steps: int) -> np.ndarray:
    """Great-circle interpolation `[steps, D]` between two codes on the unit sphere.

    `slerp(a, b; t) = (sin((1 - t) w) a + sin(t w) b) / sin(w)`, `w = arccos(a^T b)`, for `t` in
    [0, 1] evenly spaced, after normalizing `a` and `b`: every point is a unit vector (a linear
    path would cut through the ball, where a hyperspherical decoder was never trained). Nearly
    parallel or antipodal ends (`sin w < 1e-6`) fall back to normalized linear interpolation.
    """
    a = np.asarray(z_start, np.float64)
    b = np.asarray(z_end, np.float64)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    omega = np.arccos(np.clip(a @ b, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        path = (1.0 - t) * a[None] + t * b[None]
        return path / np.maximum(np.linalg.norm(path, axis=-1, keepdims=True), 1e-12)
    return (np.sin((1.0 - t) * omega) * a[None] + np.sin(t * omega) * b[None]) / np.sin(omega)
