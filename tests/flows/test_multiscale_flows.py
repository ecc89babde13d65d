"""RealNVP and Glow multi-scale flows: exact log-density, round trips, sampling, gradients."""

import numpy as np
import pytest
import tensorflow as tf

from tfdgm.flows import ActNorm, GlowFlow, RealNVPFlow
from tfdgm.testing import bijector_checks as checks

FLOWS = {
    "glow": lambda shape, dtype: GlowFlow(shape, num_levels=2, num_steps=1, hidden_channels=8,
                                          seed=0, dtype=dtype),
    "glow_additive_plain": lambda shape, dtype: GlowFlow(
        shape, num_levels=2, num_steps=1, hidden_channels=8, lu=False, scale="additive",
        learn_top=False, learn_split_priors=False, seed=0, dtype=dtype),
    "realnvp": lambda shape, dtype: RealNVPFlow(shape, num_scales=2, hidden_channels=8,
                                                num_final_couplings=2, dtype=dtype),
    "realnvp_actnorm": lambda shape, dtype: RealNVPFlow(
        shape, num_scales=2, hidden_channels=8, num_final_couplings=2, actnorm=True,
        dtype=dtype),
}


def _randomized_flow(name, shape, dtype="float64", seed=0, stddev=0.15):
    """A built flow, ActNorms initialized, every trainable weight random (none at zero)."""
    rng = np.random.default_rng(seed)
    flow = FLOWS[name](shape, dtype)
    flow(tf.constant(rng.standard_normal((4, *shape)), dtype), training=True)
    for weight in flow.trainable_weights:
        weight.assign(weight.numpy() + stddev * rng.standard_normal(weight.shape))
    return flow


def _flat(tensors):
    return tf.concat([tf.reshape(t, [tf.shape(t)[0], -1]) for t in tensors], axis=-1)


@pytest.mark.parametrize("name, channels", [
    ("glow", 3), ("glow_additive_plain", 1), ("realnvp", 1), ("realnvp_actnorm", 1)])
def test_log_density_against_autodiff_and_round_trips(name, channels):
    shape = (4, 4, channels)
    flow = _randomized_flow(name, shape)
    x = tf.constant(np.random.default_rng(1).standard_normal((2, *shape)))
    log_prior, log_det = flow.log_prob_parts(x)
    assert log_prior.shape == (2,) and log_det.shape == (2,)
    # log p(x) = log N(eps; 0, I) + log|det d eps / dx|, eps the latents standardized by their
    # priors, flattened: this checks log_prob_latents + log_det against autodiff.
    eps = flow.encode_to_noise(x)
    jac_eps = checks.image_jacobian(lambda t: tf.reshape(flow.encode_to_noise(t), t.shape), x)
    expected = (-0.5 * tf.reduce_sum(eps ** 2, -1) - 0.5 * flow.noise_dim * np.log(2. * np.pi)
                + tf.linalg.slogdet(jac_eps)[1])
    np.testing.assert_allclose(flow.log_prob(x).numpy(), expected.numpy(), atol=1e-9)
    # log_det alone: log|det| of x -> (z_1, ..., z_L), the raw latents (eps itself where the
    # priors are standard normal).
    if flow.split_priors or flow.top_prior is not None:
        jac_z = checks.image_jacobian(lambda t: tf.reshape(_flat(flow.encode(t)), t.shape), x)
    else:
        np.testing.assert_array_equal(eps.numpy(), _flat(flow.encode(x)).numpy())
        jac_z = jac_eps
    np.testing.assert_allclose(log_det.numpy(), tf.linalg.slogdet(jac_z)[1].numpy(), atol=1e-9)
    assert np.all(np.abs(log_det.numpy()) > 1e-2)
    assert eps.shape == (2, flow.noise_dim) and flow.noise_dim == 16 * channels
    zs = flow.encode(x)
    assert [tuple(z.shape[1:]) for z in zs] == flow.latent_shapes
    np.testing.assert_allclose(flow.decode([checks.fresh(z) for z in zs]).numpy(), x.numpy(),
                               atol=1e-10)
    np.testing.assert_allclose(flow.sample_from_noise(checks.fresh(eps)).numpy(), x.numpy(),
                               atol=1e-10)


@pytest.mark.parametrize("name", ["glow", "realnvp"])
def test_float32_round_trip(name):
    flow = _randomized_flow(name, (4, 4, 3), dtype="float32", stddev=0.05)
    x = tf.constant(np.random.default_rng(2).standard_normal((3, 4, 4, 3)), tf.float32)
    np.testing.assert_allclose(flow.decode(flow.encode(x)).numpy(), x.numpy(), atol=1e-5)
    np.testing.assert_allclose(flow.sample_from_noise(flow.encode_to_noise(x)).numpy(),
                               x.numpy(), atol=1e-5)


