"""Generated 2-D densities: their laws, exact densities, and the pipeline's batching of points."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.config import DataConfig
from tfdgm.data import dataset_info, load_datasets, load_images, load_labelled, toy2d
from tfdgm.errors import ConfigError
from tfdgm.registry import DATASETS

NAMES = ("two_moons", "ring_of_gaussians", "grid_of_gaussians", "checkerboard")


def test_registered_as_points():
    for name in NAMES:
        spec = DATASETS.get(name)
        assert spec.kind == "points" and spec.image_shape == (2,)
        assert dict(spec.num_examples) == {"train": 50000, "validation": 5000, "test": 5000}
        info = dataset_info(DataConfig(name=name))
        assert info.event_shape == (2,) and info.image_shape == (2,) and info.kind == "points"
        assert len(spec.description) > 40 and spec.citation.startswith("@")


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_fixed_and_distinct(name):
    spec = DATASETS.get(name)()
    test, labels = spec.arrays("test")
    assert test.shape == (5000, 2) and test.dtype == np.float32 and labels.dtype == np.int64
    # The same data in a fresh generator (not only the cache): the split's own seed.
    rng = np.random.default_rng(np.random.SeedSequence([toy2d.DATA_SEED, 2]))
    np.testing.assert_array_equal(spec.sample(rng, 5000)[0].astype(np.float32), test)
    validation, _ = spec.arrays("validation")
    assert not np.any(np.all(validation[:, None] == test[None, :100], axis=-1))
    np.testing.assert_array_equal(spec.arrays("test", max_examples=7)[0], test[:7])


@pytest.mark.parametrize("name, num_modes, radius, std", [
        ("ring_of_gaussians", 8, 2.0, 0.02), ("grid_of_gaussians", 25, None, 0.05)])
def test_mixtures(name, num_modes, radius, std):
    spec = DATASETS.get(name)
    centers = spec.mixture_centers
    assert centers.shape == (num_modes, 2) and spec.mixture_std == std and spec.has_labels
    if radius:
        np.testing.assert_allclose(np.linalg.norm(centers, axis=-1), radius)
        np.testing.assert_allclose(centers[2], [0.0, 2.0], atol=1e-12)
    else:
        assert sorted(set(centers.ravel())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    points, labels = spec().arrays("train")
    offsets = points - centers[labels]
    # Each point is its label's centre plus N(0, std^2 I): moments and tail, per axis.
    np.testing.assert_allclose(offsets.mean(0), 0.0, atol=4 * std / np.sqrt(50000))
    np.testing.assert_allclose(offsets.std(0), std, rtol=0.02)
    assert np.abs(offsets).max() < 6 * std
    counts = np.bincount(labels, minlength=num_modes)
    assert np.all(np.abs(counts - 50000 / num_modes) < 5 * np.sqrt(50000 / num_modes))


@pytest.mark.parametrize("name", ["ring_of_gaussians", "grid_of_gaussians"])
def test_mixture_log_prob_is_the_mixture_density(name):
    spec = DATASETS.get(name)
    k, s = len(spec.mixture_centers), spec.mixture_std
    # At a centre, far from the others: log(1 / (K 2 pi s^2)).
    np.testing.assert_allclose(spec.log_prob(spec.mixture_centers[0]),
                               -np.log(k * 2 * np.pi * s ** 2), rtol=1e-12)
    # Normalized: integrate over a fine grid around one mode (mass 1 / K there).
    step = s / 20
    axis = np.arange(-8 * s, 8 * s, step) + step / 2
    grid = np.stack(np.meshgrid(axis, axis), -1) + spec.mixture_centers[3]
    mass = np.exp(spec.log_prob(grid)).sum() * step ** 2
    np.testing.assert_allclose(mass, 1 / k, rtol=1e-6)


def test_checkerboard_is_uniform_on_the_dark_cells():
    spec = DATASETS.get("checkerboard")
    points, _ = spec().arrays("train")
    assert not spec.has_labels
    cells = np.floor((points + 4) / 2).astype(int)
    assert cells.min() == 0 and cells.max() == 3
    assert np.all(cells.sum(-1) % 2 == 0)
    counts = np.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    dark = [i * 4 + j for i in range(4) for j in range(4) if (i + j) % 2 == 0]
    assert np.all(np.abs(counts[dark] - 50000 / 8) < 5 * np.sqrt(50000 / 8))
    np.testing.assert_allclose(spec.log_prob(points), -np.log(32.0))
    assert spec.log_prob(np.array([[-3.0, -1.0], [5.0, 0.5], [1.0, 1.0]])).tolist() == [
            -np.inf, -np.inf, -np.log(32.0)]
    # Mass 1 over [-4, 4]^2 on a midpoint grid.
    axis = np.arange(-4, 4, 0.01) + 0.005
    density = np.exp(spec.log_prob(np.stack(np.meshgrid(axis, axis), -1)))
    np.testing.assert_allclose(density.sum() * 0.01 ** 2, 1.0, rtol=1e-9)


def test_two_moons_lie_on_their_half_circles():
    points, labels = DATASETS.get("two_moons")().arrays("train")
    centres = np.where(labels[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
    radial = np.linalg.norm(points - centres, axis=-1) - 1.0
    assert abs(radial.mean()) < 0.01 and abs(radial.std() - 0.1) < 0.01
    # Upper moon above its centre, lower moon below its own (up to the noise).
    assert np.mean(points[labels == 0, 1] > -0.3) > 0.99
    assert np.mean(points[labels == 1, 1] < 0.8) > 0.99
    assert 0.48 < labels.mean() < 0.52


def test_points_through_the_pipeline():
    config = DataConfig(name="ring_of_gaussians", batch_size=64, eval_batch_size=300,
                        max_examples=1000)
    data = load_datasets(config, seed=3, initial_epoch=0)
    assert data.info.num_examples == {"train": 1000, "validation": 1000, "test": 1000}
    assert data.steps_per_epoch == 15
    epoch = np.concatenate(list(data.train_epoch(0).as_numpy_iterator()))
    assert epoch.shape == (960, 2) and epoch.dtype == np.float32
    train = load_images(config, "train")
    assert train.shape == (1000, 2)
    # An epoch is 960 distinct training points: a permutation minus the dropped remainder.
    rows = {tuple(p) for p in train}
    assert len({tuple(p) for p in epoch}) == 960 and all(tuple(p) in rows for p in epoch)
    assert [b.shape[0] for b in data.test.as_numpy_iterator()] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate(list(data.test.as_numpy_iterator())),
                                  toy2d.RingOfGaussians().arrays("test", 1000)[0])
    x, y = load_labelled(config, "test")
    np.testing.assert_array_equal(
            y, np.argmin(np.linalg.norm(x[:, None] - toy2d.RingOfGaussians.mixture_centers,
                                        axis=-1), axis=1))
    assert isinstance(next(iter(data.train)), tf.Tensor)


@pytest.mark.parametrize("binarize", ["dynamic", "threshold"])
def test_points_cannot_be_binarized(binarize):
    with pytest.raises(ConfigError, match="checkerboard' is points.*data.binarize: none"):
        dataset_info(DataConfig(name="checkerboard", binarize=binarize))
