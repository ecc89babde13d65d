"""One device and two replicas (`MirroredStrategy` over the two logical CPUs of `conftest.py`)
take the same steps: the DBN through its greedy phases (CD-1 and PCD, whose chains are one
mirrored array rebuilt by an all-reduce inside the layer branch of the step), and the
Gaussian-Bernoulli RBM (its visible noise is the global batch's, sliced per replica)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm import experiment
from tfdgm.data import dataset_info
from tfdgm.models.ebm.dbn import DBN, GreedyLayerPhase

CPUS = ["/cpu:0", "/cpu:1"]
BATCH = 8


@pytest.fixture(scope="module")
def mirrored():
    """This module's strategy; its collective keys start at 9700, away from other modules'
    strategies (see tests/test_distribute.py)."""
    saved = tf.distribute.MirroredStrategy._collective_key_base
    tf.distribute.MirroredStrategy._collective_key_base = 9700
    try:
        return tf.distribute.MirroredStrategy(CPUS)
    finally:
        tf.distribute.MirroredStrategy._collective_key_base = saved


def sharded(images):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return tf.data.Dataset.from_tensor_slices(images).batch(BATCH).with_options(options)


def binary_images(num, seed):
    return (np.random.default_rng(seed).uniform(size=(num, 28, 28, 1)) < 0.3).astype(np.float32)


def make_dbn(strategy, persistent, initial=None):
    with strategy.scope():
        dbn = DBN((28, 28, 1), hidden_units=[12, 6], epochs_per_layer=1, persistent=persistent,
                  num_chains=BATCH, sample_steps=2)
        dbn.build()
        if initial is None:
            rng = np.random.default_rng(1)
            for variable in dbn.trainable_variables:
                variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
            for chains in dbn.chains:
                chains.assign((rng.uniform(size=chains.shape) < 0.5).astype(np.float32))
        else:
            dbn.set_weights(initial)
        dbn.compile_for_training({"model": keras.optimizers.SGD(0.1, momentum=0.5)})
    return dbn


@pytest.mark.parametrize("persistent", [False, True])
def test_dbn_two_replicas_take_the_one_device_steps(mirrored, persistent):
    reference = make_dbn(tf.distribute.OneDeviceStrategy("/cpu:0"), persistent)
    initial = reference.get_weights()
    replicated = make_dbn(mirrored, persistent, initial)
    assert replicated.distribute_strategy.num_replicas_in_sync == 2
    data = sharded(binary_images(3 * BATCH, 2))
    for dbn in (reference, replicated):  # epoch 1 trains RBM 0, epoch 2 RBM 1
        dbn.fit(data, epochs=2, verbose=0, shuffle=False, callbacks=[GreedyLayerPhase(1)])
        assert int(dbn.layer.numpy()) == 1
    for before, after in zip(initial, reference.get_weights()):
        if before.ndim == 2 and before.shape[1] in (12, 6):  # both kernels moved
            assert np.abs(after - before).max() > 1e-3
    for got, want, variable in zip(replicated.get_weights(), reference.get_weights(),
                                   reference.weights):
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=variable.path)


def make_grbm(strategy, initial=None):
    config = experiment.from_dict({
        "data": {"name": "mnist5k", "batch_size": BATCH},
        "model": {"name": "rbm", "visible": "gaussian", "hidden_units": 10, "cd_steps": 2,
                  "persistent": True, "num_chains": BATCH},
        "distribute": {"strategy": "one_device"}})
    with strategy.scope():
        rbm = experiment.build_model(config, dataset_info(config.data))
        if initial is None:
            rng = np.random.default_rng(3)
            rbm.initialize_from_data(rng.uniform(size=(40, 28, 28, 1)).astype(np.float32))
            for variable in rbm.rbm.trainable_variables:
                variable.assign(rng.normal(0, 0.1, variable.shape).astype(np.float32))
        else:
            rbm.set_weights(initial)
        rbm.compile_for_training({"model": keras.optimizers.SGD(0.01, momentum=0.5)})
    return rbm


def test_gaussian_rbm_two_replicas_take_the_one_device_steps(mirrored):
    reference = make_grbm(tf.distribute.OneDeviceStrategy("/cpu:0"))
    initial = reference.get_weights()
    initial_kernel = reference.rbm.kernel.numpy().copy()
    replicated = make_grbm(mirrored, initial)
    data = sharded(np.random.default_rng(4).uniform(size=(3 * BATCH, 28, 28, 1)).astype(
        np.float32))
    for rbm in (reference, replicated):
        rbm.fit(data, epochs=1, verbose=0, shuffle=False)
    assert np.abs(reference.rbm.kernel.numpy() - initial_kernel).max() > 1e-4
    np.testing.assert_allclose(replicated.rbm.kernel.numpy(), reference.rbm.kernel.numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(replicated.chains.numpy(), reference.chains.numpy(), atol=1e-4)
