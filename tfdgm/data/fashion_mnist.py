"""`fashion_mnist`: Zalando's Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from local idx files.

Fashion-MNIST is 70000 grey 28x28 images of clothing in 10 classes (`CLASS_NAMES`), published
as MNIST-format idx files: `train-images-idx3-ubyte` (60000 images), `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte` (10000) and `t10k-labels-idx1-ubyte`, each optionally gzipped.

Splits (fixed): the first 55000 images of the training file are `train`, its **last** 5000 are
`validation` (the training file is not sorted by class, so both hold every class), and the test
file is `test` (10000). A training file of N images gives its last `round(N / 12)` to
validation, so small fixtures keep the proportion.

Sources, in this order (TFDS's manual directory; the first folder holding all four files wins):

1. `data.data_dir`, else `$TFDGM_DATA_DIR`: the four idx files, `.gz` or not;
2. `/usr/share/datasets/fashion-mnist/`, where Debian's package `dataset-fashion-mnist`
   (`apt-get install dataset-fashion-mnist`) installs them, re-gzipped: they are not
   byte-identical to the files TFDS's catalog builder checksums, so we read them with our own
   `GeneratorBasedBuilder` (`FashionMnist`, TFDS name `tfdgm_fashion_mnist`; the catalog name
   `fashion_mnist` is TFDS's own builder, offered here as `fashion_mnist_tfds`).

The idx format (LeCun et al., http://yann.lecun.com/exdb/mnist/): the magic number `0x0000TTDD`
(`TT` the element type, `0x08` = unsigned byte; `DD` the number of dimensions), then `DD`
big-endian uint32 sizes, then the elements in C order.
"""

import gzip
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfdgm.data.spec import CatalogSpec, LocalBuilderSpec, no_gcs_download_config
from tfdgm.errors import DataError
from tfdgm.registry import DATASETS

SOURCE_PATH = epath.Path(__file__)

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
# Folders searched after data.data_dir / TFDGM_DATA_DIR (a module attribute, so that a test can
# point it elsewhere).
SYSTEM_DIRS: Sequence[str] = (DEBIAN_DIR,)

FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
NUM_TRAIN_FILE, NUM_VALIDATION = 60000, 5000

FIX = ("apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs the idx files under "
       f"{DEBIAN_DIR}), or set data.data_dir (or TFDGM_DATA_DIR) to a folder holding the four "
       "idx files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
       "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]), or with internet access use "
       "data.name=fashion_mnist_tfds (the TFDS catalog dataset fashion_mnist).")

_CITATION = """\
@article{xiao2017fashion,
  title={Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},
  author={Xiao, Han and Rasul, Kashif and Vollgraf, Roland},
  journal={arXiv preprint arXiv:1708.07747}, year={2017}
}"""

_DESCRIPTION = (
        "Fashion-MNIST (Xiao et al. 2017): 28x28 8-bit grey images of Zalando articles in 10 "
        "classes; train 55000 (first of the training file) / validation 5000 (its last 5000) / "
        "test 10000. Prepared offline from the idx files (data.data_dir, or Debian's "
        "dataset-fashion-mnist).")

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Place the four Fashion-MNIST idx files ({', '.join(FILES.values())}, gzipped or not) in the
manual directory (tfdgm: data.data_dir or TFDGM_DATA_DIR; TFDS: --manual_dir), or install
Debian's dataset-fashion-mnist, which puts them in {DEBIAN_DIR}.
"""


def read_idx(path: str) -> np.ndarray:
    """The array of an idx file of unsigned bytes (gzipped or not), uint8 of its stored shape.

    Raises:
        DataError: the file is unreadable, not idx, not of unsigned bytes, or truncated.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read idx file '{path}': {error}.") from error
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise DataError(f"'{path}' is not an idx file (bad magic number).")
    if raw[2] != 0x08:
        raise DataError(f"'{path}': expected unsigned bytes (idx type 0x08), got {raw[2]:#04x}.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(n) for n in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"'{path}': the header says shape {shape}, which needs "
                        f"{int(np.prod(shape))} bytes of data; the file has {len(raw) - header}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str, array: np.ndarray) -> None:
    """Writes uint8 `array` as an idx file, gzipped if `path` ends with `.gz` (for fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = (bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
           + array.tobytes())
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if path.endswith(".gz") else raw)


def _files_in(folder: str) -> Optional[Dict[str, str]]:
    """Role -> path of the four idx files in `folder` (plain or .gz), or None if one is missing."""
    found = {}
    for role, name in FILES.items():
        for candidate in (name, name + ".gz"):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                found[role] = path
                break
        else:
            return None
    return found


def find_source(folder: Optional[str]) -> Dict[str, str]:
    """Role -> path of the idx files: in `folder`, else in `SYSTEM_DIRS`.

    Raises:
        DataError: no folder holds all four files (the message lists where it looked, and the
            fix).
    """
    searched = ([folder] if folder else []) + list(SYSTEM_DIRS)
    for candidate in searched:
        found = _files_in(candidate)
        if found:
            return found
    where = ", ".join(f"'{path}'" for path in searched)
    unset = "" if folder else " (data.data_dir and TFDGM_DATA_DIR are not set)"
    raise DataError(f"dataset 'fashion_mnist': no folder among {where}{unset} holds the four "
                    f"Fashion-MNIST idx files. Fix: {FIX}")


def _images_and_labels(paths: Dict[str, str], part: str) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 images `[N, 28, 28, 1]` and int64 labels `[N]` of the `train` or `test` files."""
    images, labels = read_idx(paths[f"{part}_images"]), read_idx(paths[f"{part}_labels"])
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"'{paths[part + '_images']}': expected images of shape (N, 28, 28), "
                        f"got {images.shape}.")
    if labels.shape != images.shape[:1]:
        raise DataError(f"'{paths[part + '_labels']}': expected {images.shape[0]} labels (one "
                        f"per image of '{paths[part + '_images']}'), got shape {labels.shape}.")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise DataError(f"'{paths[part + '_labels']}': labels must be 0..9, found "
                        f"{labels.max()}.")
    return images[..., None], labels.astype(np.int64)


