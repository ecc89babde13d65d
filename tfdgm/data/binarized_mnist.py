"""`binarized_mnist`: TFDS's catalog copy of the Larochelle & Murray (2011) static binarization.

The same 50000 / 10000 / 10000 binarized MNIST images as `static_mnist`, but prepared by TFDS's
own `binarized_mnist` builder, which downloads the `.amat` files from
http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/ the first time (internet
needed; later runs read the prepared copy in the TFDS data dir). With `data.data_dir` set, TFDS
also accepts byte-identical copies of the three `.amat` files there (its manual directory).

Without internet, use `static_mnist` with a local `binarized_mnist.npz`.
"""

from typing import Optional

import tensorflow_datasets as tfds

from tfdgm.data.spec import DatasetSpec, no_gcs_download_config
from tfdgm.data.static_mnist import _CITATION
from tfdgm.errors import DataError
from tfdgm.registry import DATASETS

FIX = ("without internet access use data.name=static_mnist with data.data_dir (or "
       "TFDGM_DATA_DIR) set to the folder holding binarized_mnist.npz.")


@DATASETS.register("binarized_mnist")
class BinarizedMnistDataset(DatasetSpec):
    """`binarized_mnist`: the TFDS catalog dataset (downloads once), 28x28x1 binary."""

    name = "binarized_mnist"
    image_shape = (28, 28, 1)
    kind = "binary"
    num_examples = {"train": 50000, "validation": 10000, "test": 10000}
    description = ("MNIST with the static binarization of Larochelle & Murray (2011), "
                   "50000 / 10000 / 10000, from the TFDS catalog (downloads on first use).")
    citation = _CITATION

    def builder(self, tfds_data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
        try:
            return tfds.builder("binarized_mnist", data_dir=tfds_data_dir, try_gcs=False)
        except Exception as error:  # TFDS raises many kinds; all mean the same to the user.
            raise DataError(f"dataset 'binarized_mnist': TFDS cannot open its builder "
                            f"({error!r}). Fix: {FIX}") from error

    def _download_and_prepare(self, builder: tfds.core.DatasetBuilder) -> None:
        try:
            import importlib_resources  # noqa: F401
        except ImportError as error:
            # TFDS 4.9.10 imports it to find the builder's checksums (declared for Python < 3.9
            # only), so downloading fails without it; see tfdgm.data.spec.
            raise DataError("dataset 'binarized_mnist': TFDS 4.9 needs the package "
                            "importlib_resources to download catalog datasets "
                            "(pip install importlib_resources). Or " + FIX) from error
        try:
            builder.download_and_prepare(download_config=no_gcs_download_config(self.data_dir))
        except Exception as error:  # Network, DNS, SSL, checksum, disk: one message for all.
            raise DataError(f"dataset 'binarized_mnist': TFDS could not download and prepare "
                            f"it into '{builder.data_dir_root}' ({type(error).__name__}: "
                            f"{error}). Fix: {FIX}") from error
