"""2-D toy densities: `two_moons`, `ring_of_gaussians`, `grid_of_gaussians`, `checkerboard`.

Points in R^2 for fast tests, density plots and mode counting. Every element is a float32 vector
`[2]` (kind `points`: not an image, not in [0, 1]; batches are `[B, 2]`); `image_shape` and
`DatasetInfo.event_shape` are both `(2,)`.

* `ring_of_gaussians`: an equal mixture of 8 isotropic Gaussians, std 0.02, centred on the circle
  of radius 2 at angles `2 pi k / 8` (the "2-D ring" of unrolled GANs, Metz et al. 2017, and
  VEEGAN, Srivastava et al. 2017). Label: the mode `k`.
* `grid_of_gaussians`: an equal mixture of 25 isotropic Gaussians, std 0.05, centred on
  `{-4, -2, 0, 2, 4}^2` (the "2-D grid" of VEEGAN). Label: the mode, row-major.
* `two_moons`: two interleaved half circles of radius 1, `(cos t, sin t)` and
  `(1 - cos t, 1/2 - sin t)` with `t ~ U[0, pi]`, plus N(0, 0.1^2 I) noise. Label: the moon.
* `checkerboard`: uniform on the 8 dark cells of a 4x4 board of side-2 squares over `[-4, 4]^2`
  (cell `(i, j)` dark when `i + j` is even), density 1/32 there and 0 elsewhere: the
  checkerboard of the flows literature (e.g. FFJORD, Grathwohl et al. 2019). No labels.

Splits are generated, not read: train 50000 / validation 5000 / test 5000, each from its own
`numpy.random.default_rng(SeedSequence([DATA_SEED, split index]))`, so a dataset is the same
everywhere and for every training seed (the training seed only orders it). `max_examples` keeps
a prefix, as for the image datasets. Nothing is prepared or written: the data is a function of
the seed, so a TFDS builder would only copy it to disk; `prepare` returns None and the same
`load_datasets` / `dataset_info` entry points batch it with the same rules.

The mixtures also expose `mixture_centers` `[K, 2]`, `mixture_std` and the exact `log_prob`, for
the mode-counting metric (a sample is "high quality" within 3 std of a centre; a mode is
"recovered" if enough samples fall near it) and density plots.
"""

import functools
from typing import ClassVar, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from scipy.special import logsumexp

from tfdgm.data.spec import SPLITS, DatasetSpec
from tfdgm.registry import DATASETS

DATA_SEED = 0
SIZES = {"train": 50000, "validation": 5000, "test": 5000}


class PointsSpec(DatasetSpec):
    """A generated dataset of 2-D points: subclasses implement `sample(rng, n)`.

    ```python
    spec = DATASETS.get("ring_of_gaussians")()
    points, labels = spec.arrays("test")      # float32 [5000, 2], int64 [5000]
    spec.log_prob(points)                     # exact log-density, [5000]
    ```
    """

    image_shape = (2,)
    kind = "points"
    num_examples = SIZES

    @classmethod
    def sample(cls, rng: np.random.Generator, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """`n` points float64 `[n, 2]` and their labels int64 `[n]` (zeros without labels)."""
        raise NotImplementedError

    @classmethod
    def log_prob(cls, points: np.ndarray) -> np.ndarray:
        """The exact log-density of `points` `[..., 2]`, `[...]` (where it has a closed form)."""
        raise NotImplementedError(f"'{cls.name}' has no closed-form density.")

    @classmethod
    @functools.lru_cache(maxsize=None)
    def _split(cls, split: str) -> Tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence([DATA_SEED, SPLITS.index(split)]))
        points, labels = cls.sample(rng, cls.num_examples[split])
        points, labels = points.astype(np.float32), labels.astype(np.int64)
        points.setflags(write=False)
        labels.setflags(write=False)
        return points, labels

    def arrays(self, split: str, max_examples: Optional[int] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
        """float32 points `[N, 2]` and int64 labels `[N]` of `split` (its first `max_examples`)."""
        self.check_split(split)
        points, labels = self._split(split)
        return points[:max_examples], labels[:max_examples]

    def prepare(self, tfds_data_dir: Optional[str] = None) -> None:
        """Nothing to prepare: the points are generated (see the module docstring)."""
        return None

    def prepared_split_sizes(self, tfds_data_dir: Optional[str] = None) -> Dict[str, int]:
        return dict(self.num_examples)

    def as_dataset(self, split: str, tfds_data_dir: Optional[str] = None,
                   max_examples: Optional[int] = None,
                   with_labels: bool = False) -> tf.data.Dataset:
        """The points of `split`, float32 `[2]` (with `with_labels`, `(point, int64 label)`)."""
        self.check_split(split, with_labels)
        points, labels = self.arrays(split, max_examples)
        return tf.data.Dataset.from_tensor_slices((points, labels) if with_labels else points)


class GaussianMixtureSpec(PointsSpec):
    """An equal mixture of isotropic Gaussians N(mixture_centers[k], mixture_std^2 I)."""

    has_labels = True
    mixture_centers: ClassVar[np.ndarray] = np.zeros((1, 2))
    mixture_std: ClassVar[float] = 1.0

    @classmethod
    def sample(cls, rng, n):
        labels = rng.integers(len(cls.mixture_centers), size=n)
        return cls.mixture_centers[labels] + cls.mixture_std * rng.standard_normal((n, 2)), labels

    @classmethod
    def log_prob(cls, points):
        """log p(x) = logsumexp_k log N(x; mu_k, s^2 I) - log K."""
        points = np.asarray(points, np.float64)
        sq = np.sum((points[..., None, :] - cls.mixture_centers) ** 2, axis=-1)
        log_normal = -sq / (2 * cls.mixture_std ** 2) - np.log(2 * np.pi * cls.mixture_std ** 2)
        return logsumexp(log_normal, axis=-1) - np.log(len(cls.mixture_centers))


_ANGLES = 2 * np.pi * np.arange(8) / 8
_GRID = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])


