"""Classifier FID / KID / precision-recall / inception score against known answers."""

import itertools

import numpy as np
import pytest
from scipy import linalg, spatial, stats

from tfdgm.evaluation import sample_quality as sq
from tfdgm.evaluation.feature_network import train_feature_network


def _random_spd(rng, dim):
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


# Frechet distance.

def test_frechet_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).standard_normal((500, 16)) @ np.diag(np.arange(1, 17))
    assert sq.frechet_distance_of_features(features, features) < 1e-9


def test_frechet_of_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    s1, s2 = rng.uniform(0.2, 3., 6), rng.uniform(0.2, 3., 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    actual = sq.frechet_distance(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2))
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


def test_frechet_of_full_covariances_matches_scipy_sqrtm():
    rng = np.random.default_rng(2)
    dim = 10
    mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
    s1, s2 = _random_spd(rng, dim), _random_spd(rng, dim)
    cross = linalg.sqrtm(s1 @ s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2. * np.real(cross))
    np.testing.assert_allclose(sq.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-10)
    np.testing.assert_allclose(sq.frechet_distance(mu2, s2, mu1, s1), expected, rtol=1e-10)
    # A rotated copy: W2^2(N(0, S), N(0, R S R^T)) by the same independent route.
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    rotated = q @ s1 @ q.T
    expected = np.trace(s1 + rotated - 2. * np.real(linalg.sqrtm(s1 @ rotated)))
    np.testing.assert_allclose(sq.frechet_distance(np.zeros(dim), s1, np.zeros(dim), rotated),
                               expected, rtol=1e-9)


def test_frechet_with_singular_covariances_is_finite_and_symmetric():
    rng = np.random.default_rng(3)
    f1 = rng.standard_normal((8, 20))                      # fewer samples than features
    f2 = rng.standard_normal((8, 20)) + 0.5
    d12 = sq.frechet_distance_of_features(f1, f2)
    d21 = sq.frechet_distance_of_features(f2, f1)
    assert np.isfinite(d12) and d12 > 0.
    np.testing.assert_allclose(d12, d21, rtol=1e-9)


def test_frechet_of_samples_converges_to_the_gaussians_distance():
    rng = np.random.default_rng(4)
    s1, s2 = _random_spd(rng, 4), _random_spd(rng, 4)
    mu2 = np.array([1., 0., -1., 0.5])
    f1 = rng.multivariate_normal(np.zeros(4), s1, 40000)
    f2 = rng.multivariate_normal(mu2, s2, 40000)
    expected = sq.frechet_distance(np.zeros(4), s1, mu2, s2)
    np.testing.assert_allclose(sq.frechet_distance_of_features(f1, f2), expected, rtol=0.03)


# Kernel (inception) distance.

def _direct_mmd2_unbiased(x, y):
    dim = x.shape[1]
    k = lambda a, b: (a @ b / dim + 1.) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2. * xy


def test_mmd2_matches_a_direct_double_sum():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((5, 3)) + 0.3
    np.testing.assert_allclose(sq.polynomial_mmd2_unbiased(x, y), _direct_mmd2_unbiased(x, y),
                               rtol=1e-12)


