"""`frey_faces`: 1965 grey 28x20 images of Brendan Frey's face, from a local file.

The Frey faces are frames of a video of Brendan Frey's face, 28x20 pixels, 8-bit grey,
distributed by Sam Roweis (https://cs.nyu.edu/~roweis/data.html, `frey_rawface.mat`) and used in
Roweis & Saul (2000), the VAE paper (Kingma & Welling 2014), VampPrior (Tomczak & Welling 2018)
and Sylvester flows (van den Berg et al. 2018). There is no official split: those papers use a
random 1565 / 200 / 200 train / validation / test split, which here is fixed as
`numpy.random.RandomState(0).permutation(1965)` -> first 1565 train, next 200 validation, last
200 test (a source with N images keeps the proportions: `round(N * 200 / 1965)` each for
validation and test).

Source, in the manual directory (`data.data_dir`, else `$TFDGM_DATA_DIR`; TFDS `manual_dir`):

* `frey_faces.npz` with key `x`, uint8 `(1965, 28, 20)`, or
* Roweis' original `frey_rawface.mat` (key `ff`, uint8 `(560, 1965)`, one image per column).
"""

import os
import zipfile
from typing import Dict, Optional

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfdgm.data.spec import LocalBuilderSpec, missing_file_error
from tfdgm.errors import DataError
from tfdgm.registry import DATASETS

SOURCE_PATH = epath.Path(__file__)

NPZ_FILE = "frey_faces.npz"
MAT_FILE = "frey_rawface.mat"
SEED = 0
HEIGHT, WIDTH = 28, 20

FIX = (f"set data.data_dir (or TFDGM_DATA_DIR) to the folder holding {NPZ_FILE} (or Roweis' "
       f"{MAT_FILE}, from https://cs.nyu.edu/~roweis/data.html).")
CONTENTS = "key x: uint8 grey levels, shape (1965, 28, 20)"

_CITATION = """\
@article{roweis2000lle,
  title={Nonlinear dimensionality reduction by locally linear embedding},
  author={Roweis, Sam T. and Saul, Lawrence K.},
  journal={Science}, volume={290}, number={5500}, pages={2323--2326}, year={2000},
  note={Frey faces: images of Brendan Frey, https://cs.nyu.edu/~roweis/data.html}
}"""

_DESCRIPTION = (
        "Frey faces (Brendan Frey, distributed by Sam Roweis): 1965 video frames of one face, "
        "28x20 8-bit grey; random split train 1565 / validation 200 / test 200 (permutation "
        "seed 0), as in VampPrior and Sylvester flows. Prepared offline from a local "
        "frey_faces.npz (or frey_rawface.mat).")

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Place {NPZ_FILE} ({CONTENTS}) or {MAT_FILE} (https://cs.nyu.edu/~roweis/data.html) in the
manual directory (tfdgm: data.data_dir or TFDGM_DATA_DIR; TFDS: --manual_dir).
"""


def find_source(folder: Optional[str]) -> str:
    """The path of the source file in `folder`; raises `DataError` naming the file and the fix."""
    if folder:
        for name in (NPZ_FILE, MAT_FILE):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    raise missing_file_error("frey_faces", NPZ_FILE, folder, FIX, CONTENTS)


def load_source(folder: Optional[str]) -> np.ndarray:
    """All images, uint8 `[N, 28, 20, 1]`, in source order."""
    path = find_source(folder)
    try:
        if path.endswith(".mat"):
            import scipy.io
            images = scipy.io.loadmat(path)["ff"].T
        else:
            with np.load(path) as npz:
                if "x" not in npz.files:
                    raise DataError(f"'{path}' has no key x; it holds "
                                    f"{', '.join(npz.files) or 'nothing'}. Expected {CONTENTS}.")
                images = npz["x"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read frey_faces source '{path}': {error!r}. "
                        f"Expected {CONTENTS}.") from error
    if images.shape[0] == 0 or images[0].size != HEIGHT * WIDTH:
        raise DataError(f"'{path}': expected images of 28x20 pixels, got shape {images.shape}.")
    if images.min() < 0 or images.max() > 255 or np.any(images != np.round(images)):
        raise DataError(f"'{path}': expected 8-bit grey levels 0..255.")
    return images.astype(np.uint8).reshape(-1, HEIGHT, WIDTH, 1)


def split_indices(num_examples: int, seed: int = SEED) -> Dict[str, np.ndarray]:
    """Random train / validation / test indices: 1565 / 200 / 200 of 1965 (proportional for N)."""
    order = np.random.RandomState(seed).permutation(num_examples)
    n_eval = int(round(num_examples * 200 / 1965))
    n_train = num_examples - 2 * n_eval
    return {"train": order[:n_train],
            "validation": order[n_train:n_train + n_eval],
            "test": order[n_train + n_eval:]}


class FreyFaces(tfds.core.GeneratorBasedBuilder):
    """TFDS builder of `frey_faces` (see the module docstring); reads only the manual dir."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = SOURCE_PATH  # TFDS 4.9.10 needs importlib_resources to infer it; see spec.py.
    RELEASE_NOTES = {"1.0.0": "Initial release: random 1565/200/200 split, seed 0."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
                builder=self,
                description=_DESCRIPTION,
                features=tfds.features.FeaturesDict({
                        "image": tfds.features.Image(shape=(HEIGHT, WIDTH, 1)),
                }),
                disable_shuffling=True,
                homepage="https://cs.nyu.edu/~roweis/data.html",
                citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        images = load_source(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(images, indices)
                for split, indices in split_indices(len(images)).items()}

    def _generate_examples(self, images, indices):
        # With `disable_shuffling` TFDS writes examples sorted by key: the key is the position.
        for position, index in enumerate(indices):
            yield position, {"image": images[index]}


@DATASETS.register("frey_faces")
class FreyFacesDataset(LocalBuilderSpec):
    """`frey_faces`: Frey faces (via Roweis) from a local file, 28x20x1 grey, 1565/200/200."""

    name = "frey_faces"
    image_shape = (HEIGHT, WIDTH, 1)
    kind = "grey"
    num_examples = {"train": 1565, "validation": 200, "test": 200}
    description = _DESCRIPTION
    citation = _CITATION
    builder_cls = FreyFaces

    def check_source(self) -> None:
        find_source(self.data_dir)

