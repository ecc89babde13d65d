"""The decoded-array cache of `tfdgm.data.pipeline.stored_array`: a later process loads the
`.npy` beside the prepared records instead of decoding them, gets the same array, and a cache it
cannot read or write only costs the decoding."""

import os

import numpy as np
import pytest

from tfdgm.config import DataConfig
from tfdgm.data import mnist5k, pipeline


@pytest.fixture
def prepared(tmp_path, offline):
    folder = str(tmp_path / "tfds")
    spec = mnist5k.Mnist5kDataset()
    spec.prepare(folder)
    return spec, folder


def _fresh_process():
    """What a new process sees: nothing decoded in memory yet."""
    pipeline._STORED_ARRAYS.clear()


def _without_decoding(monkeypatch, spec):
    def refuse(*args, **kwargs):
        raise AssertionError("the records were decoded again")
    monkeypatch.setattr(spec, "as_dataset", refuse)


def test_a_later_process_loads_the_saved_array_instead_of_decoding(prepared, monkeypatch):
    spec, folder = prepared
    config = DataConfig(name="mnist5k")
    _fresh_process()
    decoded = pipeline.stored_array(spec, "validation", config, folder)
    path = spec.array_cache_path("validation", folder)
    assert os.path.isfile(path) and path.startswith(folder)
    assert decoded.shape == (500, 28, 28, 1) and decoded.dtype == np.uint8
    _fresh_process()
    _without_decoding(monkeypatch, spec)
    loaded = pipeline.stored_array(spec, "validation", config, folder)
    np.testing.assert_array_equal(loaded, decoded)
    assert loaded.dtype == np.uint8 and not loaded.flags.writeable


def test_each_cap_has_its_own_file_and_a_damaged_file_is_decoded_again(prepared, monkeypatch):
    spec, folder = prepared
    _fresh_process()
    whole = pipeline.stored_array(spec, "test", DataConfig(name="mnist5k"), folder)
    first = pipeline.stored_array(spec, "test", DataConfig(name="mnist5k", max_examples=30),
                                  folder)
    np.testing.assert_array_equal(first, whole[:30])
    capped = spec.array_cache_path("test", folder, 30)
    assert capped != spec.array_cache_path("test", folder) and os.path.isfile(capped)
    with open(capped, "wb") as file:  # a torn write
        file.write(b"\x93NUMPY")
    _fresh_process()
    again = pipeline.stored_array(spec, "test", DataConfig(name="mnist5k", max_examples=30),
                                  folder)
    np.testing.assert_array_equal(again, whole[:30])
    _fresh_process()
    _without_decoding(monkeypatch, spec)  # and the damaged file was replaced by a good one
    np.testing.assert_array_equal(
        pipeline.stored_array(spec, "test", DataConfig(name="mnist5k", max_examples=30), folder),
        whole[:30])


def test_a_cache_folder_that_cannot_be_made_only_costs_the_decoding(prepared):
    spec, folder = prepared
    cache_folder = os.path.dirname(spec.array_cache_path("train", folder))
    with open(cache_folder, "w"):  # a file where the folder would go: makedirs fails (even as root)
        pass
    _fresh_process()
    train = pipeline.stored_array(spec, "train", DataConfig(name="mnist5k"), folder)
    assert train.shape == (4000, 28, 28, 1)
    assert os.path.isfile(cache_folder) and not any(
        name.endswith(".tmp") for name in os.listdir(os.path.dirname(cache_folder)))


def test_generated_points_have_no_file():
    from tfdgm.registry import DATASETS
    spec = DATASETS.get("ring_of_gaussians")()
    assert spec.array_cache_path("train") is None
    _fresh_process()
    points = pipeline.stored_array(spec, "train", DataConfig(name="ring_of_gaussians"), None)
    assert points.dtype == np.float32 and points.shape[1] == 2