def test_glow_temperature_scales_the_noise_of_every_prior():
    flow = _randomized_flow("glow", (4, 4, 3))
    eps = tf.constant(np.random.default_rng(3).standard_normal((2, flow.noise_dim)))
    samples = flow.sample_from_noise(eps, temperature=0.5)
    # Every latent is mean + std * T * eps, so standardizing the sample gives back T * eps.
    np.testing.assert_allclose(flow.encode_to_noise(samples).numpy(), 0.5 * eps.numpy(),
                               atol=1e-9)
    # The learned priors matter: the same noise through N(0, I) priors gives another image.
    zs = [tf.reshape(0.5 * e, [2, *s]) for e, s in zip(
        tf.split(eps, [int(np.prod(s)) for s in flow.latent_shapes], axis=-1),
        flow.latent_shapes)]
    assert not np.allclose(flow.decode(zs).numpy(), samples.numpy(), atol=1e-3)


def test_glow_starts_with_standard_normal_priors_and_identity_couplings():
    flow = GlowFlow((4, 4, 3), num_levels=2, num_steps=2, hidden_channels=8, seed=0,
                    dtype="float64")  # K = 2: the second step's ActNorm sees the first's output
    x = tf.constant(np.random.default_rng(4).standard_normal((2, 4, 4, 3)))
    log_prior, log_det = flow(x)  # not training: ActNorms stay the identity
    eps = flow.encode_to_noise(x)
    np.testing.assert_allclose(eps.numpy(), _flat(flow.encode(x)).numpy(), atol=0.)
    # 1x1 convs are rotations, couplings scale by sigmoid(2): log_det is that constant.
    # Per step, the coupling scales half the channels: 2 x 2 x 6 = 24 elements at level 1,
    # 1 x 1 x 12 at level 2 (after the split and a squeeze); K = 2 steps per level.
    expected = 2 * (24 + 12) * np.log(1. / (1. + np.exp(-2.)))
    np.testing.assert_allclose(log_det.numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(log_prior.numpy(), -0.5 * np.sum(eps.numpy() ** 2, -1)
                               - 24. * np.log(2. * np.pi), atol=1e-10)


@pytest.mark.parametrize("name", ["glow", "realnvp_actnorm"])
def test_every_trainable_weight_gets_a_gradient(name):
    flow = _randomized_flow(name, (4, 4, 3), seed=5)
    x = tf.constant(np.random.default_rng(6).standard_normal((2, 4, 4, 3)))
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(flow.log_prob(x, training=True))
    grads = tape.gradient(loss, flow.trainable_weights)
    assert len(flow.trainable_weights) > 20
    for weight, grad in zip(flow.trainable_weights, grads):
        assert grad is not None and np.any(grad.numpy() != 0.), weight.path
    if name == "glow":  # P, sign of the LU convs and the ActNorm flags
        assert len(flow.non_trainable_weights) == 2 * 3  # 2 steps (K = 1, L = 2)
        assert all(w.name in ("permutation", "sign", "initialized")
                   for w in flow.non_trainable_weights)


def test_frozen_sampler_is_builtin_only_and_unchanged():
    flow = _randomized_flow("glow", (4, 4, 3))
    eps = tf.constant(np.random.default_rng(7).standard_normal((2, flow.noise_dim)))
    expected = flow.sample_from_noise(eps, 0.7).numpy()
    flow.freeze_inverses()
    spec = tf.TensorSpec([None, flow.noise_dim], tf.float64)
    sampler = tf.function(lambda e: flow.sample_from_noise(e, 0.7))
    ops = {op.type for op in sampler.get_concrete_function(spec).graph.get_operations()}
    assert not ops & {"MatrixInverse", "MatrixTriangularSolve", "LogMatrixDeterminant",
                      "StatelessRandomNormalV2", "RandomStandardNormal"}
    np.testing.assert_allclose(sampler(eps).numpy(), expected, atol=1e-10)
    flow.unfreeze_inverses()


def test_bad_shapes_and_config_round_trip():
    with pytest.raises(ValueError, match="divisible"):
        GlowFlow((6, 4, 3), num_levels=2)
    with pytest.raises(ValueError, match="divisible"):
        RealNVPFlow((6, 6, 1), num_scales=3)
    flow = FLOWS["glow"]((4, 4, 3), "float64")
    with pytest.raises(ValueError, match="created for images of shape"):
        flow(tf.zeros([1, 8, 8, 3], tf.float64))
    clone = GlowFlow.from_config(flow.get_config())
    assert clone.latent_shapes == flow.latent_shapes == [(2, 2, 6), (1, 1, 24)]
    assert RealNVPFlow.from_config(FLOWS["realnvp"]((4, 4, 3), "float64").get_config()
                                   ).latent_shapes == [(2, 2, 6), (2, 2, 6)]
    assert isinstance(flow.flow_layers[1].actnorm, ActNorm)
