"""`save_png`: values in [0, 1] to 8-bit pixels; a diverged sample's NaN and infinities are drawn
black or white, without a warning."""

import warnings

import numpy as np
from PIL import Image

from tfdgm.evaluation.images import save_png


def test_pixels_and_non_finite_values(tmp_path):
    grid = np.array([[0.0, 0.5, 1.0, 2.0], [np.nan, np.inf, -np.inf, -1.0]])[..., None]
    path = str(tmp_path / "grid.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_png(grid, path)
    np.testing.assert_array_equal(np.asarray(Image.open(path)),
                                  [[0, 128, 255, 255], [0, 255, 0, 0]])