def num_validation(num_train_file: int) -> int:
    """Validation examples taken from the end of a training file of `num_train_file` images."""
    return int(round(num_train_file * NUM_VALIDATION / NUM_TRAIN_FILE))


def load_source(folder: Optional[str]) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Split -> (uint8 images `[N, 28, 28, 1]`, int64 labels `[N]`), read from the idx files."""
    paths = find_source(folder)
    train_images, train_labels = _images_and_labels(paths, "train")
    cut = len(train_images) - num_validation(len(train_images))
    return {"train": (train_images[:cut], train_labels[:cut]),
            "validation": (train_images[cut:], train_labels[cut:]),
            "test": _images_and_labels(paths, "test")}


class FashionMnist(tfds.core.GeneratorBasedBuilder):
    """TFDS builder `tfdgm_fashion_mnist` (see the module docstring); reads only local files."""

    name = "tfdgm_fashion_mnist"  # `fashion_mnist` is TFDS's catalog builder.
    VERSION = tfds.core.Version("1.0.0")
    code_path = SOURCE_PATH  # TFDS 4.9.10 needs importlib_resources to infer it; see spec.py.
    RELEASE_NOTES = {"1.0.0": "Initial release: 55000 / 5000 (last of the training file) / "
                              "10000."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
                builder=self,
                description=_DESCRIPTION,
                features=tfds.features.FeaturesDict({
                        "image": tfds.features.Image(shape=(28, 28, 1)),
                        "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }),
                supervised_keys=("image", "label"),
                disable_shuffling=True,
                homepage="https://github.com/zalandoresearch/fashion-mnist",
                citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        data = load_source(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(*arrays) for split, arrays in data.items()}

    def _generate_examples(self, images, labels):
        for index, (image, label) in enumerate(zip(images, labels)):
            yield index, {"image": image, "label": label}


@DATASETS.register("fashion_mnist")
class FashionMnistDataset(LocalBuilderSpec):
    """`fashion_mnist`: Fashion-MNIST (Xiao et al. 2017), 28x28x1 grey, labelled, offline.

    ```python
    spec = FashionMnistDataset(data_dir=None)       # falls back to Debian's package
    pairs = spec.as_dataset("test", with_labels=True)   # (uint8 [28, 28, 1], int64 label)
    ```
    """

    name = "fashion_mnist"
    image_shape = (28, 28, 1)
    kind = "grey"
    num_examples = {"train": 55000, "validation": 5000, "test": 10000}
    has_labels = True
    num_classes = len(CLASS_NAMES)
    description = _DESCRIPTION
    citation = _CITATION
    builder_cls = FashionMnist

    def check_source(self) -> None:
        self._source = os.path.dirname(find_source(self.data_dir)["train_images"])

    def _download_and_prepare(self, builder: tfds.core.DatasetBuilder) -> None:
        # The manual dir is the folder that holds the files, which may be the Debian one.
        self.check_source()
        builder.download_and_prepare(download_config=no_gcs_download_config(self._source))


@DATASETS.register("fashion_mnist_tfds")
class FashionMnistCatalogDataset(CatalogSpec):
    """`fashion_mnist_tfds`: TFDS's catalog `fashion_mnist` (downloads once), same split.

    ```python
    images = FashionMnistCatalogDataset().as_dataset("validation")   # train[55000:]
    ```
    """

    name = "fashion_mnist_tfds"
    image_shape = (28, 28, 1)
    kind = "grey"
    num_examples = {"train": 55000, "validation": 5000, "test": 10000}
    has_labels = True
    num_classes = len(CLASS_NAMES)
    description = ("Fashion-MNIST (Xiao et al. 2017) from the TFDS catalog (downloads on first "
                   "use): train 55000 (train[:55000]) / validation 5000 (train[55000:]) / test "
                   "10000, as `fashion_mnist`.")
    citation = _CITATION
    tfds_name = "fashion_mnist"
    fix = ("without internet access use data.name=fashion_mnist (apt-get install "
           "dataset-fashion-mnist, or the idx files in data.data_dir).")

    @classmethod
    def tfds_split(cls, split: str) -> str:
        cut = NUM_TRAIN_FILE - NUM_VALIDATION
        return {"train": f"train[:{cut}]", "validation": f"train[{cut}:]", "test": "test"}[split]
