"""The feature network: learns generated separable images, is cached once per data and
settings, is reproducible from its seed, and never leaves a half-written cache entry."""

import json
import os

import numpy as np
import pytest

from tfdgm.errors import DataError
from tfdgm.evaluation import feature_network as fn

TINY = dict(epochs=3, batch_size=16, filters=(8, 16), feature_dim=32)
QUICK = dict(TINY, epochs=1, batch_size=100)         # where only the cache logic matters


def _images(n, seed, num_classes=4):
    """28x28x1 images in [0, 1]: noise plus a bright square in one of four quadrants (the
    label), jittered by up to 3 pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.uniform(0., 0.4, (n, 28, 28, 1)).astype(np.float32)
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 2)
        dr, dc = rng.integers(0, 4, 2)
        images[i, r * 14 + dr:r * 14 + dr + 8, c * 14 + dc:c * 14 + dc + 8, 0] += 0.5
    return np.clip(images, 0., 1.), labels


@pytest.fixture(scope="module")
def data():
    return _images(500, 0) + _images(200, 1)


@pytest.fixture(scope="module")
def cached(data, tmp_path_factory):
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    return cache_dir, fn.load_or_train("toy", *data, cache_dir=cache_dir, **TINY)


def test_learns_far_better_than_chance(cached, data):
    _, network = cached
    assert not network.from_cache
    record = network.record
    assert record["validation_accuracy"] > 0.9                     # chance: 0.25
    x_val, y_val = data[2], data[3]
    assert record["validation_accuracy"] == network.accuracy(x_val, y_val)
    assert network.features(x_val).shape == (200, 32)
    probabilities = network.class_probabilities(x_val)
    assert probabilities.shape == (200, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1., rtol=1e-5)
    features, probabilities_again = network.embed(x_val, batch_size=7)   # batching is exact
    np.testing.assert_allclose(features, network.features(x_val), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities_again, probabilities, rtol=1e-5, atol=1e-7)


def test_record_describes_the_network(cached):
    cache_dir, network = cached
    record = network.record
    assert record["dataset"] == "toy"
    assert record["num_train_examples"] == 500 and record["num_validation_examples"] == 200
    assert record["image_shape"] == [28, 28, 1] and record["num_classes"] == 4
    assert record["hyperparameters"] == {"filters": [8, 16], "feature_dim": 32, "epochs": 3,
                                         "batch_size": 16, "learning_rate": 1e-3, "seed": 0}
    assert len(record["weights_sha256"]) == 64 and len(record["train_data_sha256"]) == 64
    assert record["directory"] == os.path.join(cache_dir, "toy-" + record["key"])
    with open(os.path.join(record["directory"], "record.json")) as f:
        stored = json.load(f)
    assert stored == record
    json.dumps(record)                                              # JSON-ready
    record["dataset"] = "changed"
    assert network.record["dataset"] == "toy"                       # a copy


def test_second_call_reads_the_cache(cached, data):
    cache_dir, network = cached
    weights = os.path.join(network.record["directory"], "classifier.weights.h5")
    mtime = os.stat(weights).st_mtime_ns
    again = fn.load_or_train("toy", *data, cache_dir=cache_dir, **TINY)
    assert again.from_cache
    assert again.record == network.record
    assert os.stat(weights).st_mtime_ns == mtime
    assert sorted(os.listdir(cache_dir)) == ["toy-" + network.record["key"]]
    x_val = data[2]
    np.testing.assert_array_equal(again.features(x_val), network.features(x_val))


def test_the_cache_directory_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TFDGM_CACHE_DIR", str(tmp_path))
    assert fn.default_cache_dir() == os.path.join(str(tmp_path), "feature_networks")
    monkeypatch.delenv("TFDGM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fn.default_cache_dir() == os.path.join(str(tmp_path), "xdg", "tfdgm",
                                                  "feature_networks")


def test_changed_data_or_settings_give_new_keys(cached, data):
    cache_dir, network = cached
    x_train, y_train, x_val, y_val = data
    key = network.record["key"]
    assert fn.cache_key("toy", *data, **TINY) == key
    changed_image = x_train.copy()
    changed_image[0, 0, 0, 0] = 1. - changed_image[0, 0, 0, 0]
    changed_labels = y_train.copy()
    changed_labels[0] = (changed_labels[0] + 1) % 4
    variants = [
        ("toy", (changed_image, y_train, x_val, y_val), TINY),
        ("toy", (x_train, changed_labels, x_val, y_val), TINY),
        ("toy", (x_train, y_train, x_val[1:], y_val[1:]), TINY),
        ("other", data, TINY),
        ("toy", data, dict(TINY, epochs=4)),
        ("toy", data, dict(TINY, seed=1)),
        ("toy", data, dict(TINY, filters=(8, 8))),
        ("toy", data, dict(TINY, num_classes=5)),
    ]
    keys = {fn.cache_key(name, *arrays, **settings)
            for name, arrays, settings in variants}
    assert len(keys) == len(variants) and key not in keys
    # A changed dataset is trained afresh into a second entry; the first one stays.
    other = fn.load_or_train("toy", changed_image, y_train, x_val, y_val, cache_dir=cache_dir,
                             **TINY)
    assert not other.from_cache
    assert other.record["key"] == fn.cache_key("toy", changed_image, y_train, x_val, y_val,
                                               **TINY)
    assert sorted(os.listdir(cache_dir)) == sorted(["toy-" + key, "toy-" + other.record["key"]])


def test_training_is_reproducible_from_the_seed(cached, data):
    _, network = cached
    again = fn.train_feature_network(*data, name="toy", **TINY)
    assert again.record["weights_sha256"] == network.record["weights_sha256"]
    other_seed = fn.train_feature_network(*data, name="toy", seed=1, **TINY)
    assert other_seed.record["weights_sha256"] != network.record["weights_sha256"]


def test_a_failed_write_leaves_no_entry(data, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing the record")

    monkeypatch.setattr(fn.json, "dump", fail)
    with pytest.raises(KeyboardInterrupt):
        fn.load_or_train("toy", *data, cache_dir=str(tmp_path), **QUICK)
    assert os.listdir(tmp_path) == []                              # no entry, no staging
    monkeypatch.undo()
    network = fn.load_or_train("toy", *data, cache_dir=str(tmp_path), **QUICK)
    assert not network.from_cache and os.listdir(tmp_path) == ["toy-" + network.record["key"]]


def test_corrupt_entry_is_refused(cached, data, tmp_path):
    _, network = cached
    entry = tmp_path / "copy"
    assert network.save(str(entry))
    assert not network.save(str(entry))                           # already there: kept
    assert fn.FeatureNetwork.load(str(entry)).record["weights_sha256"] == \
        network.record["weights_sha256"]
    record = json.loads((entry / "record.json").read_text())
    record["weights_sha256"] = "0" * 64
    (entry / "record.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="corrupt"):
        fn.FeatureNetwork.load(str(entry))
    with pytest.raises(DataError, match="not a feature network"):
        fn.FeatureNetwork.load(str(tmp_path))


def test_malformed_inputs_raise(cached, data):
    _, network = cached
    x_train, y_train, x_val, y_val = data
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        network.features(2. * x_val - 1.)                            # [-1, 1] images
    with pytest.raises(DataError, match="shape"):
        network.features(x_val[:, :14])
    with pytest.raises(DataError):
        network.features((255 * x_val).astype(np.uint8))
    with pytest.raises(DataError):
        fn.train_feature_network(x_train, y_train[:-1], x_val, y_val)
    with pytest.raises(DataError):
        fn.train_feature_network(x_train, y_train, x_val, y_val, num_classes=3)
