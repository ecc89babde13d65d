"""Mode counting on 2-D Gaussian mixtures (VEEGAN protocol) on hand-placed and sampled points."""

import numpy as np
import pytest

from tfdgm.evaluation.mixture_modes import (
    GRID_STD, RING_STD, grid_of_gaussians_centers, high_quality_fraction, mode_coverage,
    modes_captured, ring_of_gaussians_centers)


def _sample_mixture(centers, std, num_samples, seed):
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(centers), num_samples)
    return centers[which] + std * rng.standard_normal((num_samples, 2))


def test_ring_centers_lie_on_the_circle_equally_spaced():
    centers = ring_of_gaussians_centers(8, 2.0)
    assert centers.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 2.0, rtol=1e-14)
    angles = np.unwrap(np.arctan2(centers[:, 1], centers[:, 0]))
    np.testing.assert_allclose(np.diff(angles), 2 * np.pi / 8, rtol=1e-12)
    np.testing.assert_allclose(centers[0], [2.0, 0.0])


def test_grid_centers_are_the_benchmark_grid():
    centers = grid_of_gaussians_centers(5, 2.0)
    assert centers.shape == (25, 2)
    expected = {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(c) for c in centers.tolist()} == expected
    assert {tuple(c) for c in grid_of_gaussians_centers(2, 1.0).tolist()} == {
        (-.5, -.5), (-.5, .5), (.5, -.5), (.5, .5)}


def test_hand_placed_points_at_five_of_eight_modes_and_outliers():
    centers = ring_of_gaussians_centers(8, 2.0)
    rng = np.random.default_rng(0)
    captured = [0, 2, 3, 5, 7]
    # 30 points within 2 std of each of 5 centres, and 10 outliers far from every centre.
    offsets = rng.uniform(-1., 1., (len(captured), 30, 2))
    offsets *= 2. * RING_STD / np.linalg.norm(offsets, axis=-1, keepdims=True).max()
    near = (centers[captured][:, None, :] + offsets).reshape(-1, 2)
    outliers = rng.uniform(-0.5, 0.5, (10, 2))                    # near the origin
    samples = np.concatenate([near, outliers])
    stats = mode_coverage(samples, centers, std=RING_STD)
    assert stats["modes_captured"] == 5
    assert stats["num_modes"] == 8
    assert stats["high_quality_fraction"] == 150 / 160
    assert stats["high_quality_per_mode"] == [30, 0, 30, 30, 0, 30, 0, 30]
    assert stats["num_samples"] == 160
    assert modes_captured(samples, centers, RING_STD) == 5
    assert high_quality_fraction(samples, centers, RING_STD) == 150 / 160


def test_three_standard_deviations_boundary_and_nearest_mode():
    centers = ring_of_gaussians_centers(8, 2.0)
    direction = np.array([[0.6, 0.8]])
    inside = centers[1] + 2.9 * RING_STD * direction
    outside = centers[1] + 3.1 * RING_STD * direction
    stats = mode_coverage(np.concatenate([inside, outside]), centers, RING_STD)
    assert stats["high_quality_per_mode"][1] == 1
    assert stats["high_quality_fraction"] == 0.5
    # A wider tolerance counts both.
    assert mode_coverage(outside, centers, RING_STD, num_std=3.2)["modes_captured"] == 1
    assert mode_coverage(outside, centers, RING_STD)["modes_captured"] == 0


def test_minimum_count_per_mode():
    centers = grid_of_gaussians_centers()
    samples = np.concatenate([np.repeat(centers[[3]], 19, axis=0),
                              np.repeat(centers[[7]], 20, axis=0)])
    assert modes_captured(samples, centers, GRID_STD) == 2
    assert modes_captured(samples, centers, GRID_STD, min_samples_per_mode=20) == 1
    with pytest.raises(ValueError):
        modes_captured(samples, centers, GRID_STD, min_samples_per_mode=0)


@pytest.mark.parametrize("centers, std", [
    (ring_of_gaussians_centers(), RING_STD),
    (grid_of_gaussians_centers(), GRID_STD),
])
def test_samples_of_the_true_mixture(centers, std):
    samples = _sample_mixture(centers, std, 20000, seed=1)
    stats = mode_coverage(samples, centers, std)
    assert stats["modes_captured"] == len(centers)
    # ||x - mu|| / std is Rayleigh: P(R <= 3) = 1 - exp(-9/2).
    p = 1. - np.exp(-4.5)
    assert abs(stats["high_quality_fraction"] - p) < 4. * np.sqrt(p * (1. - p) / 20000)
    # 2500 samples (the protocol's number) capture every mode even at 20 per mode.
    assert modes_captured(samples[:2500], centers, std, min_samples_per_mode=20) == len(centers)


def test_a_collapsed_generator_captures_one_mode():
    centers = ring_of_gaussians_centers()
    samples = _sample_mixture(centers[[4]], RING_STD, 2500, seed=2)
    assert modes_captured(samples, centers, RING_STD) == 1


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        mode_coverage(np.zeros((5, 3)), ring_of_gaussians_centers(), RING_STD)
    with pytest.raises(ValueError):
        mode_coverage(np.zeros((5, 2)), ring_of_gaussians_centers(), 0.)
