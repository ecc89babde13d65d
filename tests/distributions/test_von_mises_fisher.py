"""Tests of the reparameterized von Mises-Fisher distribution (tfdgm.distributions).

Monte Carlo checks use fixed stateless seeds (deterministic) and tolerances of a few standard
errors estimated from the same samples. Precision checks run in float64; the stability grid runs
in both dtypes.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special

from tfdgm.distributions import SphericalUniform, VonMisesFisher, bessel
from tfdgm.distributions import von_mises_fisher as vmf_lib

tfd = tfp.distributions

KAPPA_GRID = [1e-3, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4]
DIM_GRID = [3, 16, 64, 256]


def _mean_directions(m, batch, dtype=tf.float64, seed=0):
    """`[batch, m]` unit vectors with first coordinates of both signs (both Householder sides)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(batch, m))
    mu[::2, 0] = np.abs(mu[::2, 0]) + 0.5
    mu[1::2, 0] = -np.abs(mu[1::2, 0]) - 0.5
    return tf.constant(mu / np.linalg.norm(mu, axis=-1, keepdims=True), dtype)


def _numpy(fn):
    """Runs `fn()` eagerly and returns its outputs as NumPy arrays (tracing a one-shot
    `tf.function` around the sampler and its gradients costs more than running it op by op)."""
    return tf.nest.map_structure(lambda t: t.numpy(), fn())


def _ratio(m, kappa):
    """Reference `A_m(kappa)` (float64): SciPy's scaled Bessel functions, or the ratio of the
    `0F1` series where those underflow (small kappa, large m)."""
    kappa = np.asarray(kappa, np.float64)
    with np.errstate(all="ignore"):
        direct = special.ive(m / 2, kappa) / special.ive(m / 2 - 1, kappa)
    x = kappa ** 2 / 4
    top = bottom = term_top = term_bottom = np.ones_like(kappa)
    for j in range(1, 30):
        term_top = term_top * x / (j * (m / 2 + j))
        term_bottom = term_bottom * x / (j * (m / 2 - 1 + j))
        top, bottom = top + term_top, bottom + term_bottom
    series = kappa / m * top / bottom
    return np.where(np.isfinite(direct) & (kappa > 1.0), direct, series)


def _graded_theta_rule(levels=30, nodes=8, panels=256):
    """Gauss-Legendre nodes/weights on [0, pi] for the angle to `mu`: panels graded towards 0 up
    to pi / 256, then 255 panels of width pi / 256 (the density of the angle has width
    ~1 / sqrt(2 kappa) = 0.007 at kappa = 1e4)."""
    x, wx = np.polynomial.legendre.leggauss(nodes)
    breaks = ([0.0] + [math.pi / panels * 2.0 ** -j for j in range(levels - 1, -1, -1)]
              + [math.pi * j / panels for j in range(2, panels + 1)])
    theta, weights = [], []
    for lo, hi in zip(breaks[:-1], breaks[1:]):
        theta.append(lo + 0.5 * (hi - lo) * (x + 1.0))
        weights.append(0.5 * (hi - lo) * wx)
    return np.concatenate(theta), np.concatenate(weights)


def _log_density_of_angle(dist, theta):
    """`log p(theta)` of the angle between `z` and `mu`, from `dist.log_prob` (batch `[B]`).

    `z = cos(theta) mu + sin(theta) e` with `e` a unit tangent vector; the density of `theta` is
    `q(z) |S^{m-2}| sin(theta)^{m-2}`.
    """
    m = dist.event_dim
    mu = tf.convert_to_tensor(dist.mean_direction)  # [B, m]
    tangent = vmf_lib._householder_tangent(mu, tf.one_hot(0, m - 1, dtype=mu.dtype))  # [B, m]
    theta = tf.constant(theta, mu.dtype)[:, tf.newaxis, tf.newaxis]  # [T, 1, 1]
    z = tf.cos(theta) * mu + tf.sin(theta) * tangent  # [T, B, m]
    log_q = dist.log_prob(z)  # [T, B]
    log_area = bessel.log_sphere_surface_area(m - 1, mu.dtype)
    return log_q + log_area + (m - 2) * tf.math.log(tf.sin(theta[..., 0]))


