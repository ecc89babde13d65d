"""ActNorm state: global-batch initialization under tf.distribute, and save/load never re-inits.

`tests/conftest.py` splits the CPU into two logical devices, so `MirroredStrategy` runs two
replicas in this process.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm.flows import ActNorm, GlowFlow

CPUS = ["/cpu:0", "/cpu:1"]


@pytest.fixture(scope="module")
def mirrored():
    """One `MirroredStrategy` for the module, its collective keys away from other modules'.

    The runtime keeps the shapes of a collective key for the life of the process, so two
    strategies numbering their all-reduces alike would collide (see tests/test_distribute.py).
    """
    saved = tf.distribute.MirroredStrategy._collective_key_base
    tf.distribute.MirroredStrategy._collective_key_base = 9400
    try:
        return tf.distribute.MirroredStrategy(CPUS)
    finally:
        tf.distribute.MirroredStrategy._collective_key_base = saved


def _flow():
    # K = 2: the second ActNorm initializes on the output of the first (through a coupling).
    return GlowFlow((4, 4, 3), num_levels=1, num_steps=2, hidden_channels=4, seed=0,
                    dtype="float64")


def _batch(seed, n=8):
    rng = np.random.default_rng(seed)
    return tf.constant(np.array([1., -2., 0.5]) + np.array([0.3, 2., 1.]) *
                       rng.standard_normal((n, 4, 4, 3)))


def _actnorms(flow):
    return [layer.actnorm for layer in flow.flow_layers if hasattr(layer, "actnorm")]


def _actnorm_values(flow):
    return [np.concatenate([a.shift.numpy(), a.log_scale.numpy()]) for a in _actnorms(flow)]


def test_two_replicas_initialize_like_one_device_on_the_global_batch(mirrored):
    x = _batch(0)
    reference = _flow()
    reference.build()
    initial = reference.get_weights()
    one_device = reference.log_prob(x, training=True).numpy()

    with mirrored.scope():
        flow = _flow()
        flow.build()
    flow.set_weights(initial)
    dataset = mirrored.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(8))

    @tf.function
    def step(batch):
        return mirrored.run(lambda t: flow.log_prob(t, training=True), (batch,))

    per_replica = step(next(iter(dataset)))
    local = mirrored.experimental_local_results(per_replica)
    assert [t.shape[0] for t in local] == [4, 4]  # each replica saw half of the batch
    np.testing.assert_allclose(np.concatenate([t.numpy() for t in local]), one_device,
                               atol=1e-10)
    for actnorm in _actnorms(flow):
        for var in (actnorm.shift, actnorm.log_scale, actnorm.initialized):
            copies = [v.numpy() for v in mirrored.experimental_local_results(var.value)]
            assert len(copies) == 2
            np.testing.assert_array_equal(copies[0], copies[1])
        assert bool(actnorm.initialized.numpy())
    for got, expected in zip(_actnorm_values(flow), _actnorm_values(reference)):
        np.testing.assert_allclose(got, expected, atol=1e-12)
    # Local statistics would differ: one device on half the batch initializes elsewhere.
    half = _flow()
    half.build()
    half.set_weights(initial)
    half.log_prob(x[:4], training=True)
    assert not np.allclose(_actnorm_values(half)[0], _actnorm_values(reference)[0], atol=1e-3)


class _Density(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flow = _flow()

    def call(self, x, training=None):
        return self.flow.log_prob(x, training=training)


def test_save_and_load_weights_keep_actnorm_initialized(tmp_path):
    x = _batch(1)
    model = _Density()
    expected = model(x, training=True).numpy()
    assert len(model.non_trainable_weights) == 3 * 2  # flag, P, sign per step
    path = str(tmp_path / "flow.weights.h5")
    model.save_weights(path)

    restored = _Density()
    restored(x)  # builds; training=None does not initialize
    assert not any(bool(a.initialized.numpy()) for a in _actnorms(restored.flow))
    restored.load_weights(path)
    assert all(bool(a.initialized.numpy()) for a in _actnorms(restored.flow))
    values = _actnorm_values(restored.flow)
    for got, saved in zip(values, _actnorm_values(model.flow)):
        np.testing.assert_array_equal(got, saved)
    # The next training call, on another batch, must not initialize again.
    restored(3. * _batch(2) + 1., training=True)
    for got, saved in zip(_actnorm_values(restored.flow), values):
        np.testing.assert_array_equal(got, saved)
    np.testing.assert_allclose(restored(x).numpy(), expected, atol=1e-12)


def test_actnorm_without_strategy_in_graph_mode_matches_eager():
    x = _batch(3, n=4)
    eager, graph = ActNorm(dtype="float64"), ActNorm(dtype="float64")
    y_eager, _ = eager(x, training=True)
    graph(x)
    y_graph, _ = tf.function(lambda t: graph(t, training=True))(x)
    np.testing.assert_allclose(y_graph.numpy(), y_eager.numpy(), atol=1e-14)
