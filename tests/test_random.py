"""`tfdgm.random`: noise from Philox's integer bits, exact on its grid, correctly distributed,
the same with and without XLA, and the same for an example on one device and on two replicas."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfdgm import random as tfdgm_random

SEED = tf.constant([5, 11], tf.int64)
N = 400_000


def test_uniform_lies_on_its_exact_grid_strictly_inside_the_unit_interval():
    for dtype, mantissa in ((tf.float32, 23), (tf.float64, 32)):
        u = tfdgm_random.stateless_uniform([N], SEED, dtype=dtype).numpy().astype(np.float64)
        k = u * 2.0 ** mantissa - 0.5
        np.testing.assert_array_equal(k, np.round(k))          # u = (k + 1/2) 2^-m exactly
        assert 0.0 < u.min() and u.max() < 1.0
        assert np.isfinite(np.log(u)).all() and np.isfinite(np.log1p(-u)).all()
    edges = tfdgm_random.stateless_uniform([N], SEED).numpy()
    assert edges.min() >= 2.0 ** -24 and edges.max() <= 1.0 - 2.0 ** -24


def test_uniform_and_normal_have_their_distributions():
    u = tfdgm_random.stateless_uniform([N], SEED).numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / N)
    z = tfdgm_random.stateless_normal([N], SEED).numpy().astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1.0) < 5 * np.sqrt(2 / N)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / N)
    cosines, sines = z[: N // 2], z[N // 2:]     # the two halves of the Box-Muller pairs
    assert abs(np.corrcoef(cosines, sines)[0, 1]) < 5 / np.sqrt(N // 2)
    assert abs(np.corrcoef(cosines ** 2, sines ** 2)[0, 1]) < 5 / np.sqrt(N // 2)


@pytest.mark.parametrize("shape", [[7], [3, 5], [2, 3, 3, 1]])
def test_shapes_odd_sizes_and_dtypes(shape):
    for dtype in (tf.float32, tf.float64, tf.bfloat16):
        for sampler in (tfdgm_random.stateless_uniform, tfdgm_random.stateless_normal):
            x = sampler(shape, SEED, dtype=dtype)
            assert x.shape == tuple(shape) and x.dtype == dtype
    dynamic = tf.function(lambda s: tfdgm_random.stateless_normal(tf.shape(tf.zeros(s)), SEED),
                          input_signature=[tf.TensorSpec([None], tf.int32)])
    np.testing.assert_array_equal(dynamic(tf.constant(shape)),
                                  tfdgm_random.stateless_normal(shape, SEED))


def test_the_noise_is_the_same_inside_an_xla_cluster():
    for sampler, tolerance in ((tfdgm_random.stateless_uniform, 0.0),
                               (tfdgm_random.stateless_normal, 1e-6)):
        plain = sampler([100, 37], SEED)
        compiled = tf.function(sampler, jit_compile=True)([100, 37], SEED)
        np.testing.assert_allclose(compiled, plain, rtol=tolerance, atol=tolerance)
    assert not np.array_equal(tfdgm_random.stateless_normal([8], SEED),
                              tfdgm_random.stateless_normal([8], SEED + [0, 1]))


def test_two_replicas_draw_the_rows_one_device_draws_for_the_global_batch():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # conftest splits the CPU

    def draw():
        return (tfdgm_random.normal([3, 4, 2], SEED, batch_axis=1),
                tfdgm_random.uniform([4, 5], SEED, batch_axis=0))

    normal, uniform = strategy.run(draw)
    global_normal = tfdgm_random.normal([3, 8, 2], SEED, batch_axis=1)
    global_uniform = tfdgm_random.uniform([8, 5], SEED, batch_axis=0)
    for replica, (local_normal, local_uniform) in enumerate(
            zip(strategy.experimental_local_results(normal),
                strategy.experimental_local_results(uniform))):
        rows = slice(4 * replica, 4 * replica + 4)
        np.testing.assert_array_equal(local_normal, global_normal[:, rows])
        np.testing.assert_array_equal(local_uniform, global_uniform[rows])