def test_mmd2_estimator_is_exactly_unbiased():
    # P, Q uniform on 3 points each; average the estimator over every i.i.d. draw of m = 3
    # points of P and n = 2 of Q (3^3 * 3^2 equally likely tuples).
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2)) + 0.7
    kernel = lambda u, v: (u @ v.T / 2. + 1.) ** 3  # noqa: E731
    truth = kernel(a, a).mean() + kernel(b, b).mean() - 2. * kernel(a, b).mean()
    unbiased, biased = [], []
    for i in itertools.product(range(3), repeat=3):
        for j in itertools.product(range(3), repeat=2):
            x, y = a[list(i)], b[list(j)]
            unbiased.append(sq.polynomial_mmd2_unbiased(x, y))
            biased.append(kernel(x, x).mean() + kernel(y, y).mean() - 2. * kernel(x, y).mean())
    np.testing.assert_allclose(np.mean(unbiased), truth, rtol=1e-12)
    assert abs(np.mean(biased) - truth) > 0.05 * abs(truth)       # the V-statistic is not


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(7)
    f1, f2 = rng.standard_normal((1000, 16)), rng.standard_normal((1000, 16))
    mean, std = sq.kernel_distance_of_features(f1, f2, num_subsets=50, subset_size=200)
    assert std > 0. and abs(mean) < 3. * std
    shifted = rng.standard_normal((1000, 16)) + 0.5
    mean_s, std_s = sq.kernel_distance_of_features(f1, shifted, num_subsets=50, subset_size=200)
    assert mean_s > 5. * std_s and mean_s > 20. * abs(mean)


def test_kid_is_seeded_and_bounded_by_the_set_sizes():
    rng = np.random.default_rng(8)
    f1, f2 = rng.standard_normal((30, 4)), rng.standard_normal((50, 4)) + 0.2
    first = sq.kernel_distance_of_features(f1, f2, num_subsets=5, subset_size=20, seed=3)
    assert first == sq.kernel_distance_of_features(f1, f2, 5, 20, seed=3)
    assert first != sq.kernel_distance_of_features(f1, f2, 5, 20, seed=4)
    # A subset size above both set sizes takes every row: each subset is a permutation of the
    # sets, and MMD^2_u does not depend on the order.
    mean, std = sq.kernel_distance_of_features(f1, f2[:30], num_subsets=4, subset_size=1000)
    np.testing.assert_allclose(mean, sq.polynomial_mmd2_unbiased(f1, f2[:30]), rtol=1e-12)
    assert std < 1e-12
    assert sq.kernel_distance_of_features(f1, f2, 1, 30, seed=0)[1] == 0.


# Precision and recall.

def _brute_force_precision_recall(real, fake, k):
    def inside(points, centers):
        radii = np.sort(spatial.distance.cdist(centers, centers), axis=1)[:, k]
        return np.mean(np.any(spatial.distance.cdist(points, centers) <= radii, axis=1))
    return inside(fake, real), inside(real, fake)


def test_precision_recall_of_a_set_with_itself_is_one():
    features = np.random.default_rng(9).standard_normal((300, 8))
    assert sq.precision_recall(features, features) == (1., 1.)


def test_precision_recall_of_far_sets_is_zero():
    rng = np.random.default_rng(10)
    real, fake = rng.standard_normal((100, 4)), rng.standard_normal((80, 4)) + 100.
    assert sq.precision_recall(real, fake) == (0., 0.)


def test_precision_recall_with_outliers_and_a_missing_mode():
    rng = np.random.default_rng(11)
    real = np.concatenate([rng.standard_normal((200, 2)), rng.standard_normal((200, 2)) + 20.])
    # Fakes cover only the first mode (good precision), and 25% are far outliers.
    fake = np.concatenate([rng.standard_normal((150, 2)), 1000. + rng.uniform(0, 1, (50, 2))])
    precision, recall = sq.precision_recall(real, fake, k=3)
    assert (precision, recall) == _brute_force_precision_recall(real, fake, 3)
    assert 0.65 < precision <= 0.75                          # outliers are never inside
    assert 0.4 < recall <= 0.5                               # the second mode is missed


def test_precision_recall_blocks_do_not_change_the_answer(monkeypatch):
    rng = np.random.default_rng(12)
    real, fake = rng.standard_normal((123, 5)), rng.standard_normal((77, 5)) * 1.3 + 0.2
    expected = _brute_force_precision_recall(real, fake, 3)
    monkeypatch.setattr(sq, "_MAX_BLOCK_ELEMENTS", 500)     # blocks of a few rows
    assert sq.precision_recall(real, fake, k=3) == expected
    monkeypatch.setattr(sq, "_MAX_BLOCK_ELEMENTS", 1)       # one row per block
    assert sq.precision_recall(real, fake, k=3) == expected


