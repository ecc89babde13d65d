"""Mixed precision (`training.precision`, `tfdgm.precision`): every family trains under
`mixed_bfloat16` and `mixed_float16` with float32 variables and float32 densities, its bounds of
a fixed batch stay close to float32's, flows' log-dets stay exact, and the loss-scaling state of
a `mixed_float16` run survives a checkpoint.

Tolerances. bfloat16 keeps 8 significant bits (unit roundoff `u = 2^-8 ~ 3.9e-3`), so each
network output is off by about `u` relative; the bounds sum hundreds of per-pixel terms in
float32 whose rounding errors largely cancel. With the same (perturbed, non-trivial) weights the
ELBO, IWAE bound and bits/dim of a fixed batch differ from float32's by 1e-6 to 3e-4 relative
(measured for every family here; MAF's 784-wide MADE the most), so the tests ask for 1e-3: a
bound that were itself rounded to bfloat16 would be off by up to `2^-9 ~ 2e-3`. Quantities
computed in float32 from float32 parameters (ActNorm's and the 1x1 convolutions' log-dets)
match float32 to 1e-6, and the flows' inverses are exact to float32 precision.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm import experiment
from tfdgm.data import dataset_info, load_datasets, load_images
from tfdgm.precision import FullPrecision, full_precision_policy
from tfdgm.training.train import restore, run_optimizers

MIXED = ("mixed_bfloat16", "mixed_float16")
LOW = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
SEED = tf.constant([3, 4], tf.int64)

BINARY = {"name": "mnist5k", "binarize": "dynamic", "batch_size": 20, "eval_batch_size": 20,
          "max_examples": 200}
GREY = {"name": "mnist5k", "batch_size": 20, "eval_batch_size": 20, "max_examples": 200}
MLP = {"name": "mlp", "hidden_units": [32]}

FAMILIES = {
    "vae": {"data": BINARY,
            "model": {"name": "vae", "latent_dim": 4, "encoder": MLP, "decoder": MLP}},
    "vae_vamp_iwae": {"data": BINARY,
                      "model": {"name": "vae", "latent_dim": 4, "encoder": MLP, "decoder": MLP,
                                "prior": {"name": "vamp_prior", "num_components": 5},
                                "objective": {"name": "iwae", "num_samples": 4}}},
    "vae_iaf": {"data": BINARY,
                "model": {"name": "vae", "latent_dim": 4, "encoder": MLP, "decoder": MLP,
                          "posterior": {"name": "iaf", "num_flows": 2, "hidden_units": [16]}}},
    "vae_maf_prior": {"data": BINARY,
                      "model": {"name": "vae", "latent_dim": 4, "encoder": MLP, "decoder": MLP,
                                "prior": {"name": "maf", "num_flows": 2,
                                          "hidden_units": [16]}}},
    "svae": {"data": BINARY,
             "model": {"name": "vae", "latent_dim": 3, "encoder": MLP, "decoder": MLP,
                       "posterior": {"name": "von_mises_fisher"},
                       "prior": {"name": "hyperspherical_uniform"}}},
    "hvae": {"data": BINARY,
             "model": {"name": "hvae", "latent_dim": 4,
                       "encoder": {"name": "gated_mlp", "hidden_units": [32]},
                       "decoder": {"name": "gated_mlp", "hidden_units": [32]},
                       "prior": {"name": "vamp_prior", "num_components": 5}}},
    "glow": {"data": GREY,
             "model": {"name": "glow", "num_levels": 1, "num_steps": 2, "hidden_channels": 8,
                       "dequantization": "variational", "dequantization_steps": 1,
                       "dequantization_hidden": 4}},
    "realnvp": {"data": GREY,
                "model": {"name": "realnvp", "num_scales": 1, "hidden_channels": 8,
                          "num_final_couplings": 2}},
    "maf": {"data": GREY,
            "model": {"name": "maf", "num_flows": 1, "hidden_units": [16]}},
    "wgan_gp": {"data": {**GREY, "batch_size": 40},
                "model": {"name": "gan", "loss": "wgan_gp", "network": "mlp",
                          "hidden_units": [32], "latent_dim": 8, "n_critic": 2}},
    "sn_hinge_gan": {"data": GREY,
                     "model": {"name": "gan", "loss": "hinge", "network": "dcgan", "filters": 4,
                               "latent_dim": 8, "spectral_norm": True}},
    "bigan": {"data": GREY,
              "model": {"name": "bigan", "network": "mlp", "hidden_units": [32],
                        "joint_units": 32, "latent_dim": 8}},
}
"""Tiny configs of every family (and of the components with their own float32 terms)."""

TRAINED = ("vae", "hvae", "glow", "wgan_gp", "bigan")
"""One short training run per family and policy."""


def config_of(family, precision="float32"):
    return experiment.from_dict({"name": family, **FAMILIES[family],
                                 "training": {"precision": precision}})


def build(config):
    keras.utils.set_random_seed(0)
    model = experiment.build_model(config, dataset_info(config.data))
    assert keras.config.dtype_policy().name == "float32"  # the build restored the policy
    return model


def twins(family, precision, x=None):
    """The float32 model and the `precision` model of `family` with the same weights: the
    initial ones (after ActNorm's initialization on `x` for flows) plus N(0, 0.05^2) noise, so
    that the zero-initialized last layers (coupling conditioners, split priors) are not trivial."""
    reference = build(config_of(family))
    if x is not None and hasattr(reference, "dequantize"):
        reference.bound_terms(x, SEED, training=True)  # ActNorm's data-dependent initialization
    rng = np.random.default_rng(0)
    for variable in reference.trainable_variables:
        variable.assign(variable.numpy() + rng.normal(0.0, 0.05, variable.shape))
    mixed = build(config_of(family, precision))
    mixed.set_weights(reference.get_weights())
    return reference, mixed


def images(family, n=20):
    return load_images(config_of(family).data, "validation")[:n]


def float_variables(model):
    return [v for v in model.variables if v.dtype not in ("int32", "int64", "bool")]


# The policy, layer by layer ---------------------------------------------------------------------

@pytest.mark.parametrize("precision", MIXED)
def test_networks_compute_low_density_layers_full_variables_float32(precision):
    vae = build(config_of("vae_maf_prior", precision))
    low = LOW[precision]
    assert vae.encoder.compute_dtype == vae.decoder.compute_dtype == low
    assert vae.posterior.loc_head.compute_dtype == low and vae.prior.mades[0].compute_dtype == low
    for density_layer in (vae.posterior, vae.prior, vae.likelihood):
        assert density_layer.compute_dtype == "float32", density_layer.name
    glow = build(config_of("glow", precision))
    step = glow.flow.flow_layers[1]
    assert step.coupling.conditioner.compute_dtype == low
    assert glow.dequantizer.conditioners[0].compute_dtype == low
    assert step.actnorm.compute_dtype == step.conv.compute_dtype == "float32"
    for model in (vae, glow, build(config_of("sn_hinge_gan", precision))):
        assert all(v.dtype == "float32" for v in float_variables(model)), model.name
    assert keras.config.dtype_policy().name == "float32"


def test_full_precision_layers_keep_the_run_policy_for_their_networks():
    """`FullPrecision`: the layer computes in the policy's variable dtype, its config keeps the
    run's policy (so `from_config` rebuilds the same split under any global policy), and plain
    policies pass through (a float64 posterior stays float64)."""
    assert full_precision_policy("mixed_bfloat16").name == "float32"
    assert full_precision_policy("float64").name == "float64"
    posterior = build(config_of("vae", "mixed_bfloat16")).posterior
    copy = type(posterior).from_config(posterior.get_config())  # under the float32 policy
    assert isinstance(copy, FullPrecision)
    assert copy.compute_dtype == "float32" and copy.loc_head.compute_dtype == "bfloat16"
    plain = type(posterior)(latent_dim=2, dtype="float64")
    assert plain.compute_dtype == plain.loc_head.compute_dtype == "float64"
    assert keras.config.dtype_policy().name == "float32"


# Bounds of a fixed batch --------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["vae", "vae_vamp_iwae", "vae_iaf", "vae_maf_prior", "svae",
                                    "hvae"])
def test_vae_bounds_under_bfloat16_match_float32(family):
    x = images(family)
    reference, mixed = twins(family, "mixed_bfloat16", x)
    want = reference.bound_terms(x, SEED)
    got = mixed.bound_terms(x, SEED)
    for name, value in got.items():
        assert value.dtype == tf.float32, name  # what the trackers and the NaN guard see
    for name in ("elbo",) + (("iwae",) if "iwae" in want else ()):
        np.testing.assert_allclose(np.mean(got[name]), np.mean(want[name]), rtol=1e-3)
    log_w = mixed.log_weights(x, 3, SEED)
    assert log_w.dtype == tf.float32 and np.all(np.isfinite(log_w))


@pytest.mark.parametrize("family", ["glow", "realnvp", "maf"])
def test_flow_bits_per_dim_under_bfloat16_match_float32(family):
    x = images(family)
    reference, mixed = twins(family, "mixed_bfloat16", x)
    want = reference.bound_terms(x, SEED)["bits_per_dim"]
    got = mixed.bound_terms(x, SEED)["bits_per_dim"]
    assert got.dtype == tf.float32
    np.testing.assert_allclose(np.mean(got), np.mean(want), rtol=1e-3)
    log_p, bpd = mixed.log_prob(x)
    assert log_p.dtype == bpd.dtype == tf.float32


def test_flow_log_dets_from_float32_parameters_are_float32_exact():
    """ActNorm's and the 1x1 convolution's log-dets depend on their (float32) parameters only:
    under bfloat16 they equal float32's to float32 precision. The coupling's log-det is that of
    the map the layer applies: the autodiff Jacobian of a whole Glow step (with its bfloat16
    conditioner) has exactly the reported log-determinant, and the inverse undoes the step."""
    x = images("glow")
    reference, mixed = twins("glow", "mixed_bfloat16", x)
    h = tf.random.stateless_normal([2, 14, 14, 4], [1, 2])
    for step32, step16 in zip(reference.flow.flow_layers[1:], mixed.flow.flow_layers[1:]):
        for part in ("actnorm", "conv"):
            np.testing.assert_allclose(getattr(step16, part)(h)[1], getattr(step32, part)(h)[1],
                                       rtol=1e-6)
    step = mixed.flow.flow_layers[1]
    small = tf.random.stateless_normal([1, 2, 2, 4], [5, 6])
    with tf.GradientTape() as tape:
        tape.watch(small)
        y, log_det = step(small)
    jacobian = tape.jacobian(y, small).numpy().reshape(16, 16).astype(np.float64)
    assert y.dtype == log_det.dtype == tf.float32
    np.testing.assert_allclose(log_det.numpy()[0], np.linalg.slogdet(jacobian)[1], atol=1e-4)
    np.testing.assert_allclose(step.inverse(y), small, atol=1e-5)
    z = mixed.encode(x)
    np.testing.assert_allclose(mixed.decode(z), mixed.bin_centres(x), atol=1e-4)


# Training -----------------------------------------------------------------------------------------

def short_run(config, steps):
    datasets = load_datasets(config.data, seed=config.seed, initial_epoch=0)
    model = build(config)
    model.compile_for_training(run_optimizers(model, config))
    model.prepare_training(datasets, config)
    history = model.fit(datasets.train, steps_per_epoch=steps, epochs=2, verbose=0,
                        shuffle=False).history
    return model, history


@pytest.mark.parametrize("precision", MIXED)
@pytest.mark.parametrize("family", TRAINED)
def test_each_family_trains_under_mixed_precision(family, precision):
    """A short run is finite and improves its objective (the GANs: the discriminator's loss,
    which falls while the generator has barely moved). Under float16 the first steps may be
    skipped while the dynamic loss scale falls from 2^15 to what the gradients allow."""
    model, history = short_run(config_of(family, precision), steps=8)
    for name, values in history.items():
        assert np.all(np.isfinite(values)), name
    term = "d_loss" if "d_loss" in history else "loss"
    assert history[term][1] < history[term][0], history
    optimizers = model.optimizers.values()
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
               for o in optimizers)
    assert all(int(o.iterations) > 0 for o in optimizers)  # some updates were applied
    assert all(v.dtype == "float32" for v in float_variables(model))


# Resuming a mixed_float16 run ---------------------------------------------------------------------

def test_loss_scale_state_round_trips_through_the_checkpoint(tmp_path):
    config = config_of("vae", "mixed_float16")
    model, _ = short_run(config, steps=4)
    optimizer = model.optimizer
    assert int(optimizer.step_counter) == 8 and int(optimizer.iterations) == 8
    optimizer.dynamic_scale.assign(256.0)  # as after a few overflows: not the initial 2^15
    path = str(tmp_path / "last.weights.h5")
    model.save_weights(path)

    resumed = build(config)
    resumed.compile_for_training(run_optimizers(resumed, config))
    restore(resumed, path, config.optimizer)
    for name in ("dynamic_scale", "step_counter"):
        assert float(getattr(resumed.optimizer, name)) == float(getattr(optimizer, name)), name
    assert int(resumed.optimizer.iterations) == int(optimizer.iterations)
    assert float(resumed.optimizer.inner_optimizer.learning_rate) == pytest.approx(
        config.optimizer.learning_rate)


def test_restore_sets_the_clipnorm_a_resumption_asks_for_under_loss_scaling(tmp_path):
    config = config_of("vae", "mixed_float16")
    model = build(config)
    model.compile_for_training(run_optimizers(model, config))
    model.build_optimizers()
    path = str(tmp_path / "last.weights.h5")
    model.save_weights(path)
    clipped = dataclasses.replace(config.optimizer, clipnorm=1.0, learning_rate=1e-4)
    restore(model, path, clipped)
    inner = model.optimizer.inner_optimizer
    assert float(inner.learning_rate) == pytest.approx(1e-4)
    assert inner.clipnorm == 1.0


# Export -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ("vae", "glow"))
def test_a_mixed_precision_model_exports_as_float32_with_tflite_parity(family, tmp_path):
    """`export` serves a float32 copy (TFLite has no bfloat16 matrix products): the SavedModel
    and the TFLite file verify against the copy, whose outputs match the bfloat16 model's."""
    from tfdgm.export import export_model

    config = config_of(family, "mixed_bfloat16")
    _, model = twins(family, "mixed_bfloat16", images(family))
    copy = experiment.float32_copy(config, model, dataset_info(config.data))
    assert all(v.dtype == "float32" for v in float_variables(copy))
    for name, signature in copy.signatures().items():
        inputs = signature.example_inputs(np.random.default_rng(0), 2)
        want = model.signatures()[name].fn(**inputs)
        got = signature.fn(**inputs)
        for key in got:
            np.testing.assert_allclose(np.asarray(got[key], np.float32),
                                       np.asarray(want[key], np.float32), rtol=0.05, atol=0.05)
    exported = export_model(copy, str(tmp_path / "export"), family, version=1)
    assert exported.tflite is not None and (tmp_path / "export" / f"{family}-1.tflite").exists()
