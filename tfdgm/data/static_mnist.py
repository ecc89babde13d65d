"""`static_mnist`: the fixed binarization of MNIST of Larochelle & Murray (2011), from a local file.

Larochelle & Murray (2011) sampled every MNIST (LeCun et al. 1998) grey image once as Bernoulli
pixels with the grey level as probability and published the result as
`binarized_mnist_{train,valid,test}.amat` (50000 / 10000 / 10000 images, 28x28, {0, 1}). It is the
"statically binarized MNIST" benchmark of IWAE (Burda et al. 2016), IAF (Kingma et al. 2016),
VampPrior (Tomczak & Welling 2018) and Sylvester flows (van den Berg et al. 2018); TFDS's catalog
dataset `binarized_mnist` downloads the same files (see `tfdgm.data.binarized_mnist`).

This builder prepares the data offline from a local copy in the manual directory
(`data.data_dir`, else `$TFDGM_DATA_DIR`; TFDS: `DownloadConfig(manual_dir=...)`):

* `binarized_mnist.npz` with keys `x_train`, `x_valid`, `x_test`, uint8 in {0, 1}, shape
  `(N, 784)` (or `(N, 28, 28)`), or
* the three original `binarized_mnist_{train,valid,test}.amat` text files.

Split order is the file order (the split is the published one; nothing is permuted).
"""

import os
import zipfile
from typing import Dict, Optional

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfdgm.data.spec import SPLITS, LocalBuilderSpec, missing_file_error
from tfdgm.errors import DataError
from tfdgm.registry import DATASETS

SOURCE_PATH = epath.Path(__file__)

NPZ_FILE = "binarized_mnist.npz"
NPZ_KEYS = {"train": "x_train", "validation": "x_valid", "test": "x_test"}
AMAT_FILES = {"train": "binarized_mnist_train.amat",
              "validation": "binarized_mnist_valid.amat",
              "test": "binarized_mnist_test.amat"}

FIX = ("set data.data_dir (or TFDGM_DATA_DIR) to the folder holding binarized_mnist.npz, or "
       "with internet access use data.name=binarized_mnist (the TFDS catalog dataset).")
CONTENTS = ("keys x_train, x_valid, x_test: uint8 in {0,1}, shape (N, 784); or the original "
            "binarized_mnist_{train,valid,test}.amat files")

_CITATION = """\
@inproceedings{larochelle2011nade,
  title={The Neural Autoregressive Distribution Estimator},
  author={Larochelle, Hugo and Murray, Iain},
  booktitle={Proceedings of the Fourteenth International Conference on Artificial Intelligence
             and Statistics (AISTATS)},
  pages={29--37}, year={2011}
}"""

_DESCRIPTION = (
        "MNIST (LeCun et al. 1998) with the fixed ('static') binarization of Larochelle & Murray "
        "(2011): 28x28 pixels in {0,1}, train 50000 / validation 10000 / test 10000, as used by "
        "IWAE, IAF, VampPrior and Sylvester flows. Prepared offline from a local "
        "binarized_mnist.npz (or the original .amat files).")

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Place {NPZ_FILE} ({CONTENTS}) in the manual directory
(tfdgm: data.data_dir or TFDGM_DATA_DIR; TFDS: --manual_dir). The .amat files are at
http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/ .
"""


def find_source(folder: Optional[str]) -> Dict[str, str]:
    """Split -> path of the source file in `folder`; a `DataError` names the file and the fix."""
    if folder:
        npz = os.path.join(folder, NPZ_FILE)
        if os.path.isfile(npz):
            return {split: npz for split in SPLITS}
        amat = {split: os.path.join(folder, name) for split, name in AMAT_FILES.items()}
        if all(os.path.isfile(path) for path in amat.values()):
            return amat
    raise missing_file_error("static_mnist", NPZ_FILE, folder, FIX, CONTENTS)


def _check_binary_images(array: np.ndarray, where: str) -> np.ndarray:
    """`array` `[N, 784]` or `[N, 28, 28]` with values in {0, 1} -> uint8 `[N, 28, 28, 1]`."""
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array[0].size != 784:
        raise DataError(f"{where}: expected shape (N, 784) or (N, 28, 28), got {array.shape}.")
    if not np.isin(array, (0, 1)).all():
        raise DataError(f"{where}: expected pixels in {{0, 1}} (the static binarization); "
                        f"found other values.")
    return array.astype(np.uint8).reshape(-1, 28, 28, 1)


def load_source(folder: Optional[str]) -> Dict[str, np.ndarray]:
    """Split -> uint8 images `[N, 28, 28, 1]` in {0, 1}, read from `folder`."""
    paths = find_source(folder)
    images = {}
    try:
        if paths["train"].endswith(".npz"):
            path = paths["train"]
            with np.load(path) as npz:
                missing = [key for key in NPZ_KEYS.values() if key not in npz.files]
                if missing:
                    raise DataError(f"'{path}' has no key(s) {', '.join(missing)}; it holds "
                                    f"{', '.join(npz.files) or 'nothing'}. Expected {CONTENTS}.")
                for split, key in NPZ_KEYS.items():
                    images[split] = _check_binary_images(npz[key], f"'{path}' [{key}]")
        else:
            for split, path in paths.items():
                images[split] = _check_binary_images(
                        np.loadtxt(path, dtype=np.uint8, ndmin=2), f"'{path}'")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read static_mnist source {paths['train']}: {error}. "
                        f"Expected {CONTENTS}.") from error
    return images


class StaticMnist(tfds.core.GeneratorBasedBuilder):
    """TFDS builder of `static_mnist` (see the module docstring); reads only the manual dir."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = SOURCE_PATH  # TFDS 4.9.10 needs importlib_resources to infer it; see spec.py.
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
                builder=self,
                description=_DESCRIPTION,
                features=tfds.features.FeaturesDict({
                        "image": tfds.features.Image(shape=(28, 28, 1),
                                                     doc="pixels in {0, 1}"),
                }),
                disable_shuffling=True,
                homepage="http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",
                citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        images = load_source(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(images[split]) for split in SPLITS}

    def _generate_examples(self, images):
        for index, image in enumerate(images):
            yield index, {"image": image}


@DATASETS.register("static_mnist")
class StaticMnistDataset(LocalBuilderSpec):
    """`static_mnist`: Larochelle & Murray (2011) binarized MNIST from a local file, 28x28x1."""

    name = "static_mnist"
    image_shape = (28, 28, 1)
    kind = "binary"
    num_examples = {"train": 50000, "validation": 10000, "test": 10000}
    description = _DESCRIPTION
    citation = _CITATION
    builder_cls = StaticMnist

    def check_source(self) -> None:
        find_source(self.data_dir)
