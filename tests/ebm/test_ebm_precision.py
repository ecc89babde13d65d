"""`training.precision: mixed_bfloat16` for the RBM and the DBN: the Gibbs sweeps' products run
in bfloat16, while free energies, CD statistics and AIS stay float32; a short bfloat16 run is
finite and close to the float32 one."""

import keras
import numpy as np
import tensorflow as tf

from tfdgm import experiment
from tfdgm.data import dataset_info
from tfdgm.models.ebm.dbn import GreedyLayerPhase
from tfdgm.models.ebm.evaluation import run_ais

BATCH = 10


def binary_images(num, seed):
    return (np.random.default_rng(seed).uniform(size=(num, 28, 28, 1)) < 0.3).astype(np.float32)


def build(precision, model, initial=None):
    config = experiment.from_dict({
        "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": BATCH},
        "model": model, "training": {"precision": precision, "epochs": 2},
        "evaluation": {"ais_chains": 32, "ais_betas": 300}})
    net = experiment.build_model(config, dataset_info(config.data))
    if initial is not None:
        net.set_weights(initial)
    net.compile_for_training({"model": keras.optimizers.SGD(0.05, momentum=0.5)})
    return net, config


def test_a_short_bfloat16_rbm_run_is_finite_and_close_to_float32():
    model = {"name": "rbm", "hidden_units": 32, "cd_steps": 3, "persistent": True,
             "num_chains": BATCH}
    reference, config = build("float32", model)
    reference.initialize_from_data(binary_images(60, 1))
    rng = np.random.default_rng(2)
    reference.rbm.kernel.assign(rng.normal(0, 0.1, reference.rbm.kernel.shape))
    mixed, _ = build("mixed_bfloat16", model, reference.get_weights())
    assert reference.rbm.sampling_dtype == "float32"
    assert mixed.rbm.sampling_dtype == "bfloat16" and mixed.rbm.kernel.dtype == "float32"
    data = tf.data.Dataset.from_tensor_slices(binary_images(4 * BATCH, 3)).batch(BATCH)
    for net in (reference, mixed):
        net.fit(data, epochs=2, verbose=0, shuffle=False)
    test = binary_images(50, 4)
    f32, bf16 = reference.free_energy(test), mixed.free_energy(test)
    assert bf16.dtype == tf.float32 and np.all(np.isfinite(bf16.numpy()))
    # bfloat16 sampling moved the chains differently, yet the model stays close.
    assert not np.array_equal(mixed.chains.numpy(), reference.chains.numpy())
    np.testing.assert_allclose(bf16.numpy(), f32.numpy(), rtol=0.02)
    results = [run_ais(net.rbm, net.base_rate, config.evaluation, seed=0)
               for net in (reference, mixed)]
    assert all(np.isfinite(r.log_z) and r.log_weights.dtype == np.float64 for r in results)
    assert abs(results[1].log_z - results[0].log_z) < 0.02 * abs(results[0].log_z)
    with tf.GradientTape() as tape:
        v = tf.reshape(tf.constant(test[:BATCH]), [BATCH, -1])
        loss = mixed.cd_loss(v, mixed.negative_samples(v, tf.constant([0, 1], tf.int64)))
    assert loss.dtype == tf.float32
    assert all(g.dtype == tf.float32 for g in tape.gradient(loss, mixed.rbm.trainable_variables))


def test_a_short_bfloat16_dbn_run_is_finite_and_close_to_float32():
    model = {"name": "dbn", "hidden_units": [16, 8], "epochs_per_layer": 1, "persistent": True,
             "num_chains": BATCH, "sample_steps": 3}
    reference, _ = build("float32", model)
    rng = np.random.default_rng(5)
    for variable in reference.trainable_variables:
        variable.assign(rng.normal(0, 0.1, variable.shape))
    mixed, _ = build("mixed_bfloat16", model, reference.get_weights())
    assert all(rbm.sampling_dtype == "bfloat16" for rbm in mixed.rbms)
    data = tf.data.Dataset.from_tensor_slices(binary_images(4 * BATCH, 6)).batch(BATCH)
    for net in (reference, mixed):
        net.fit(data, epochs=2, verbose=0, shuffle=False, callbacks=[GreedyLayerPhase(1)])
    test = tf.constant(binary_images(20, 7))
    seed = tf.constant([0, 1], tf.int64)
    f32, bf16 = (net.log_likelihood_bound(test, 4, seed) for net in (reference, mixed))
    assert bf16.dtype == tf.float32 and np.all(np.isfinite(bf16.numpy()))
    np.testing.assert_allclose(bf16.numpy(), f32.numpy(), rtol=0.02)
    x = mixed.sample(4, seed=1)
    assert x.dtype == np.float32 and np.all(np.isfinite(x))
