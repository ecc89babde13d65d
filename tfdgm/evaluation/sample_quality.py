"""Sample quality from a classifier's features: Frechet and kernel distances, precision and
recall, and the classifier's inception score.

Every metric compares real images `x_r` `[N, H, W, C]` and generated ones `x_g` `[M, H, W, C]`
through a classifier trained on the real data (`tfdgm.evaluation.feature_network`): its
penultimate features `phi(x)` `[N, F]` and its class probabilities `p(y | x)` `[N, K]`. They are
the metrics of the literature with the Inception network replaced by that classifier, so the
numbers are comparable between models scored by one classifier (the same `record["key"]`), never
with published FID / KID / IS values; hence the keys `classifier_fid`, `classifier_kid`, ....

* Classifier Frechet distance (Heusel et al. 2017): the Frechet (2-Wasserstein) distance of the
  Gaussians fitted to the two sets of features,

  ```none
  d^2 = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})
  ```

* Classifier kernel distance (Binkowski et al. 2018, "KID"): the unbiased estimate of the
  squared MMD with the cubic polynomial kernel `k(a, b) = (a^T b / F + 1)^3`, averaged over
  random subsets of both sets (mean and standard deviation over subsets). Unbiased, so it can
  be negative; near 0 for samples of one distribution.
* Precision and recall of k-NN manifolds (Kynkaanniemi et al. 2019): the fraction of generated
  features inside the union of the real features' k-NN balls (precision) and of real features
  inside the generated ones' (recall).
* Classifier inception score (Salimans et al. 2016): `exp(E_x KL(p(y | x) || p(y)))`, `p(y)`
  the mean prediction, over `splits` equal parts of the samples (mean and standard deviation).

All computations are numpy in float64. Cost for 10000 real and 10000 generated 128-d features
on 2 shared CPU cores: the Frechet distance under a second, the kernel distance (100 subsets
of 1000) and precision / recall (four 10000 x 10000 distance matrices, in blocks) 10-20 s each.

#### References

[1]: Martin Heusel, Hubert Ramsauer, Thomas Unterthiner, Bernhard Nessler and Sepp Hochreiter.
     GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium. In
     _Neural Information Processing Systems_, 2017. https://arxiv.org/abs/1706.08500
[2]: Mikolaj Binkowski, Dougal J. Sutherland, Michael Arbel and Arthur Gretton. Demystifying
     MMD GANs. In _International Conference on Learning Representations_, 2018.
     https://arxiv.org/abs/1801.01401
[3]: Tuomas Kynkaanniemi, Tero Karras, Samuli Laine, Jaakko Lehtinen and Timo Aila. Improved
     Precision and Recall Metric for Assessing Generative Models. In _Neural Information
     Processing Systems_, 2019. https://arxiv.org/abs/1904.06991
[4]: Tim Salimans, Ian Goodfellow, Wojciech Zaremba, Vicki Cheung, Alec Radford and Xi Chen.
     Improved Techniques for Training GANs. In _Neural Information Processing Systems_, 2016.
     https://arxiv.org/abs/1606.03498
"""

from typing import Dict, Optional, Tuple

import numpy as np
from scipy import special

__all__ = [
    "classifier_inception_score",
    "frechet_distance",
    "frechet_distance_of_features",
    "kernel_distance_of_features",
    "polynomial_mmd2_unbiased",
    "precision_recall",
    "sample_quality",
    "sample_quality_of_features",
]

# The most float64 entries of one block of pairwise distances (32 MiB).
_MAX_BLOCK_ELEMENTS = 1 << 22


def _features(f, name):
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must be [N, F], got shape {f.shape}.")
    return f


def _clip_rounding(eigenvalues):
    """Zeroes eigenvalues that are rounding noise (`|lambda| < F eps max |lambda|`): their
    square roots (~1e-8 of the scale) would otherwise enter the result."""
    floor = len(eigenvalues) * np.finfo(np.float64).eps * np.max(np.abs(eigenvalues), initial=0.)
    return np.where(eigenvalues > floor, eigenvalues, 0.)