@DATASETS.register("ring_of_gaussians")
class RingOfGaussians(GaussianMixtureSpec):
    """`ring_of_gaussians`: 8 Gaussians (std 0.02) on the circle of radius 2."""

    name = "ring_of_gaussians"
    num_classes = 8
    mixture_centers = 2.0 * np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=-1)
    mixture_std = 0.02
    description = ("An equal mixture of 8 Gaussians with std 0.02 on the circle of radius 2 "
                   "(the 2-D ring of unrolled GANs and VEEGAN); 50000 / 5000 / 5000 generated "
                   "points.")
    citation = """\
@inproceedings{metz2017unrolled,
  title={Unrolled Generative Adversarial Networks},
  author={Metz, Luke and Poole, Ben and Pfau, David and Sohl-Dickstein, Jascha},
  booktitle={International Conference on Learning Representations (ICLR)}, year={2017}
}"""


@DATASETS.register("grid_of_gaussians")
class GridOfGaussians(GaussianMixtureSpec):
    """`grid_of_gaussians`: 25 Gaussians (std 0.05) on {-4, -2, 0, 2, 4}^2."""

    name = "grid_of_gaussians"
    num_classes = 25
    mixture_centers = np.stack(np.meshgrid(_GRID, _GRID, indexing="ij"), -1).reshape(25, 2)
    mixture_std = 0.05
    description = ("An equal mixture of 25 Gaussians with std 0.05 centred on "
                   "{-4, -2, 0, 2, 4}^2 (the 2-D grid of VEEGAN); 50000 / 5000 / 5000 generated "
                   "points.")
    citation = """\
@inproceedings{srivastava2017veegan,
  title={VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational Learning},
  author={Srivastava, Akash and Valkov, Lazar and Russell, Chris and Gutmann, Michael U. and
          Sutton, Charles},
  booktitle={Advances in Neural Information Processing Systems (NeurIPS)}, year={2017}
}"""


@DATASETS.register("two_moons")
class TwoMoons(PointsSpec):
    """`two_moons`: two interleaved noisy half circles (noise std 0.1)."""

    name = "two_moons"
    has_labels = True
    num_classes = 2
    noise_std: ClassVar[float] = 0.1
    description = ("Two interleaved half circles of radius 1 with Gaussian noise of std 0.1; "
                   "label: the moon; 50000 / 5000 / 5000 generated points.")
    citation = """\
@article{pedregosa2011sklearn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011},
  note={make_moons}
}"""

    @classmethod
    def sample(cls, rng, n):
        labels = rng.integers(2, size=n)
        t = np.pi * rng.random(n)
        upper = np.stack([np.cos(t), np.sin(t)], axis=-1)
        lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=-1)
        points = np.where(labels[:, None] == 0, upper, lower)
        return points + cls.noise_std * rng.standard_normal((n, 2)), labels


@DATASETS.register("checkerboard")
class Checkerboard(PointsSpec):
    """`checkerboard`: uniform on the 8 dark cells of a 4x4 board over [-4, 4]^2."""

    name = "checkerboard"
    description = ("Uniform on the 8 dark side-2 cells of a 4x4 checkerboard over [-4, 4]^2 "
                   "(density 1/32), the checkerboard of the flows literature; 50000 / 5000 / "
                   "5000 generated points.")
    citation = """\
@inproceedings{grathwohl2019ffjord,
  title={{FFJORD}: Free-form Continuous Dynamics for Scalable Reversible Generative Models},
  author={Grathwohl, Will and Chen, Ricky T. Q. and Bettencourt, Jesse and Sutskever, Ilya and
          Duvenaud, David},
  booktitle={International Conference on Learning Representations (ICLR)}, year={2019}
}"""

    @classmethod
    def sample(cls, rng, n):
        # Cell (i, j) covers [2i - 4, 2i - 2) x [2j - 4, 2j - 2); it is dark when i + j is even.
        i = rng.integers(4, size=n)
        j = 2 * rng.integers(2, size=n) + i % 2
        corner = np.stack([2.0 * i - 4.0, 2.0 * j - 4.0], axis=-1)
        return corner + 2.0 * rng.random((n, 2)), np.zeros(n, np.int64)

    @classmethod
    def log_prob(cls, points):
        """log(1/32) on the dark cells, -inf elsewhere."""
        points = np.asarray(points, np.float64)
        cells = np.floor((points + 4.0) / 2.0)
        inside = np.all((cells >= 0) & (cells <= 3), axis=-1)
        dark = inside & (np.sum(cells, axis=-1) % 2 == 0)
        return np.where(dark, -np.log(32.0), -np.inf)
