"""Flow posteriors: exact log q(z_K | x) against autodiff Jacobians, gradients, training, encode,
export, saving and config errors.

The density check is independent of the bijectors' log-det formulas: in float64, `z_K` is
recomputed as a function of `z_0` with the flow parameters held fixed, and
`log q(z_K | x) = log N(z_0; mu, sigma^2) - log|det dz_K/dz_0|` is evaluated with
`tape.batch_jacobian` and `slogdet`.
"""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm import experiment
from tfdgm import export
from tfdgm.errors import ConfigError
from tfdgm.registry import POSTERIORS
from tfdgm.testing.models import random_images, small_vae

tfd = tfp.distributions
SEED = tf.constant([3, 4], tf.int64)

# Small but non-trivial settings of every registered flow posterior (D = 3 or 4).
FLOWS = {
    "planar": {"num_flows": 3},
    "radial": {"num_flows": 3},
    "householder": {"num_flows": 2, "num_reflections": 2},
    "sylvester_orthogonal": {"num_flows": 2, "bottleneck": 2},
    "sylvester_householder": {"num_flows": 2, "num_reflections": 2},
    "sylvester_triangular": {"num_flows": 3},
    "iaf": {"num_flows": 2, "hidden_units": [8, 8]},
}
VOLUME_PRESERVING = {"householder"}


def options(name, amortized):
    """`FLOWS[name]` with the amortization switch (IAF's is `context`)."""
    return {**FLOWS[name], ("context" if name == "iaf" else "amortized"): amortized}


CASES = [pytest.param(name, amortized, id=f"{name}-{'amortized' if amortized else 'global'}")
         for name in FLOWS for amortized in (True, False)]


def test_every_flow_posterior_is_registered():
    assert set(FLOWS) <= set(POSTERIORS.names())


@pytest.fixture
def float64():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("name, amortized", CASES)
def test_log_q_is_base_density_minus_autodiff_log_det(float64, name, amortized):
    num_samples, batch, dim = 3, 2, 3
    posterior = POSTERIORS.build({"name": name, **options(name, amortized)}, "posterior",
                                 latent_dim=dim)
    h = 0.5 * tf.random.stateless_normal([batch, 5], [5, 6], dtype=tf.float64)
    posterior(h, num_samples=1, seed=SEED)  # builds the weights
    rng = np.random.default_rng(0)
    for weight in posterior.trainable_weights:  # move every parameter off its initialization
        value = np.asarray(weight)
        weight.assign(value + 0.3 * rng.standard_normal(value.shape))
    assert posterior.compute_dtype == "float64"

    q = posterior(h, num_samples=num_samples, seed=SEED)
    assert q.z.shape == (num_samples, batch, dim) and q.z.dtype == tf.float64
    assert q.log_q.shape == (num_samples, batch) and q.kl_per_dim is None

    # z_0 is the base posterior's sample for the same seed; z_K a function of it alone.
    z0 = posterior.base(h, num_samples=num_samples, seed=SEED).z
    loc, scale = posterior.base.loc_and_scale(h)
    z0_flat = tf.reshape(z0, [num_samples * batch, dim])
    with tf.GradientTape() as tape:
        tape.watch(z0_flat)
        z_k, _ = posterior.transform(tf.reshape(z0_flat, [num_samples, batch, dim]), h)
        z_k_flat = tf.reshape(z_k, [num_samples * batch, dim])
    jacobian = tape.batch_jacobian(z_k_flat, z0_flat)  # [S B, D, D]
    _, log_abs_det = tf.linalg.slogdet(jacobian)
    log_abs_det = tf.reshape(log_abs_det, [num_samples, batch])
    expected = tfd.MultivariateNormalDiag(loc, scale).log_prob(z0) - log_abs_det

    np.testing.assert_allclose(q.z, z_k, rtol=1e-10, atol=1e-10)
    # 1e-7, not 1e-12: the Sylvester log-det carries a float32 log(2) (`_log_cosh` in
    # tfdgm/bijectors/sylvester.py), ~2e-9 per dimension and step.
    np.testing.assert_allclose(q.log_q, expected, rtol=0, atol=1e-7)
    # The flow is not the identity.
    assert np.max(np.abs(z_k - z0)) > 1e-2
    if name not in VOLUME_PRESERVING:
        assert np.max(np.abs(log_abs_det)) > 1e-2
    # The code is the base mean pushed through the same flow.
    np.testing.assert_allclose(q.mean, posterior.transform(loc, h)[0], rtol=1e-10, atol=1e-10)
    assert np.max(np.abs(q.mean - loc)) > 1e-2


@pytest.mark.parametrize("name, amortized", CASES)
def test_vae_trains_and_every_weight_gets_a_gradient(name, amortized):
    model = small_vae(posterior=name, posterior_options=options(name, amortized), latent_dim=4)
    x = tf.constant(random_images(8))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.bound_terms(x, SEED)["loss"])
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads)
               if g is None or not np.any(g.numpy())]
    assert not missing, f"no gradient reaches {missing}"
    flow_weights = [v for v in model.posterior.trainable_weights
                    if not v.path.startswith(model.posterior.base.path)]
    assert flow_weights, "the flow has no trainable weights"

    # Two training steps (the model's own train_step, eagerly) change the flow's weights.
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [np.array(v) for v in flow_weights]
    for _ in range(2):
        logs = model.train_step(x)
    assert np.isfinite(float(logs["loss"]))
    assert all(not np.allclose(a, np.asarray(v)) for a, v in zip(before, flow_weights))

    # encode: the base mean pushed through the flow, not the base mean.
    h = model.encoder(x)
    loc, _ = model.posterior.base.loc_and_scale(h)
    code = model.encode(x)
    np.testing.assert_allclose(code, model.posterior.transform(loc, h)[0], rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(code - loc)) > 1e-4


