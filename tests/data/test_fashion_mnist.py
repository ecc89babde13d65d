"""`fashion_mnist` from idx files (generated here), its split, labels and error messages.

The source files are small generated idx files in `tmp_path`; TFDS prepares them offline. The
Debian package's real files are read only by the last test, skipped where they are absent.
"""

import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfdgm.config import DataConfig
from tfdgm.data import fashion_mnist, load_datasets, load_images, load_labelled
from tfdgm.data.fashion_mnist import FILES, read_idx, write_idx
from tfdgm.errors import DataError
from tfdgm.registry import DATASETS

NUM_TRAIN_FILE, NUM_TEST = 36, 10  # validation: round(36 / 12) = 3, the last 3 of the file


@pytest.fixture(autouse=True)
def _no_system_copy(monkeypatch, tmp_path_factory):
    """Tests see no Debian copy (unless they put one there) and no TFDGM_DATA_DIR."""
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (str(tmp_path_factory.mktemp("none")),))
    monkeypatch.delenv("TFDGM_DATA_DIR", raising=False)


def write_source(folder, seed=0, gzipped=("train_images", "test_images")):
    """Random idx files as Fashion-MNIST lays them out; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {"train_images": rng.integers(0, 256, (NUM_TRAIN_FILE, 28, 28), np.uint8),
              "train_labels": rng.integers(0, 10, NUM_TRAIN_FILE).astype(np.uint8),
              "test_images": rng.integers(0, 256, (NUM_TEST, 28, 28), np.uint8),
              "test_labels": rng.integers(0, 10, NUM_TEST).astype(np.uint8)}
    for role, array in arrays.items():
        write_idx(os.path.join(folder, FILES[role] + (".gz" if role in gzipped else "")), array)
    return arrays


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, offline_module):
    folder = str(tmp_path_factory.mktemp("fashion_source"))
    arrays = write_source(folder)
    tfds_dir = str(tmp_path_factory.mktemp("tfds_fashion"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fashion_mnist, "SYSTEM_DIRS", ())
        fashion_mnist.FashionMnistDataset(folder).prepare(tfds_dir)
    return folder, arrays, tfds_dir


def test_idx_round_trip_and_header(tmp_path):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    for name in ("plain-idx3-ubyte", "zipped-idx3-ubyte.gz"):
        write_idx(str(tmp_path / name), array)
        np.testing.assert_array_equal(read_idx(str(tmp_path / name)), array)
    # The header is the idx magic 0x00000803 then big-endian sizes (what MNIST's files hold).
    raw = (tmp_path / "plain-idx3-ubyte").read_bytes()
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5])
    assert gzip.decompress((tmp_path / "zipped-idx3-ubyte.gz").read_bytes()) == raw


@pytest.mark.parametrize("raw, match", [
        (b"\x12\x34\x08\x01\0\0\0\x01\x07", "bad magic"),
        (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0\0\0\0", r"unsigned bytes"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "needs 5 bytes of data; the file has 2"),
])
def test_malformed_idx_is_a_data_error(tmp_path, raw, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=match):
        read_idx(str(path))


def test_splits_are_the_documented_ones(prepared, offline):
    folder, arrays, tfds_dir = prepared
    builder = tfds.builder("tfdgm_fashion_mnist", data_dir=tfds_dir)
    assert isinstance(builder, fashion_mnist.FashionMnist)
    assert builder.info.features["label"].names[9] == "Ankle boot"
    config = DataConfig(name="fashion_mnist", data_dir=folder, batch_size=11, eval_batch_size=2)
    cut = NUM_TRAIN_FILE - 3
    want = {"train": (arrays["train_images"][:cut], arrays["train_labels"][:cut]),
            "validation": (arrays["train_images"][cut:], arrays["train_labels"][cut:]),
            "test": (arrays["test_images"], arrays["test_labels"])}
    for split, (images, labels) in want.items():
        x, y = load_labelled(config, split, tfds_dir)
        assert x.dtype == np.float32 and x.shape == images.shape + (1,)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(np.round(x[..., 0] * 255), images)
        np.testing.assert_array_equal(y, labels)
        np.testing.assert_array_equal(load_images(config, split, tfds_dir), x)
    data = load_datasets(config, seed=0, tfds_data_dir=tfds_dir, initial_epoch=0)
    assert data.info.num_examples == {"train": 33, "validation": 3, "test": 10}
    assert data.info.has_labels and data.info.num_classes == 10 and data.steps_per_epoch == 3
    batch = next(iter(data.train))
    assert batch.shape == (11, 28, 28, 1)  # images only, no labels


def test_max_examples_caps_labels_too(prepared, offline):
    folder, arrays, tfds_dir = prepared
    x, y = load_labelled(DataConfig(name="fashion_mnist", data_dir=folder, max_examples=4,
                                    binarize="threshold"), "test", tfds_dir)
    assert x.shape == (4, 28, 28, 1) and y.shape == (4,)
    np.testing.assert_array_equal(x[..., 0], (arrays["test_images"][:4] > 127.5))
    np.testing.assert_array_equal(y, arrays["test_labels"][:4])


def test_falls_back_to_the_system_folder(tmp_path, monkeypatch, offline):
    """With nothing in data.data_dir, the files of Debian's package folder are used."""
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    system.mkdir()
    arrays = write_source(str(system), seed=1, gzipped=tuple(FILES))  # Debian gzips all four
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (str(system),))
    empty = tmp_path / "empty"
    empty.mkdir()
    for data_dir in (None, str(empty)):
        tfds_dir = str(tmp_path / f"tfds_{data_dir is None}")
        _, y = load_labelled(DataConfig(name="fashion_mnist", data_dir=data_dir), "test",
                             tfds_dir)
        np.testing.assert_array_equal(y, arrays["test_labels"])


