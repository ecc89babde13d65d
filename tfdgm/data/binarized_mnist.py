"""`binarized_mnist`: TFDS's catalog copy of the Larochelle & Murray (2011) static binarization.

The same 50000 / 10000 / 10000 binarized MNIST images as `static_mnist`, but prepared by TFDS's
own `binarized_mnist` builder, which downloads the `.amat` files from
http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/ the first time (internet
needed; later runs read the prepared copy in the TFDS data dir). With `data.data_dir` set, TFDS
also accepts byte-identical copies of the three `.amat` files there (its manual directory).

Without internet, use `static_mnist` with a local `binarized_mnist.npz`.
"""

from tfdgm.data.spec import CatalogSpec
from tfdgm.data.static_mnist import _CITATION
from tfdgm.registry import DATASETS

FIX = ("without internet access use data.name=static_mnist with data.data_dir (or "
       "TFDGM_DATA_DIR) set to the folder holding binarized_mnist.npz.")


@DATASETS.register("binarized_mnist")
class BinarizedMnistDataset(CatalogSpec):
    """`binarized_mnist`: the TFDS catalog dataset (downloads once), 28x28x1 binary.

    ```python
    spec = BinarizedMnistDataset()
    images = spec.as_dataset("test")   # downloads on first use
    ```
    """

    name = "binarized_mnist"
    image_shape = (28, 28, 1)
    kind = "binary"
    num_examples = {"train": 50000, "validation": 10000, "test": 10000}
    description = ("MNIST with the static binarization of Larochelle & Murray (2011), "
                   "50000 / 10000 / 10000, from the TFDS catalog (downloads on first use).")
    citation = _CITATION
    tfds_name = "binarized_mnist"
    fix = FIX
