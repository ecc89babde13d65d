"""Dataset specs: what a dataset is, without loading it, and how TFDS prepares it.

Every dataset of `tfdgm.registry.DATASETS` is a `DatasetSpec` subclass. Its class attributes
(`image_shape`, `kind`, `num_examples`, `description`) answer config validation cheaply, before
any file is read; an instance (`spec = Spec(data_dir)`) knows where local source files live and
hands out TFDS builders and `tf.data` splits:

```python
spec = DATASETS.get("static_mnist")(data_dir="/data")   # folder holding binarized_mnist.npz
builder = spec.prepare(tfds_data_dir)                    # offline `download_and_prepare`
images = spec.as_dataset("train", tfds_data_dir)         # uint8 [H, W, C] per element
```

Two directories are involved and never mixed up:

* `data_dir` (config `data.data_dir`, else the `TFDGM_DATA_DIR` environment variable) holds the
  *source* files of local datasets (`binarized_mnist.npz`, `frey_faces.npz`). TFDS calls it the
  manual directory (`tfds.download.DownloadConfig(manual_dir=...)`); it is read only once, when a
  dataset is first prepared.
* `tfds_data_dir` is where TFDS writes the prepared records (default `TFDS_DATA_DIR`, else
  `~/tensorflow_datasets`); later runs read from there and need no source file.

A prepared dataset is never re-read from its source: to prepare it again from another file,
delete `<tfds_data_dir>/<name>/`.

Our own builders never touch the network: GCS look-ups are switched off
(`try_download_gcs=False`; TFDS 4.9.10 also hard-disables GCS in `gcs_utils`) and they read
nothing but local files.

TFDS 4.9.10 pitfall: `DatasetBuilder.code_path` (used to find a builder's `checksums.tsv` when
`download_and_prepare` makes its download manager) imports `importlib_resources`, which TFDS
declares only for Python < 3.9; on 3.11 without it, preparing any builder defined in a package
fails with `ModuleNotFoundError`. Our builders set `code_path` to their own module file.
"""

import os
from typing import ClassVar, Dict, Mapping, Optional, Tuple

import tensorflow as tf
import tensorflow_datasets as tfds

from tfdgm.errors import DataError

SPLITS: Tuple[str, ...] = ("train", "validation", "test")
DATA_DIR_ENV = "TFDGM_DATA_DIR"
KINDS = ("binary", "grey")


def resolve_data_dir(data_dir: Optional[str] = None) -> Optional[str]:
    """The folder of local source files: `data_dir`, else `$TFDGM_DATA_DIR`, else None."""
    value = data_dir or os.environ.get(DATA_DIR_ENV) or None
    return os.path.expanduser(value) if value else None


def no_gcs_download_config(manual_dir: Optional[str] = None) -> tfds.download.DownloadConfig:
    """A TFDS `DownloadConfig` that never asks GCS for pre-built data."""
    return tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)


def missing_file_error(dataset: str, filename: str, data_dir: Optional[str], fix: str,
                       contents: str = "") -> DataError:
    """A `DataError` naming the file looked for (and where), what it must hold, and the fix."""
    if data_dir:
        where = f"'{os.path.join(data_dir, filename)}' does not exist"
    else:
        where = (f"cannot look for {filename}: neither data.data_dir nor {DATA_DIR_ENV} "
                 f"is set")
    needs = f" It needs {filename} ({contents})." if contents else ""
    return DataError(f"dataset '{dataset}': {where}.{needs} Fix: {fix}")


class DatasetSpec:
    """A registered dataset: shape, pixel kind and split sizes as class attributes.

    Attributes:
        name: the registered name (`data.name`).
        image_shape: `(H, W, C)` of one image.
        kind: `'binary'` (pixels in {0, 1}) or `'grey'` (8-bit grey levels 0..255).
        num_examples: split -> number of examples of the full, canonical dataset. A local source
            file may hold fewer (a test fixture); the prepared TFDS info has the real counts.
        description: what the data is and where it comes from.
        citation: BibTeX of the source.
    """

    name: ClassVar[str] = ""
    image_shape: ClassVar[Tuple[int, int, int]] = ()
    kind: ClassVar[str] = ""
    num_examples: ClassVar[Mapping[str, int]] = {}
    description: ClassVar[str] = ""
    citation: ClassVar[str] = ""

    def __init__(self, data_dir: Optional[str] = None):
        self.data_dir = resolve_data_dir(data_dir)

    def builder(self, tfds_data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
        """The TFDS builder of this dataset, reading/writing under `tfds_data_dir`."""
        raise NotImplementedError

    def prepare(self, tfds_data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
        """Returns the builder, preparing the dataset first if it is not prepared yet.

        Raises:
            DataError: the source data is missing or unreadable (the message says the fix).
        """
        builder = self.builder(tfds_data_dir)
        # The test `download_and_prepare` itself uses to reuse a prepared dataset
        # (`builder.is_prepared()` would log a warning for every fresh data dir).
        if not builder.data_path.exists():
            self._download_and_prepare(builder)
        return builder

    def _download_and_prepare(self, builder: tfds.core.DatasetBuilder) -> None:
        builder.download_and_prepare(download_config=no_gcs_download_config(self.data_dir))

    def as_dataset(self, split: str, tfds_data_dir: Optional[str] = None,
                   max_examples: Optional[int] = None) -> tf.data.Dataset:
        """The images of `split` (its first `max_examples`), uint8 `[H, W, C]`, in file order.

        Raises:
            DataError: the source data is missing, or `split` is not one of `SPLITS`.
        """
        if split not in SPLITS:
            raise DataError(f"dataset '{self.name}' has no split '{split}'; "
                            f"splits are {', '.join(SPLITS)}.")
        builder = self.prepare(tfds_data_dir)
        total = builder.info.splits[split].num_examples
        selection = split if max_examples is None or max_examples >= total else (
            f"{split}[:{max_examples}]")
        dataset = builder.as_dataset(split=selection, shuffle_files=False,
                                     read_config=tfds.ReadConfig(try_autocache=False))
        return dataset.map(lambda example: example["image"],
                           num_parallel_calls=tf.data.AUTOTUNE)

    @classmethod
    def split_sizes(cls, builder: tfds.core.DatasetBuilder) -> Dict[str, int]:
        """Split -> number of examples, as prepared."""
        return {split: builder.info.splits[split].num_examples for split in SPLITS}


class LocalBuilderSpec(DatasetSpec):
    """A spec whose TFDS builder is one of ours (`builder_cls`), prepared from local files.

    Subclasses set `builder_cls` and, where a source file must be found first, override
    `check_source` to raise a `DataError` naming the file and the fix.
    """

    builder_cls: ClassVar[type] = None

    def builder(self, tfds_data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
        return self.builder_cls(data_dir=tfds_data_dir)

    def check_source(self) -> None:
        """Raises a `DataError` if the source data needed to prepare the dataset is missing."""

    def _download_and_prepare(self, builder: tfds.core.DatasetBuilder) -> None:
        self.check_source()
        super()._download_and_prepare(builder)