def test_unrolled_orthogonalization_matches_the_bijectors_loop():
    from tfdgm.bijectors import orthogonalize
    from tfdgm.bijectors import orthogonalize_unrolled
    q_raw = tf.random.stateless_normal([2, 3, 6, 4], [7, 8], dtype=tf.float64)
    q = orthogonalize_unrolled(q_raw, 20)
    np.testing.assert_allclose(tf.linalg.matmul(q, q, transpose_a=True),
                               np.broadcast_to(np.eye(4), [2, 3, 4, 4]), atol=1e-12)
    np.testing.assert_allclose(q, orthogonalize(q_raw, num_steps=60, tol=1e-13), atol=1e-12)


def test_osnf_trains_under_fit():
    """The orthogonalization loop differentiates inside a traced training step."""
    model = small_vae(posterior="sylvester_orthogonal",
                      posterior_options={"num_flows": 2, "bottleneck": 2}, latent_dim=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(random_images(32), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_export_encode_decode_generate(tmp_path):
    model = small_vae(posterior="sylvester_orthogonal",
                      posterior_options={"num_flows": 2, "bottleneck": 2}, latent_dim=4)
    rng = np.random.default_rng(1)
    for weight in model.posterior.trainable_weights:
        value = np.asarray(weight)
        weight.assign(value + 0.1 * rng.standard_normal(value.shape).astype(value.dtype))
    path = export.export_saved_model(model, str(tmp_path), "flows", 1)
    loaded = tf.saved_model.load(path)
    x = tf.constant(random_images(3, seed=2))
    eps = tf.constant(rng.standard_normal((3, 4)).astype(np.float32))
    np.testing.assert_allclose(loaded.signatures["encode"](x=x)["z"], model.encode(x),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded.signatures["decode"](z=eps)["x_mean"], model.decode(eps),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded.signatures["generate"](eps=eps)["x_mean"],
                               model.generate(eps), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, amortized", [("iaf", True), ("sylvester_householder", False)])
def test_keras_saving_round_trip(tmp_path, name, amortized):
    model = small_vae(posterior=name, posterior_options=options(name, amortized), latent_dim=4)
    path = str(tmp_path / "vae.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.posterior.get_config() == model.posterior.get_config()
    x = tf.constant(random_images(4))
    np.testing.assert_allclose(restored.encode(x), model.encode(x), atol=1e-6)
    np.testing.assert_allclose(restored.elbo(x), model.elbo(x), atol=1e-4)


@pytest.mark.parametrize("spec, message", [
    ({"name": "sylvester_orthogonal", "bottleneck": 5},
     "bottleneck=5 must be <= latent_dim=4"),
    ({"name": "planar", "bottlenek": 2}, "model.posterior.bottlenek: posterior 'planar' has no "
                                         "option 'bottlenek'"),
    ({"name": "iaf", "amortized": False}, "posterior 'iaf' has no option 'amortized'"),
    ({"name": "sylvester_triangular", "bottleneck": 2}, "has no option 'bottleneck'"),
])
def test_bad_options_are_config_errors(spec, message):
    with pytest.raises(ConfigError) as error:
        POSTERIORS.build(spec, "model.posterior", latent_dim=4)
    assert message in str(error.value)


def test_option_values_are_checked_before_building():
    check = POSTERIORS.get("sylvester_orthogonal").validate_options
    with pytest.raises(ConfigError, match=r"model.posterior.num_flows: expected a positive"):
        check({"num_flows": 0}, "model.posterior")
    with pytest.raises(ConfigError, match=r"bottleneck: 80 exceeds model.latent_dim \(64\)"):
        check({"bottleneck": 80}, "model.posterior", latent_dim=64)
    with pytest.raises(ConfigError, match=r"hidden_units: expected a non-empty list"):
        POSTERIORS.get("iaf").validate_options({"hidden_units": []}, "model.posterior")
    with pytest.raises(ConfigError, match="num_reflections: expected a positive integer"):
        experiment.from_dict({"data": {"binarize": "dynamic"}, "model": {"name": "vae", "posterior": {
            "name": "sylvester_householder", "num_reflections": 0}}})


def test_sylvester_configs_follow_the_paper():
    paths = sorted(glob.glob("configs/sylvester/*.yaml"))
    assert [p.split("/")[-1] for p in paths] == [
        "h_snf.yaml", "iaf.yaml", "o_snf.yaml", "planar.yaml", "t_snf.yaml", "vae.yaml"]
    for path in paths:
        config = experiment.load_config(path)
        assert config.data.name == "static_mnist" and config.data.batch_size == 100
        assert config.model.latent_dim == 64
        assert config.model.encoder == {"name": "gated_conv", "output_dim": 256}
        assert config.optimizer.name == "adamax" and config.optimizer.learning_rate == 5e-4
        assert config.model.objective.warmup_epochs == 100 and config.training.patience == 100
        assert config.training.epochs == 2000 and config.evaluation.nll_samples == 5000
        posterior = config.model.posterior
        if posterior["name"] != "diagonal_gaussian":
            assert posterior["num_flows"] == 16
    assert experiment.load_config("configs/sylvester/o_snf.yaml").model.posterior["bottleneck"] == 32
    assert experiment.load_config("configs/sylvester/h_snf.yaml").model.posterior["num_reflections"] == 8
    assert experiment.load_config("configs/sylvester/iaf.yaml").model.posterior["hidden_units"] == [
        1280, 1280]