def test_missing_files_name_every_fix(tmp_path, offline):
    (tmp_path / FILES["train_images"]).write_bytes(b"")  # one of four is not enough
    with pytest.raises(DataError) as error:
        load_datasets(DataConfig(name="fashion_mnist", data_dir=str(tmp_path)), 0,
                      str(tmp_path / "tfds"))
    message = str(error.value)
    assert str(tmp_path) in message and fashion_mnist.SYSTEM_DIRS[0] in message
    for fix in ("apt-get install dataset-fashion-mnist", "data.data_dir", "TFDGM_DATA_DIR",
                "t10k-labels-idx1-ubyte", "data.name=fashion_mnist_tfds"):
        assert fix in message
    assert not os.path.exists(tmp_path / "tfds" / "tfdgm_fashion_mnist" / "1.0.0")
    with pytest.raises(DataError, match="data.data_dir and TFDGM_DATA_DIR are not set"):
        load_labelled(DataConfig(name="fashion_mnist"), "test", str(tmp_path / "tfds"))


def test_mismatched_labels_are_a_data_error(tmp_path):
    write_source(str(tmp_path))
    write_idx(str(tmp_path / FILES["test_labels"]), np.zeros(NUM_TEST - 1, np.uint8))
    with pytest.raises(DataError, match=f"expected {NUM_TEST} labels"):
        fashion_mnist.load_source(str(tmp_path))


def test_catalog_variant_reads_the_same_split_from_tfds():
    spec = DATASETS.get("fashion_mnist_tfds")
    assert spec.has_labels and spec.num_examples == DATASETS.get("fashion_mnist").num_examples
    assert [spec.tfds_split(s) for s in ("train", "validation", "test")] == [
            "train[:55000]", "train[55000:]", "test"]
    assert spec.tfds_name == "fashion_mnist" and "data.name=fashion_mnist " in spec.fix


def test_debian_files_when_installed():
    folder = fashion_mnist.DEBIAN_DIR
    if not os.path.isfile(os.path.join(folder, FILES["test_labels"] + ".gz")):
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({folder} is absent); the "
                    f"tests above cover the same code on generated files")
    labels = read_idx(os.path.join(folder, FILES["test_labels"] + ".gz"))
    assert labels.shape == (10000,) and np.all(np.bincount(labels) == 1000)
    assert num_train_file_images(folder) == 60000


def num_train_file_images(folder):
    with gzip.open(os.path.join(folder, FILES["train_images"] + ".gz")) as f:
        header = f.read(16)
    return int.from_bytes(header[4:8], "big")
