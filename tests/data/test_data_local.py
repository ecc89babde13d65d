"""Local-file datasets (`static_mnist`, `frey_faces`) and the catalog `binarized_mnist`.

Everything here runs on small generated files in `tmp_path`, offline, with sockets and TFDS's GCS
helpers made to fail the test if touched. The benchmark copies under ../shared/data are only used
by the last tests, which are skipped (saying why) where they are absent.
"""

import contextlib
import os
import socket
import sys
import types

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from tfdgm.config import DataConfig
from tfdgm.data import frey_faces, load_datasets, load_images, static_mnist
from tfdgm.data.spec import SPLITS
from tfdgm.errors import DataError

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


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


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("TFDGM_DATA_DIR", raising=False)


def binary_images(rng, n):
    return rng.integers(0, 2, size=(n, 784), dtype=np.uint8)


@pytest.fixture(scope="module")
def static_source(tmp_path_factory):
    """A tiny binarized_mnist.npz: 30 / 10 / 12 random binary images."""
    folder = tmp_path_factory.mktemp("static_source")
    rng = np.random.default_rng(1)
    arrays = {"x_train": binary_images(rng, 30), "x_valid": binary_images(rng, 10),
              "x_test": binary_images(rng, 12)}
    np.savez(folder / "binarized_mnist.npz", **arrays)
    return str(folder), arrays


@pytest.fixture(scope="module")
def static_prepared(static_source, tmp_path_factory):
    """`static_mnist` prepared (offline) into a fresh TFDS data dir."""
    folder, arrays = static_source
    tfds_dir = str(tmp_path_factory.mktemp("tfds_static"))
    with no_network():
        static_mnist.StaticMnistDataset(folder).prepare(tfds_dir)
    return folder, arrays, tfds_dir


def test_static_mnist_from_local_npz(static_prepared):
    folder, arrays, tfds_dir = static_prepared
    config = DataConfig(name="static_mnist", data_dir=folder, batch_size=10, eval_batch_size=4)
    with no_network():
        data = load_datasets(config, seed=0, tfds_data_dir=tfds_dir)
    assert data.info.kind == "binary" and data.info.image_shape == (28, 28, 1)
    assert data.info.num_examples == {"train": 30, "validation": 10, "test": 12}
    train = list(data.train.as_numpy_iterator())
    assert len(train) == 3 and all(b.shape == (10, 28, 28, 1) for b in train)
    assert all(b.dtype == np.float32 for b in train)
    # Training batches hold the training images, shuffled.
    got = np.concatenate(train).reshape(30, 784)
    want = arrays["x_train"].astype(np.float32)
    assert sorted(map(bytes, got.astype(np.uint8))) == sorted(map(bytes, want.astype(np.uint8)))
    # Evaluation splits keep the file order and the last partial batch.
    test = list(data.test.as_numpy_iterator())
    assert [b.shape[0] for b in test] == [4, 4, 4]
    np.testing.assert_array_equal(np.concatenate(test).reshape(12, 784), arrays["x_test"])
    np.testing.assert_array_equal(load_images(config, "validation", tfds_dir).reshape(10, 784),
                                  arrays["x_valid"])


def test_prepared_dataset_needs_no_source_file(static_prepared):
    """Once prepared, the TFDS copy is used; the manual dir is read only to prepare."""
    _, arrays, tfds_dir = static_prepared
    images = load_images(DataConfig(name="static_mnist", data_dir="/nonexistent"), "test",
                         tfds_dir)
    np.testing.assert_array_equal(images.reshape(12, 784), arrays["x_test"])


def test_static_mnist_is_a_real_tfds_dataset(static_prepared):
    _, _, tfds_dir = static_prepared
    builder = tfds.builder("static_mnist", data_dir=tfds_dir)
    assert isinstance(builder, static_mnist.StaticMnist)
    assert builder.info.splits["validation"].num_examples == 10
    assert builder.info.features["image"].shape == (28, 28, 1)


