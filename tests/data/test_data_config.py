"""Dataset registry and `dataset_info`: config validation that reads no data."""

import pytest

from tfdgm.config import DataConfig
from tfdgm.data import dataset_info, load_datasets, load_labelled
from tfdgm.data.spec import KINDS, DatasetSpec
from tfdgm.errors import ConfigError, DataError
from tfdgm.registry import DATASETS

EXPECTED = {
        "mnist5k": ((28, 28, 1), "grey", {"train": 4000, "validation": 500, "test": 500}),
        "static_mnist": ((28, 28, 1), "binary",
                         {"train": 50000, "validation": 10000, "test": 10000}),
        "binarized_mnist": ((28, 28, 1), "binary",
                            {"train": 50000, "validation": 10000, "test": 10000}),
        "frey_faces": ((28, 20, 1), "grey", {"train": 1565, "validation": 200, "test": 200}),
        "fashion_mnist": ((28, 28, 1), "grey",
                          {"train": 55000, "validation": 5000, "test": 10000}),
        "fashion_mnist_tfds": ((28, 28, 1), "grey",
                               {"train": 55000, "validation": 5000, "test": 10000}),
        "ring_of_gaussians": ((2,), "points", {"train": 50000, "validation": 5000, "test": 5000}),
}
LABELLED = {"mnist5k": 10, "fashion_mnist": 10, "fashion_mnist_tfds": 10,
            "ring_of_gaussians": 8}


@pytest.fixture
def no_loading(monkeypatch):
    """Makes any attempt to build, prepare or read a dataset fail the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("dataset_info must not touch data")
    monkeypatch.setattr(DatasetSpec, "builder", refuse)
    monkeypatch.setattr(DatasetSpec, "prepare", refuse)
    monkeypatch.setattr(DatasetSpec, "as_dataset", refuse)
    monkeypatch.delenv("TFDGM_DATA_DIR", raising=False)


def test_registered_specs_describe_themselves():
    assert set(EXPECTED) <= set(DATASETS.names())
    for name, (shape, kind, counts) in EXPECTED.items():
        spec = DATASETS.get(name)
        assert issubclass(spec, DatasetSpec)
        assert spec.image_shape == shape and spec.kind == kind and spec.kind in KINDS
        assert dict(spec.num_examples) == counts
        assert len(spec.description) > 40 and spec.citation.startswith("@")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_info_without_loading(name, no_loading):
    shape, kind, counts = EXPECTED[name]
    info = dataset_info(DataConfig(name=name))
    assert (info.name, info.image_shape, info.kind, info.num_examples) == (name, shape, kind,
                                                                           counts)
    assert info.event_shape == shape
    assert (info.has_labels, info.num_classes) == ((True, LABELLED[name]) if name in LABELLED
                                                   else (False, None))
    assert DATASETS.get(name).has_labels == info.has_labels


@pytest.mark.parametrize("name", ["static_mnist", "frey_faces", "checkerboard"])
def test_labels_of_unlabelled_data_are_a_data_error(name, no_loading):
    with pytest.raises(DataError, match=f"'{name}' has no labels; datasets with labels are "
                                        f".*fashion_mnist.*mnist5k"):
        load_labelled(DataConfig(name=name), "train")


def test_resumption_arguments_are_checked(no_loading):
    config = DataConfig(name="mnist5k")
    with pytest.raises(ConfigError, match="initial_epoch or initial_step, not both"):
        load_datasets(config, seed=0, initial_epoch=1, initial_step=4)
    with pytest.raises(ConfigError, match="initial_epoch must be >= 0"):
        load_datasets(config, seed=0, initial_epoch=-1)


def test_dataset_info_binarized_grey_is_binary_and_capped(no_loading):
    for binarize in ("dynamic", "threshold"):
        info = dataset_info(DataConfig(name="frey_faces", binarize=binarize, max_examples=300,
                                       batch_size=50))
        assert info.kind == "binary"
        assert info.num_examples == {"train": 300, "validation": 200, "test": 200}


def test_unknown_dataset_lists_registered_names(no_loading):
    with pytest.raises(ConfigError, match="unknown dataset 'mnist5'.*Did you mean 'mnist5k'") \
            as error:
        dataset_info(DataConfig(name="mnist5"))
    for name in EXPECTED:
        assert name in str(error.value)


@pytest.mark.parametrize("name", ["static_mnist", "binarized_mnist"])
@pytest.mark.parametrize("binarize", ["dynamic", "threshold"])
def test_binarizing_binary_data_is_a_config_error(name, binarize, no_loading, tmp_path):
    config = DataConfig(name=name, binarize=binarize)
    with pytest.raises(ConfigError, match="already binary.*data.binarize: none"):
        dataset_info(config)
    with pytest.raises(ConfigError, match="already binary"):
        load_datasets(config, seed=0, tfds_data_dir=str(tmp_path))


@pytest.mark.parametrize("options, match", [
        ({"batch_size": 0}, "data.batch_size"),
        ({"eval_batch_size": 0}, "data.eval_batch_size"),
        ({"shuffle_buffer": 0}, "data.shuffle_buffer"),
        ({"max_examples": 0}, "data.max_examples"),
        ({"binarize": "sometimes"}, "data.binarize"),
        ({"max_examples": 50, "batch_size": 100}, "data.batch_size: 100 is more than the 50"),
])
def test_bad_data_options_are_config_errors(options, match, no_loading):
    with pytest.raises(ConfigError, match=match):
        dataset_info(DataConfig(name="mnist5k", **options))
