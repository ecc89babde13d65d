"""One device and two replicas (`MirroredStrategy` over the two logical CPUs of `conftest.py`)
take the same steps with a density flow: MAF with variational dequantization (its
dequantization noise is the global batch's, sliced per replica; losses average the global
batch)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm.models.flows import MAF

CPUS = ["/cpu:0", "/cpu:1"]
BATCH = 8
SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def mirrored():
    """This module's strategy; its collective keys start at 9750, away from other modules'
    strategies (see tests/test_distribute.py)."""
    saved = tf.distribute.MirroredStrategy._collective_key_base
    tf.distribute.MirroredStrategy._collective_key_base = 9750
    try:
        return tf.distribute.MirroredStrategy(CPUS)
    finally:
        tf.distribute.MirroredStrategy._collective_key_base = saved


def make_flow(strategy, initial=None):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        flow = MAF(SHAPE, num_flows=2, hidden_units=[32],
                       dequantization="variational", dequantization_steps=2,
                       dequantization_hidden=4)
        flow.build()
        if initial is None:  # leave the zero-initialized (identity) start
            rng = np.random.default_rng(0)
            for variable in flow.trainable_variables:
                variable.assign(variable.numpy() + 0.05 * rng.standard_normal(variable.shape))
        else:
            flow.set_weights(initial)
        flow.compile(optimizer=keras.optimizers.Adam(1e-3))
    return flow


def test_maf_two_replicas_take_the_one_device_steps(mirrored):
    reference = make_flow(tf.distribute.OneDeviceStrategy("/cpu:0"))
    initial = reference.get_weights()
    replicated = make_flow(mirrored, initial)
    assert replicated.distribute_strategy.num_replicas_in_sync == 2
    images = np.random.default_rng(1).integers(0, 256, (3 * BATCH, *SHAPE)).astype(
        np.float32) / 255.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = tf.data.Dataset.from_tensor_slices(images).batch(BATCH).with_options(options)
    for flow in (reference, replicated):
        flow.fit(data, epochs=1, verbose=0, shuffle=False)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(reference.get_weights(), initial)
                if np.issubdtype(a.dtype, np.floating))
    assert moved > 1e-4
    for got, want, variable in zip(replicated.get_weights(), reference.get_weights(),
                                   reference.weights):
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=variable.path)