def test_static_mnist_reads_env_and_other_layouts(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    source = tmp_path / "source"
    source.mkdir()
    # (N, 28, 28) arrays, found through TFDGM_DATA_DIR.
    np.savez(source / "binarized_mnist.npz",
             **{key: binary_images(rng, 8).reshape(8, 28, 28) for key in
                ("x_train", "x_valid", "x_test")})
    monkeypatch.setenv("TFDGM_DATA_DIR", str(source))
    config = DataConfig(name="static_mnist", batch_size=4)
    with no_network():
        data = load_datasets(config, seed=0, tfds_data_dir=str(tmp_path / "tfds"))
    assert data.info.num_examples == {"train": 8, "validation": 8, "test": 8}
    # The original .amat text files.
    amat = tmp_path / "amat"
    amat.mkdir()
    want = {}
    for split, name in static_mnist.AMAT_FILES.items():
        want[split] = binary_images(rng, 3)
        np.savetxt(amat / name, want[split], fmt="%d")
    images = static_mnist.load_source(str(amat))
    for split in SPLITS:
        np.testing.assert_array_equal(images[split].reshape(3, 784), want[split])


def assert_names_file_and_fix(message, filename):
    assert filename in message
    assert "data.data_dir" in message and "TFDGM_DATA_DIR" in message


def test_static_mnist_missing_file(tmp_path):
    tfds_dir = str(tmp_path / "tfds")
    empty = tmp_path / "empty"
    empty.mkdir()
    with no_network(), pytest.raises(DataError) as error:
        load_datasets(DataConfig(name="static_mnist", data_dir=str(empty)), 0, tfds_dir)
    message = str(error.value)
    assert_names_file_and_fix(message, os.path.join(str(empty), "binarized_mnist.npz"))
    assert "data.name=binarized_mnist" in message and "TFDS catalog" in message
    # No folder configured at all.
    with no_network(), pytest.raises(DataError, match="neither data.data_dir nor TFDGM_DATA_DIR"):
        load_datasets(DataConfig(name="static_mnist"), 0, tfds_dir)
    assert not os.path.exists(os.path.join(tfds_dir, "static_mnist", "1.0.0"))


@pytest.mark.parametrize("arrays, match", [
        ({"x_train": np.zeros((2, 784), np.uint8)}, "no key.*x_valid, x_test"),
        ({k: np.full((2, 784), 7, np.uint8) for k in ("x_train", "x_valid", "x_test")},
         r"pixels in \{0, 1\}"),
        ({k: np.zeros((2, 100), np.uint8) for k in ("x_train", "x_valid", "x_test")},
         r"shape \(N, 784\)"),
])
def test_static_mnist_malformed_file(tmp_path, arrays, match):
    np.savez(tmp_path / "binarized_mnist.npz", **arrays)
    with pytest.raises(DataError, match=match):
        static_mnist.load_source(str(tmp_path))


@pytest.fixture(scope="module")
def frey_source(tmp_path_factory):
    """A tiny frey_faces.npz with 50 random grey 28x20 images."""
    folder = tmp_path_factory.mktemp("frey_source")
    x = np.random.default_rng(3).integers(0, 256, size=(50, 28, 20), dtype=np.uint8)
    np.savez(folder / "frey_faces.npz", x=x)
    return str(folder), x


def test_frey_faces_from_local_npz(frey_source, tmp_path):
    folder, x = frey_source
    config = DataConfig(name="frey_faces", data_dir=folder, batch_size=8, eval_batch_size=3)
    with no_network():
        data = load_datasets(config, seed=0, tfds_data_dir=str(tmp_path))
    assert data.info.image_shape == (28, 20, 1) and data.info.kind == "grey"
    assert data.info.num_examples == {"train": 40, "validation": 5, "test": 5}
    batches = list(data.train.as_numpy_iterator())
    assert len(batches) == 5 and all(b.shape == (8, 28, 20, 1) for b in batches)
    values = np.concatenate(batches)
    assert values.min() >= 0 and values.max() <= 1
    np.testing.assert_array_equal(np.round(values * 255) / 255, values)
    # The splits are the documented seed-0 permutation of the source.
    indices = frey_faces.split_indices(50)
    for split in SPLITS:
        images = load_images(config, split, str(tmp_path))
        np.testing.assert_array_equal(np.round(images[..., 0] * 255), x[indices[split]])


def test_frey_faces_split_is_fixed():
    indices = frey_faces.split_indices(1965)
    assert {k: len(v) for k, v in indices.items()} == {"train": 1565, "validation": 200,
                                                       "test": 200}
    assert sorted(np.concatenate(list(indices.values()))) == list(range(1965))
    np.testing.assert_array_equal(indices["test"][:5], [1485, 598, 1020, 139, 749])


def test_frey_faces_from_roweis_mat(tmp_path):
    x = np.random.default_rng(4).integers(0, 256, size=(6, 28, 20), dtype=np.uint8)
    # frey_rawface.mat stores one image per column: ff is (560, N).
    scipy.io.savemat(tmp_path / "frey_rawface.mat", {"ff": x.reshape(6, 560).T})
    np.testing.assert_array_equal(frey_faces.load_source(str(tmp_path))[..., 0], x)


def test_frey_faces_missing_file(tmp_path):
    with no_network(), pytest.raises(DataError) as error:
        load_datasets(DataConfig(name="frey_faces", data_dir=str(tmp_path)), 0,
                      str(tmp_path / "tfds"))
    assert_names_file_and_fix(str(error.value), os.path.join(str(tmp_path), "frey_faces.npz"))


def test_binarized_mnist_download_failure_is_a_data_error(tmp_path, monkeypatch):
    """No download is attempted: TFDS's download step is replaced by one that fails."""
    def fail(self, **kwargs):
        raise ConnectionError("Temporary failure in name resolution")
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    monkeypatch.setitem(sys.modules, "importlib_resources", types.ModuleType("stand_in"))
    with no_network(), pytest.raises(DataError) as error:
        load_datasets(DataConfig(name="binarized_mnist"), 0, str(tmp_path))
    message = str(error.value)
    assert "name resolution" in message and "data.name=static_mnist" in message
    assert "binarized_mnist.npz" in message
    # TFDS 4.9.10 cannot download without importlib_resources: say so.
    monkeypatch.setitem(sys.modules, "importlib_resources", None)
    with no_network(), pytest.raises(DataError, match="pip install importlib_resources"):
        load_datasets(DataConfig(name="binarized_mnist"), 0, str(tmp_path))


def shared_file(name):
    path = os.path.normpath(os.path.join(SHARED_DATA, name))
    if not os.path.isfile(path):
        pytest.skip(f"optional benchmark file {path} is absent (see ../shared/data/README.md); "
                    f"the tests above cover the same code on generated files")
    return path


def test_shared_binarized_mnist_file_is_readable():
    folder = os.path.dirname(shared_file("binarized_mnist.npz"))
    images = static_mnist.load_source(folder)
    assert {k: v.shape[0] for k, v in images.items()} == {"train": 50000, "validation": 10000,
                                                          "test": 10000}


def test_shared_frey_faces(tmp_path):
    folder = os.path.dirname(shared_file("frey_faces.npz"))
    config = DataConfig(name="frey_faces", data_dir=folder, eval_batch_size=1000)
    with no_network():
        data = load_datasets(config, seed=0, tfds_data_dir=str(tmp_path))
    assert data.info.num_examples == {"train": 1565, "validation": 200, "test": 200}
    assert next(iter(data.test)).shape == (200, 28, 20, 1)
