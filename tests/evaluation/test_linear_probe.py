"""The linear probe: a correct softmax-regression fit, and accuracies with known answers."""

import numpy as np
import pytest
from scipy import special

from tfdgm.evaluation.linear_probe import fit_softmax_regression, linear_probe


def _blobs(rng, n, num_classes=3, dim=5, spread=0.3):
    centres = rng.normal(size=(num_classes, dim)) * 3.0
    labels = rng.integers(0, num_classes, n)
    return centres[labels] + spread * rng.normal(size=(n, dim)), labels


def test_fit_is_the_regularized_optimum_sklearn_finds():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, 300, spread=2.0)
    l2 = 0.05
    w, b, result = fit_softmax_regression(x, y, 3, l2=l2)
    assert result.success
    reference = sklearn.LogisticRegression(C=1.0 / (len(x) * l2), tol=1e-10, max_iter=10000)
    reference.fit(x, y)
    ours = special.softmax(x @ w + b, axis=1)
    np.testing.assert_allclose(ours, reference.predict_proba(x), atol=1e-4)
    np.testing.assert_allclose(w.T, reference.coef_, atol=1e-3)


def test_gradient_vanishes_at_the_fit():
    rng = np.random.default_rng(1)
    x, y = _blobs(rng, 200, spread=2.0)
    l2 = 0.01
    w, b, _ = fit_softmax_regression(x, y, 3, l2=l2)
    residual = special.softmax(x @ w + b, axis=1) - np.eye(3)[y]
    assert np.abs(x.T @ residual / len(x) + l2 * w).max() < 1e-4
    assert np.abs(residual.mean(0)).max() < 1e-4


def test_separable_classes_are_found_and_random_labels_are_not():
    rng = np.random.default_rng(2)
    x, y = _blobs(rng, 600, num_classes=4, dim=8)
    separable = linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert separable["accuracy"] == 1.0 and separable["converged"]
    shuffled = rng.permutation(y)
    chance = linear_probe(x[:400], shuffled[:400], x[400:], shuffled[400:])
    assert chance["accuracy"] < 0.45  # 4 classes: chance is about 0.25


def test_images_are_flattened_and_constant_pixels_do_not_break_the_fit():
    rng = np.random.default_rng(3)
    x, y = _blobs(rng, 200, num_classes=2, dim=16)
    images = np.concatenate([x.reshape(-1, 4, 4, 1), np.zeros((200, 4, 4, 1))], axis=-1)
    probe = linear_probe(images[:150], y[:150], images[150:], y[150:])
    assert np.isfinite(probe["train_accuracy"]) and probe["accuracy"] > 0.9


def test_mismatched_feature_widths_are_an_error():
    with pytest.raises(ValueError, match="differ in width"):
        linear_probe(np.zeros((4, 3)), np.array([0, 1, 0, 1]), np.zeros((2, 5)), np.array([0, 1]))