def _psd_sqrt(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(_clip_rounding(eigenvalues))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance `||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})` of two Gaussians.

    This is the squared 2-Wasserstein distance of `N(mu1, S1)` and `N(mu2, S2)`. The trace of
    `(S1 S2)^{1/2}` is the sum of the square roots of the eigenvalues of `S1 S2`, which are those
    of the symmetric positive semi-definite `S1^{1/2} S2 S1^{1/2}` (similar matrices): two
    symmetric eigendecompositions, no complex arithmetic, and singular covariances (fewer
    samples than features) are fine. Eigenvalues below `F eps max |lambda|` (rounding noise,
    negative ones included) are set to 0, and so is a negative total.

    Args:
        mu1, mu2: float arrays `[F]`, the means.
        sigma1, sigma2: float arrays `[F, F]`, symmetric positive semi-definite covariances.

    Returns:
        Python `float` (computed in float64), `>= 0`.

    Example:

    ```python
    frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4. * np.eye(2))   # 2 + 2 (2 - 1)^2
    ```
    """
    mu1, mu2 = (np.asarray(m, dtype=np.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (np.asarray(s, dtype=np.float64) for s in (sigma1, sigma2))
    dim = mu1.shape[-1]
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) \
            or sigma2.shape != (dim, dim):
        raise ValueError("Means must be [F] and covariances [F, F]; got "
                         f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}.")
    # Symmetrize: covariances from np.cov are symmetric only up to rounding.
    sigma1 = 0.5 * (sigma1 + sigma1.T)
    sigma2 = 0.5 * (sigma2 + sigma2.T)
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_sqrt = np.sum(np.sqrt(_clip_rounding(eigenvalues)))
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2. * trace_sqrt
    return float(max(value, 0.))


def frechet_distance_of_features(features1, features2) -> float:
    """Frechet distance of the Gaussians fitted to two sets of features `[N1, F]`, `[N2, F]`.

    Means and unbiased covariances (`np.cov`, divisor `N - 1`) in float64, then
    `frechet_distance`. With `features2 = features1` it is 0 (up to rounding).

    Example:

    ```python
    classifier_fid = frechet_distance_of_features(net.features(real), net.features(fake))
    ```
    """
    features1 = _features(features1, "features1")
    features2 = _features(features2, "features2")
    if min(len(features1), len(features2)) < 2:
        raise ValueError("Need at least two feature vectors in each set.")
    return frechet_distance(features1.mean(axis=0), np.cov(features1, rowvar=False),
                            features2.mean(axis=0), np.cov(features2, rowvar=False))


def _polynomial_kernel(a, b, degree, dim):
    base = a @ b.T / dim + 1.
    if degree == 3:
        return base * base * base  # numpy's float power is ~10x slower than two products
    return base ** degree


def polynomial_mmd2_unbiased(x, y, degree: int = 3) -> float:
    """Unbiased estimate of `MMD^2(P, Q)` with the kernel `k(a, b) = (a^T b / F + 1)^degree`.

    For `x_1..x_m ~ P` and `y_1..y_n ~ Q` (i.i.d., `m, n >= 2`),

    ```none
    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n)
    ```

    whose expectation is exactly `E k(x, x') + E k(y, y') - 2 E k(x, y)` (Gretton et al. 2012,
    lemma 6; Binkowski et al. 2018 use it with `degree = 3` as KID).

    Args:
        x: float array `[m, F]`.
        y: float array `[n, F]`.
        degree: the polynomial kernel's degree.

    Returns:
        Python `float` (float64); may be negative.

    Example:

    ```python
    polynomial_mmd2_unbiased(features_real[:1000], features_fake[:1000])
    ```
    """
    x = _features(x, "x")
    y = _features(y, "y")
    m, n, dim = len(x), len(y), x.shape[1]
    if m < 2 or n < 2 or y.shape[1] != dim:
        raise ValueError(f"Need [m >= 2, F] and [n >= 2, F], got {x.shape} and {y.shape}.")
    k_xx = _polynomial_kernel(x, x, degree, dim)
    k_yy = _polynomial_kernel(y, y, degree, dim)
    k_xy = _polynomial_kernel(x, y, degree, dim)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2. * k_xy.mean())


def kernel_distance_of_features(features1, features2, num_subsets: int = 100,
                                subset_size: int = 1000, degree: int = 3,
                                seed: int = 0) -> Tuple[float, float]:
    """Kernel (inception) distance of two sets of features: mean and std of `MMD^2_u`.

    As in Binkowski et al. (2018): `num_subsets` times, draw `s = min(subset_size, N1, N2)`
    rows of each set without replacement and evaluate `polynomial_mmd2_unbiased` on them; the
    result is the mean and the standard deviation (divisor `num_subsets - 1`; 0 for one subset)
    of the `num_subsets` estimates. The mean is unbiased for `MMD^2` whatever the subsets
    (for two independent samples: two subsets of one set are not, and score slightly below 0).

    Args:
        features1, features2: float arrays `[N1, F]`, `[N2, F]` (`N1, N2 >= 2`).
        num_subsets: number of subsets averaged (100 in the paper).
        subset_size: rows per subset (1000 in the paper).
        degree: the polynomial kernel's degree (3).
        seed: seed of the subsets (`np.random.default_rng`).

    Returns:
        `(mean, std)`, Python floats.

    Example:

    ```python
    kid, kid_std = kernel_distance_of_features(net.features(real), net.features(fake))
    ```
    """
    features1 = _features(features1, "features1")
    features2 = _features(features2, "features2")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be positive, got {num_subsets}.")
    size = min(subset_size, len(features1), len(features2))
    rng = np.random.default_rng(seed)
    estimates = np.array([
        polynomial_mmd2_unbiased(features1[rng.choice(len(features1), size, replace=False)],
                                 features2[rng.choice(len(features2), size, replace=False)],
                                 degree)
        for _ in range(num_subsets)])
    std = float(np.std(estimates, ddof=1)) if num_subsets > 1 else 0.
    return float(np.mean(estimates)), std


def _blocks(num_rows, num_columns):
    rows = max(1, _MAX_BLOCK_ELEMENTS // max(num_columns, 1))
    for start in range(0, num_rows, rows):
        yield slice(start, min(start + rows, num_rows))


def _squared_distances(a, b, b_sq_norms):
    d2 = np.sum(a * a, axis=1)[:, None] + b_sq_norms[None, :] - 2. * (a @ b.T)
    return np.maximum(d2, 0.)


def _knn_squared_radii(features, k):
    """Squared distance of each row to its k-th nearest other row, `[N]`."""
    sq_norms = np.sum(features * features, axis=1)
    radii = np.empty(len(features))
    for block in _blocks(len(features), len(features)):
        d2 = _squared_distances(features[block], features, sq_norms)
        # Each row's own distance 0 is the smallest, so the k-th neighbour is at index k.
        radii[block] = np.partition(d2, k, axis=1)[:, k]
    return radii


def _fraction_inside(points, centers, squared_radii):
    """Fraction of `points` in the union of the balls `B(centers_i, radii_i)`."""
    sq_norms = np.sum(centers * centers, axis=1)
    inside = 0
    for block in _blocks(len(points), len(centers)):
        d2 = _squared_distances(points[block], centers, sq_norms)
        inside += int(np.sum(np.any(d2 <= squared_radii[None, :], axis=1)))
    return inside / len(points)


def precision_recall(real_features, fake_features, k: int = 3) -> Tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of fake vs real features.

    With `NN_k(phi, Phi)` the distance from `phi` to its k-th nearest neighbour in `Phi`
    (itself excluded) and `manifold(Phi) = union_{phi in Phi} B(phi, NN_k(phi, Phi))`,

    ```none
    precision = (1/M) sum_j [phi_g_j in manifold(Phi_r)]
    recall    = (1/N) sum_i [phi_r_i in manifold(Phi_g)]
    ```

    Distances are evaluated in blocks of at most 2^22 pairs (32 MiB), so memory is
    `O(N + M)` beyond the inputs; time is `O((N + M)^2 F)`.

    Args:
        real_features: float array `[N, F]`, `N > k`.
        fake_features: float array `[M, F]`, `M > k`.
        k: neighbourhood size (3, as in the paper).

    Returns:
        `(precision, recall)`, Python floats in [0, 1].

    Example:

    ```python
    precision, recall = precision_recall(net.features(real), net.features(fake))
    ```
    """
    real = _features(real_features, "real_features")
    fake = _features(fake_features, "fake_features")
    if k < 1 or min(len(real), len(fake)) <= k:
        raise ValueError(f"Need k >= 1 and more than k rows in each set; k={k}, "
                         f"{len(real)} real, {len(fake)} fake.")
    precision = _fraction_inside(fake, real, _knn_squared_radii(real, k))
    recall = _fraction_inside(real, fake, _knn_squared_radii(fake, k))
    return precision, recall


def classifier_inception_score(probabilities, splits: int = 10) -> Tuple[float, float]:
    """The inception score `exp(E_x KL(p(y | x) || p(y)))` of a classifier's predictions.

    The `N` rows are cut into `splits` consecutive parts of (nearly) equal size; in each,
    `p(y)` is the mean of the rows and the score is `exp(mean_x KL(p(y | x) || p(y)))`
    (`0 log 0 = 0`). Returns the mean and standard deviation (divisor `splits`, as in Salimans
    et al.'s code) over the parts. It lies in `[1, K]`: 1 when every prediction is the same, `K`
    when predictions are one-hot and the classes balanced within each part.

    Args:
        probabilities: float array `[N, K]`, rows summing to 1 (`p(y | x)` of the samples).
        splits: number of parts (10 in the paper), `1 <= splits <= N`.

    Returns:
        `(mean, std)`, Python floats.

    Example:

    ```python
    score, score_std = classifier_inception_score(net.class_probabilities(fake))
    ```
    """
    p = _features(probabilities, "probabilities")
    if not 1 <= splits <= len(p):
        raise ValueError(f"splits must be in [1, {len(p)}], got {splits}.")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(special.xlogy(part, part) - special.xlogy(part, marginal), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def sample_quality_of_features(real_features, fake_features, fake_probabilities=None,
                               real_probabilities=None, k: int = 3, kid_num_subsets: int = 100,
                               kid_subset_size: int = 1000, inception_score_splits: int = 10,
                               seed: int = 0) -> Dict[str, object]:
    """All metrics of this module from precomputed features (and probabilities).

    Args:
        real_features, fake_features: float arrays `[N, F]`, `[M, F]`.
        fake_probabilities, real_probabilities: optional float arrays `[M, K]`, `[N, K]`: the
            classifier inception score of each set that is given (splits reduced to the number
            of rows when there are fewer).
        k: neighbourhood of precision and recall.
        kid_num_subsets, kid_subset_size: subsets of the kernel distance.
        inception_score_splits: parts of the inception score.
        seed: seed of the kernel distance's subsets.

    Returns:
        A JSON-ready dict with `classifier_fid`, `classifier_kid`, `classifier_kid_std`,
        `classifier_precision`, `classifier_recall`, `classifier_inception_score` and
        `classifier_inception_score_std` (fake probabilities given),
        `classifier_inception_score_real` and `..._real_std` (real probabilities given),
        `num_real`, `num_fake` and `settings` (the arguments above).

    Example:

    ```python
    metrics = sample_quality_of_features(phi_real, phi_fake, p_fake)
    ```
    """
    real_features = _features(real_features, "real_features")
    fake_features = _features(fake_features, "fake_features")
    kid, kid_std = kernel_distance_of_features(real_features, fake_features, kid_num_subsets,
                                               kid_subset_size, seed=seed)
    precision, recall = precision_recall(real_features, fake_features, k)
    metrics = {
        "classifier_fid": frechet_distance_of_features(real_features, fake_features),
        "classifier_kid": kid,
        "classifier_kid_std": kid_std,
        "classifier_precision": precision,
        "classifier_recall": recall,
    }
    for suffix, probabilities in (("", fake_probabilities), ("_real", real_probabilities)):
        if probabilities is not None:
            score, score_std = classifier_inception_score(
                probabilities, min(inception_score_splits, len(probabilities)))
            metrics["classifier_inception_score" + suffix] = score
            metrics["classifier_inception_score" + suffix + "_std"] = score_std
    metrics.update(
        num_real=len(real_features),
        num_fake=len(fake_features),
        settings={"k": k, "kid_num_subsets": kid_num_subsets,
                  "kid_subset_size": min(kid_subset_size, len(real_features),
                                         len(fake_features)),
                  "kid_degree": 3, "inception_score_splits": inception_score_splits,
                  "seed": seed})
    return metrics


def sample_quality(feature_network, real_images, fake_images, k: int = 3,
                   kid_num_subsets: int = 100, kid_subset_size: int = 1000,
                   inception_score_splits: int = 10, seed: int = 0,
                   batch_size: Optional[int] = None) -> Dict[str, object]:
    """Scores generated images against real ones through a trained `FeatureNetwork`.

    Embeds both sets (`feature_network.embed`: penultimate features and class probabilities),
    then `sample_quality_of_features`. The result also holds `feature_network` (a copy of the
    network's `record`: its key, weights' sha256, held-out accuracy, dataset and training
    settings), so every number says which classifier produced it.

    Args:
        feature_network: a `tfdgm.evaluation.feature_network.FeatureNetwork`.
        real_images: float array `[N, H, W, C]` in [0, 1] (a held-out split of the data).
        fake_images: float array `[M, H, W, C]` in [0, 1] (the model's samples).
        k, kid_num_subsets, kid_subset_size, inception_score_splits, seed: see
            `sample_quality_of_features`.
        batch_size: images per forward pass (default: the network's).

    Returns:
        The dict of `sample_quality_of_features` (with the real images' inception score) plus
        `feature_network`.

    Example:

    ```python
    net = load_or_train("mnist", x_train, y_train, x_val, y_val)
    metrics = sample_quality(net, x_test[:10000], model_samples[:10000])
    metrics["classifier_fid"], metrics["classifier_kid"], metrics["classifier_precision"]
    ```
    """
    real_features, real_probabilities = feature_network.embed(real_images, batch_size)
    fake_features, fake_probabilities = feature_network.embed(fake_images, batch_size)
    metrics = sample_quality_of_features(
        real_features, fake_features, fake_probabilities, real_probabilities, k=k,
        kid_num_subsets=kid_num_subsets, kid_subset_size=kid_subset_size,
        inception_score_splits=inception_score_splits, seed=seed)
    metrics["feature_network"] = feature_network.record
    return metrics