# Inception score.

def test_inception_score_of_a_confident_balanced_classifier_is_the_number_of_classes():
    num_classes, splits = 7, 5
    labels = np.tile(np.arange(num_classes), splits * 4)        # balanced in every split
    probabilities = np.eye(num_classes)[labels]
    mean, std = sq.classifier_inception_score(probabilities, splits=splits)
    np.testing.assert_allclose(mean, num_classes, rtol=1e-12)
    assert std < 1e-12


def test_inception_score_of_a_constant_classifier_is_one():
    probabilities = np.tile(np.random.default_rng(13).dirichlet(np.ones(5)), (100, 1))
    mean, std = sq.classifier_inception_score(probabilities, splits=10)
    np.testing.assert_allclose(mean, 1., rtol=1e-12)
    assert std < 1e-12


def test_inception_score_matches_scipy_entropy():
    probabilities = np.random.default_rng(14).dirichlet(0.3 * np.ones(4), size=60)
    parts = np.array_split(probabilities, 3)
    scores = [np.exp(np.mean([stats.entropy(p, part.mean(axis=0)) for p in part]))
              for part in parts]
    mean, std = sq.classifier_inception_score(probabilities, splits=3)
    np.testing.assert_allclose([mean, std], [np.mean(scores), np.std(scores)], rtol=1e-10)
    assert 1. < mean < 4.


# End to end through a feature network.

def _toy_images(n, seed, num_classes=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.uniform(0., 0.3, (n, 16, 16, 1)).astype(np.float32)
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 2)
        images[i, r * 8 + 2:r * 8 + 6, c * 8 + 2:c * 8 + 6, 0] += 0.6
    return images, labels


@pytest.fixture(scope="module")
def toy_network():
    x_train, y_train = _toy_images(400, 0)
    x_val, y_val = _toy_images(100, 1)
    network = train_feature_network(x_train, y_train, x_val, y_val, name="toy", epochs=4,
                                    batch_size=16, filters=(8, 16), feature_dim=32)
    return network, _toy_images(300, 2)


def test_sample_quality_of_real_images_against_themselves(toy_network):
    network, (real, _) = toy_network
    metrics = sq.sample_quality(network, real, real, kid_num_subsets=10, kid_subset_size=100)
    assert metrics["classifier_fid"] < 1e-6
    assert metrics["classifier_precision"] == metrics["classifier_recall"] == 1.
    assert metrics["classifier_inception_score"] == metrics["classifier_inception_score_real"]
    assert metrics["feature_network"] == network.record
    assert metrics["feature_network"]["weights_sha256"] == network.record["weights_sha256"]
    assert metrics["num_real"] == metrics["num_fake"] == 300
    assert "classifier_fid" in metrics and not any(key == "fid" for key in metrics)


def test_sample_quality_of_collapsed_samples_is_worse(toy_network):
    network, (real, labels) = toy_network
    collapsed = real[labels == 0]                                # one class of four
    good = sq.sample_quality(network, real[:150], real[150:], kid_num_subsets=10,
                             kid_subset_size=100)
    bad = sq.sample_quality(network, real[:150], collapsed, kid_num_subsets=10,
                            kid_subset_size=100)
    assert bad["classifier_fid"] > 10. * good["classifier_fid"]
    assert abs(good["classifier_kid"]) < 3. * good["classifier_kid_std"]
    assert bad["classifier_kid"] > good["classifier_kid"] + 3. * bad["classifier_kid_std"]
    assert bad["classifier_recall"] < good["classifier_recall"]
    # Four balanced classes: near 4 for the real images, near 1 for one class.
    assert bad["classifier_inception_score"] < 1.2
    assert good["classifier_inception_score"] > 3.