# ------------------------------------------------------------------------------------------------
# Sampling: shapes, graph mode, seeds


def test_sample_shapes_unit_norm_graph_mode_and_seeds():
    mu = _mean_directions(5, 3, tf.float32)
    kappa = tf.constant([0.5, 20.0, 3000.0], tf.float32)
    dist = VonMisesFisher(mu, kappa)
    assert dist.batch_shape == [3] and dist.event_shape == [5]
    assert dist.reparameterization_type == tfd.FULLY_REPARAMETERIZED

    @tf.function
    def draw(seed):
        return VonMisesFisher(mu, kappa).sample(7, seed=seed)

    z = draw(tf.constant([1, 2], tf.int32))
    assert draw.experimental_get_tracing_count() == 1
    assert z.shape == [7, 3, 5] and z.dtype == tf.float32
    np.testing.assert_allclose(tf.norm(z, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(z, draw(tf.constant([1, 2], tf.int32)))
    assert not np.allclose(z, draw(tf.constant([1, 3], tf.int32)))
    # int64 seeds (tfdgm.random.step_seed) are accepted and deterministic.
    z64 = dist.sample(7, seed=tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(z64, dist.sample(7, seed=tf.constant([1, 2], tf.int64)))
    # Sample shape [S1, S2] and a concentration broadcast against a batch of directions.
    dist = VonMisesFisher(_mean_directions(4, 2, tf.float32), tf.constant(2.0))
    assert dist.sample([2, 3], seed=[3, 4]).shape == [2, 3, 2, 4]


def test_sample_and_gradients_compile_with_xla():
    """Keras 3 compiles `train_step` with XLA by default (`jit_compile="auto"`)."""
    mu = _mean_directions(4, 2, tf.float32)

    @tf.function(jit_compile=True)
    def step(kappa, seed):
        with tf.GradientTape() as tape:
            tape.watch(kappa)
            dist = VonMisesFisher(mu, kappa)
            z = dist.sample(3, seed=seed)
            loss = tf.reduce_sum(tf.sin(z)) + tf.reduce_sum(
                tfd.kl_divergence(dist, SphericalUniform(dimension=4)))
        return z, tape.gradient(loss, kappa)

    z, gradient = step(tf.constant([2.0, 200.0]), tf.constant([1, 2]))
    assert z.shape == [3, 2, 4]
    np.testing.assert_allclose(tf.norm(z, axis=-1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(gradient.numpy()))


def test_mean_resultant_length_matches_monte_carlo():
    n = 20000
    for m, kappas in [(3, [0.1, 1.0, 100.0]), (5, [0.1, 10.0]), (10, [1.0, 100.0]),
                      (64, [0.1, 10.0, 100.0])]:
        mu = _mean_directions(m, len(kappas))
        dist = VonMisesFisher(mu, tf.constant(kappas, tf.float64))
        z, ratio, mean = _numpy(
            lambda: (dist.sample(n, seed=[11, m]), dist.mean_resultant_length(), dist.mean()))
        w = np.sum(z * mu.numpy(), axis=-1)  # [n, B]
        stderr = w.std(axis=0) / math.sqrt(n)
        expected = _ratio(m, np.array(kappas))
        np.testing.assert_allclose(ratio, expected, rtol=1e-10)
        assert np.all(np.abs(w.mean(axis=0) - expected) < 4.5 * stderr + 1e-12), (m, kappas)
        # The whole mean vector E[z] = A_m(kappa) mu.
        np.testing.assert_allclose(z.mean(axis=0), mean, atol=4.5 * np.sqrt(1.0 / (m * n)) + 1e-9)


def test_covariance_matches_monte_carlo():
    mu = _mean_directions(4, 1)
    dist = VonMisesFisher(mu, tf.constant([3.0], tf.float64))
    z, covariance, variance = _numpy(
        lambda: (dist.sample(20000, seed=[5, 6]), dist.covariance(), dist.variance()))
    np.testing.assert_allclose(np.cov(z[:, 0], rowvar=False), covariance[0], atol=0.01)
    np.testing.assert_allclose(variance, np.diagonal(covariance, axis1=-2, axis2=-1))


# ------------------------------------------------------------------------------------------------
# The reparameterization gradient with respect to kappa (the key test)


# (m, kappa) where dropping the implicit gradient's correct form (Wood's proposal differentiated
# with the accepted draw fixed, i.e. the Naesseth et al. estimator without its correction term)
# is biased by 8-20%, while the Monte Carlo error of 10000 samples is ~1%.
KEY_CASES = [(3, 1.0), (3, 0.1), (3, 100.0), (5, 10.0), (10, 10.0), (64, 1.0), (64, 100.0)]


def test_reparameterization_gradient_wrt_kappa_matches_analytic():
    """d/dkappa of the Monte Carlo E[mu^T z] equals A_m'(kappa) = 1 - A^2 - (m-1) A / kappa."""
    n = 10000
    for m in sorted({m for m, _ in KEY_CASES}):
        kappas = [k for mm, k in KEY_CASES if mm == m]
        mu = _mean_directions(m, len(kappas))
        kappa = tf.constant(kappas, tf.float64)
        # One distribution per sample ([n, B] batch), so that one backward pass gives each
        # sample's pathwise derivative dw/dkappa (for the Monte Carlo standard error).

        def gradients():
            kappa_per_sample = tf.broadcast_to(kappa, [n, len(kappas)])
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(kappa_per_sample)
                z = VonMisesFisher(mu, kappa_per_sample).sample(seed=[21, m])  # [n, B, m]
                w = tf.reduce_sum(z * mu, axis=-1)  # [n, B]
                # Naive reparameterization through Wood's proposal w = h(eps, b(kappa)) with the
                # accepted eps fixed.
                b = (m - 1.0) / (2.0 * kappa_per_sample
                                 + tf.sqrt(4.0 * kappa_per_sample ** 2 + (m - 1.0) ** 2))
                one_minus_w = tf.stop_gradient(1.0 - w)
                eps = tf.stop_gradient(one_minus_w / (2.0 * b + (1.0 - b) * one_minus_w))
                naive_w = (1.0 - (1.0 + b) * eps) / (1.0 - (1.0 - b) * eps)
                # And a sampler with no path from kappa to w at all.
                frozen_w = tf.stop_gradient(w)
            return (tape.gradient(w, kappa_per_sample),  # dw/dkappa of each sample, [n, B]
                    tape.gradient(naive_w, kappa_per_sample),
                    tape.gradient(frozen_w, kappa_per_sample, unconnected_gradients="zero"),
                    bessel.mean_resultant_length_derivative(m, kappa))

        per_sample, naive_per_sample, frozen_per_sample, derivative = _numpy(gradients)
        gradient = per_sample.mean(axis=0)  # = d/dkappa of the Monte Carlo mean of w
        naive_gradient = naive_per_sample.mean(axis=0)
        frozen_gradient = frozen_per_sample.mean(axis=0)

        a = _ratio(m, np.array(kappas))
        analytic = 1.0 - a ** 2 - (m - 1.0) / np.array(kappas) * a
        np.testing.assert_allclose(derivative, analytic, rtol=1e-8)
        stderr = per_sample.std(axis=0) / math.sqrt(n)
        assert np.all(stderr < 0.015 * analytic), (m, kappas, stderr / analytic)
        assert np.all(np.abs(gradient - analytic) < 4.0 * stderr), (m, kappas, gradient, analytic)
        # The test can tell a biased estimator: these are clearly different.
        assert np.all(np.abs(frozen_gradient - analytic) > 0.99 * analytic)
        for kappa_value, est, ref, err in zip(kappas, naive_gradient, analytic, stderr):
            if (m, kappa_value) in [(3, 1.0), (5, 10.0), (10, 10.0)]:
                assert abs(est - ref) > 0.05 * ref and abs(est - ref) > 8.0 * err, (m, kappa_value)

    # Through `sample(n)` of a [B] batch the gradient is the same sum over samples.
    m, kappa = 5, tf.constant([10.0, 0.5], tf.float64)
    mu = _mean_directions(m, 2)

    def gradient_and_expected():
        with tf.GradientTape() as tape:
            tape.watch(kappa)
            w = tf.reduce_sum(VonMisesFisher(mu, kappa).sample(200, seed=[22, 23]) * mu, axis=-1)
        expected = vmf_lib.vmf_angle_dw_dkappa(m, kappa, 1.0 - w, 1.0 + w)
        return tape.gradient(w, kappa), tf.reduce_sum(expected, axis=0)

    gradient, expected = _numpy(gradient_and_expected)
    np.testing.assert_allclose(gradient, expected, rtol=1e-10)


def test_implicit_gradient_matches_adaptive_quadrature():
    """dw/dkappa = -(dF/dkappa) / p(w), against SciPy's adaptive quadrature of the definition."""
    from scipy import integrate

    for m, kappa in [(3, 5.0), (4, 50.0), (16, 0.3), (64, 500.0)]:
        nu = (m - 3) / 2
        a = _ratio(m, kappa)
        w = np.array([a - 0.3 * (1 - a), a - 0.01 * (1 - a), a + 0.2 * (1 - a), a + 0.6 * (1 - a)])
        w = np.clip(w, -0.99, 0.999)

        def log_p(t, w0):
            return kappa * (t - w0) + nu * (np.log1p(-t * t) - np.log1p(-w0 * w0))

        expected = []
        for w0 in w:
            value, _ = integrate.quad(lambda t: (t - a) * np.exp(log_p(t, w0)), -1.0, w0,
                                      epsabs=0.0, epsrel=1e-11, limit=200)
            expected.append(-value)
        ours = _numpy(lambda: vmf_lib.vmf_angle_dw_dkappa(
            m, tf.constant(kappa, tf.float64), tf.constant(1.0 - w), tf.constant(1.0 + w)))
        np.testing.assert_allclose(ours, expected, rtol=1e-7)


def test_gradient_wrt_mean_direction_matches_analytic():
    """grad of the Monte Carlo E[c^T z], z ~ vMF(normalize(h), kappa), equals that of A c^T mu."""
    m, n = 5, 20000
    h = tf.Variable(tf.constant([[1.0, 0.5, -0.3, 0.2, 0.1], [-0.7, 0.2, 0.6, -0.4, 0.3]],
                                tf.float64))
    kappa = tf.constant([3.0, 30.0], tf.float64)
    c = tf.constant([0.3, -1.0, 0.5, 0.8, -0.2], tf.float64)

    @tf.function(autograph=False)
    def pathwise_gradient(seed, num_samples):
        """grad_h of the Monte Carlo mean of c^T z, and of the analytic A_m c^T mu."""
        with tf.GradientTape(persistent=True) as tape:
            mu = tf.math.l2_normalize(h, axis=-1)
            z = VonMisesFisher(mu, kappa).sample(num_samples, seed=seed)
            estimate = tf.reduce_sum(tf.reduce_mean(tf.reduce_sum(z * c, axis=-1), axis=0))
            analytic = tf.reduce_sum(bessel.mean_resultant_length(m, kappa)
                                     * tf.reduce_sum(mu * c, axis=-1))
        return tape.gradient(estimate, h), tape.gradient(analytic, h)

    # 20 independent batches of the pathwise estimator give its error bars.
    chunks = [pathwise_gradient(tf.constant([33, i]), n // 20) for i in range(20)]
    per_chunk = np.stack([grad.numpy() for grad, _ in chunks])
    expected = chunks[0][1].numpy()
    stderr = per_chunk.std(axis=0) / math.sqrt(len(per_chunk))
    assert np.all(np.abs(per_chunk.mean(axis=0) - expected) < 4.5 * stderr + 1e-6)
    assert stderr.max() < 0.01

    # Unconstrained mu as well: grad_mu E[c^T z] = A_m(kappa) c in every direction.
    mu = tf.Variable(tf.math.l2_normalize(h, axis=-1))

    def unconstrained():
        with tf.GradientTape() as tape:
            z = VonMisesFisher(mu, kappa).sample(n, seed=[34, 35])
            estimate = tf.reduce_sum(tf.reduce_mean(tf.reduce_sum(z * c, axis=-1), axis=0))
        return (tape.gradient(estimate, mu),
                bessel.mean_resultant_length(m, kappa)[:, tf.newaxis] * c)

    gradient, expected = _numpy(unconstrained)
    np.testing.assert_allclose(gradient, expected, atol=0.03)


# ------------------------------------------------------------------------------------------------
# log_prob: normalization and agreement with the samples


@pytest.mark.parametrize("m", [2, 3, 4, 16, 64, 256])
def test_log_prob_integrates_to_one(m):
    """Quadrature over the angle to mu: int q(z) dz = 1 for kappa over seven decades."""
    kappas = [1e-3, 0.1, 1.0, 10.0, 1e3, 1e4]
    dist = VonMisesFisher(_mean_directions(m, len(kappas)), tf.constant(kappas, tf.float64))
    theta, weights = _graded_theta_rule()
    density = np.exp(_numpy(lambda: _log_density_of_angle(dist, theta)))  # [T, B]
    np.testing.assert_allclose(weights @ density, 1.0, rtol=1e-9)


def test_log_prob_normalized_monte_carlo_against_uniform():
    """Importance sampling from the uniform sphere: |S^{m-1}| E_U[q(z)] = 1 (small m)."""
    n = 40000
    for m in [3, 5]:
        kappas = [0.5, 2.0, 5.0]
        dist = VonMisesFisher(_mean_directions(m, len(kappas)), tf.constant(kappas, tf.float64))
        uniform = SphericalUniform(dimension=m, batch_shape=[len(kappas)], dtype=tf.float64)

        def density_ratio():
            z = uniform.sample(n, seed=[41, m])
            return tf.exp(dist.log_prob(z) - uniform.log_prob(z))  # [n, B]

        ratio = _numpy(density_ratio)
        stderr = ratio.std(axis=0) / math.sqrt(n)
        assert np.all(np.abs(ratio.mean(axis=0) - 1.0) < 4.5 * stderr), (m, ratio.mean(axis=0))


@pytest.mark.parametrize("m,kappa", [(3, 2.0), (10, 20.0), (64, 50.0), (4, 1e3)])
def test_samples_agree_with_log_prob(m, kappa):
    """The angle to mu: bin frequencies of samples vs bin masses integrated from log_prob."""
    n, bins = 20000, 10
    dist = VonMisesFisher(_mean_directions(m, 1), tf.constant([kappa], tf.float64))
    z = _numpy(lambda: dist.sample(n, seed=[51, m]))
    cosine = np.sum(z * dist.mean_direction.numpy(), axis=-1)[:, 0]
    theta_samples = np.arccos(np.clip(cosine, -1.0, 1.0))
    edges = np.quantile(theta_samples, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = 0.0, math.pi
    # Bin masses: 64-point Gauss-Legendre on each bin of the density of the angle.
    x, wx = np.polynomial.legendre.leggauss(64)
    lo, hi = edges[:-1, np.newaxis], edges[1:, np.newaxis]
    theta = lo + 0.5 * (hi - lo) * (x + 1.0)  # [bins, 64]
    log_density = _numpy(lambda: _log_density_of_angle(dist, theta.ravel()))[:, 0]
    masses = np.sum(0.5 * (hi - lo) * wx * np.exp(log_density).reshape(theta.shape), axis=-1)
    np.testing.assert_allclose(masses.sum(), 1.0, rtol=1e-6)
    frequencies = np.histogram(theta_samples, edges)[0] / n
    stderr = np.sqrt(masses * (1.0 - masses) / n)
    assert np.all(np.abs(frequencies - masses) < 4.5 * stderr), (frequencies, masses)


# ------------------------------------------------------------------------------------------------
# Entropy and KL to the uniform distribution


def test_kl_and_entropy_match_monte_carlo_and_closed_form():
    n = 20000
    for m in [3, 10, 64]:
        kappas = np.array([0.1, 2.0, 50.0, 1000.0])
        dist = VonMisesFisher(_mean_directions(m, len(kappas)), tf.constant(kappas, tf.float64))
        uniform = SphericalUniform(dimension=m, dtype=tf.float64)

        def statistics():
            z = dist.sample(n, seed=[61, m])
            return (tfd.kl_divergence(dist, uniform), dist.log_normalization(), dist.entropy(),
                    dist.log_prob(z) - uniform.log_prob(z))

        kl, log_normalization, entropy, log_ratio = _numpy(statistics)
        # Closed form of the lecture: kappa A + log C + log |S^{m-1}|.
        log_c = ((m / 2 - 1) * np.log(kappas) - m / 2 * np.log(2 * np.pi)
                 - (np.log(special.ive(m / 2 - 1, kappas)) + kappas))
        log_area = np.log(2.0) + m / 2 * np.log(np.pi) - special.gammaln(m / 2)
        expected = kappas * _ratio(m, kappas) + log_c + log_area
        np.testing.assert_allclose(kl, expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(log_normalization, log_c, rtol=1e-12)
        np.testing.assert_allclose(entropy, log_area - kl, rtol=1e-12)
        # Monte Carlo: E_q[log q(z) - log U(z)].
        stderr = log_ratio.std(axis=0) / math.sqrt(n)
        assert np.all(np.abs(log_ratio.mean(axis=0) - kl) < 4.5 * stderr + 1e-9), m
    # Small kappa: KL ~ kappa^2 / (2m) keeps its relative precision in float32 too.
    for dtype in [tf.float32, tf.float64]:
        kl = _numpy(lambda: bessel.vmf_kl_to_uniform(256, tf.constant([1e-3, 1e-1], dtype)))
        np.testing.assert_allclose(kl, np.array([1e-6, 1e-2]) / 512, rtol=1e-3)


def test_kl_requires_matching_dimensions():
    dist = VonMisesFisher(_mean_directions(4, 2), tf.constant([1.0, 2.0], tf.float64))
    with pytest.raises(ValueError, match="same dimension"):
        tfd.kl_divergence(dist, SphericalUniform(dimension=5, dtype=tf.float64))
    assert tfd.kl_divergence(
        dist, SphericalUniform(dimension=4, batch_shape=[2], dtype=tf.float64)).shape == [2]


# ------------------------------------------------------------------------------------------------
# Numerical stability over kappa in [1e-3, 1e4] and m in [3, 256]


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_stability_grid(dtype):
    names = ["log_prob", "fixed_log_prob", "entropy", "kl", "mean", "downstream"]
    for m in DIM_GRID:
        kappa = tf.constant(KAPPA_GRID, dtype)
        mu = tf.Variable(_mean_directions(m, len(KAPPA_GRID), dtype))

        def values_and_gradients():
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(kappa)
                dist = VonMisesFisher(mu, kappa)
                z = dist.sample(8, seed=[71, m])
                values = dict(
                    z=z,
                    log_prob=dist.log_prob(z),
                    fixed_log_prob=dist.log_prob(tf.stop_gradient(z)),
                    entropy=dist.entropy(),
                    kl=tfd.kl_divergence(dist, SphericalUniform(dimension=m, dtype=dtype)),
                    mean=dist.mean(),
                    downstream=tf.reduce_sum(tf.sin(3.0 * z)))
                # One backward pass for all: a sum of gradients is finite only if each one is.
                total = tf.add_n([tf.reduce_sum(values[name]) for name in names])
            gradients = dict(total=tape.gradient(total, [kappa, mu]),
                             kl=tape.gradient(values["kl"], kappa))
            return values, gradients

        values, gradients = _numpy(values_and_gradients)
        for name, value in values.items():
            assert value.dtype == dtype.as_numpy_dtype
            assert np.all(np.isfinite(value)), (m, name, value)
        np.testing.assert_allclose(np.linalg.norm(values["z"], axis=-1), 1.0,
                                   atol=1e-5 if dtype == tf.float32 else 1e-12)
        kl = values["kl"]
        assert np.all(kl >= 0.0) and np.all(np.diff(kl) > 0.0), kl  # KL grows with kappa
        grad_kappa, grad_mu = gradients["total"]
        assert np.all(np.isfinite(grad_kappa)), (m, grad_kappa)
        assert np.all(np.isfinite(grad_mu)), (m, grad_mu)
        # d KL / d kappa = kappa A_m'(kappa) > 0, accurate even where 1 - A^2 - ... cancels.
        a = _ratio(m, np.array(KAPPA_GRID))
        expected = np.array(KAPPA_GRID) * (1.0 - a ** 2 - (m - 1.0) / np.array(KAPPA_GRID) * a)
        np.testing.assert_allclose(gradients["kl"], expected,
                                   rtol=1e-4 if dtype == tf.float32 else 1e-7)


def test_uniform_limit_at_zero_concentration():
    m = 6
    dist = VonMisesFisher(_mean_directions(m, 1), tf.constant([0.0], tf.float64))
    uniform = SphericalUniform(dimension=m, dtype=tf.float64)

    def statistics():
        z = dist.sample(5, seed=[81, 82])
        return (dist.log_prob(z), uniform.log_prob(z), tfd.kl_divergence(dist, uniform),
                dist.mean())

    log_prob, uniform_log_prob, kl, mean = _numpy(statistics)
    np.testing.assert_allclose(log_prob, uniform_log_prob, rtol=1e-12)
    np.testing.assert_allclose(kl, 0.0, atol=1e-15)
    np.testing.assert_allclose(mean, 0.0, atol=1e-15)


# ------------------------------------------------------------------------------------------------
# TFP's Power Spherical distribution, the alternative posterior (De Cao & Aziz, 2020)


def test_tfp_power_spherical_is_reparameterized_with_kl_to_uniform():
    m, n = 10, 20000
    mu = _mean_directions(m, 2)
    kappa = tf.constant([2.0, 20.0], tf.float64)
    assert tfd.PowerSpherical(mu, kappa).reparameterization_type == tfd.FULLY_REPARAMETERIZED

    def gradient_and_kl():
        with tf.GradientTape() as tape:
            tape.watch(kappa)
            dist = tfd.PowerSpherical(mu, kappa)
            w = tf.reduce_mean(tf.reduce_sum(dist.sample(n, seed=[91, 92]) * mu, axis=-1), axis=0)
        kl = tfd.kl_divergence(dist, tfd.SphericalUniform(dimension=m, dtype=tf.float64))
        return tape.gradient(w, kappa), kl

    gradient, kl = _numpy(gradient_and_kl)
    # E[mu^T z] = kappa / (kappa + m - 1) for the Power Spherical distribution.
    expected_gradient = (m - 1.0) / (kappa.numpy() + m - 1.0) ** 2
    np.testing.assert_allclose(gradient, expected_gradient, rtol=0.05)
    assert np.all(np.isfinite(kl)) and np.all(kl > 0.0)
