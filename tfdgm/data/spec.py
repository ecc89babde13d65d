"""Dataset specs: what a dataset is, without loading it, and how TFDS prepares it.

Every dataset of `tfdgm.registry.DATASETS` is a `DatasetSpec` subclass. Its class attributes
(`image_shape`, `kind`, `num_examples`, `has_labels`, `description`) answer config validation
cheaply, before any file is read; an instance (`spec = Spec(data_dir)`) knows where local source
files live and hands out TFDS builders and `tf.data` splits:

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
from tfdgm.registry import DATASETS

SPLITS: Tuple[str, ...] = ("train", "validation", "test")
DATA_DIR_ENV = "TFDGM_DATA_DIR"
KINDS = ("binary", "grey", "points")
IMAGE_KINDS = ("binary", "grey")


def resolve_data_dir(data_dir: Optional[str] = None) -> Optional[str]:
    """The folder of local source files: `data_dir`, else `$TFDGM_DATA_DIR`, else None."""
    value = data_dir or os.environ.get(DATA_DIR_ENV) or None
    return os.path.expanduser(value) if value else None


def no_gcs_download_config(manual_dir: Optional[str] = None) -> tfds.download.DownloadConfig:
    """A TFDS `DownloadConfig` that never asks GCS for pre-built data."""
    return tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)


def unlabelled_message(dataset: str) -> str:
    """Why `dataset` cannot give labels, and which datasets can."""
    labelled = [name for name in DATASETS.names() if DATASETS.get(name).has_labels]
    return (f"dataset '{dataset}' has no labels; datasets with labels are "
            f"{', '.join(labelled) or 'none'}.")


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
    """A registered dataset: shape, kind, split sizes and labels as class attributes.

    Attributes:
        name: the registered name (`data.name`).
        image_shape: the shape of one element: `(H, W, C)` for images, `(D,)` for points.
        kind: `'binary'` (pixels in {0, 1}), `'grey'` (8-bit grey levels 0..255) or `'points'`
            (float32 vectors in R^D, not images: see `tfdgm.data.toy2d`).
        num_examples: split -> number of examples of the full, canonical dataset. A local source
            file may hold fewer (a test fixture); the prepared TFDS info has the real counts.
        has_labels: whether every example has an integer class label (`as_dataset(...,
            with_labels=True)`, `tfdgm.data.load_labelled`).
        num_classes: the number of label values `0 .. num_classes - 1` (None without labels).
        description: what the data is and where it comes from.
        citation: BibTeX of the source.
    """

    name: ClassVar[str] = ""
    image_shape: ClassVar[Tuple[int, ...]] = ()
    kind: ClassVar[str] = ""
    num_examples: ClassVar[Mapping[str, int]] = {}
    has_labels: ClassVar[bool] = False
    num_classes: ClassVar[Optional[int]] = None
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
            try:
                self._download_and_prepare(builder)
            except FileExistsError:
                # Another process (a worker of the same cluster, a parallel test) prepared it
                # at the same time and renamed its copy into place first: use that one.
                if not builder.data_path.exists():
                    raise
                builder = self.builder(tfds_data_dir)
            except OSError as error:
                root = os.path.expanduser(tfds_data_dir or os.environ.get("TFDS_DATA_DIR")
                                          or "~/tensorflow_datasets")
                where = str(error.filename or "")
                if not where or not (where.startswith(root) or root.startswith(where)):
                    raise
                raise DataError(
                    f"cannot prepare dataset '{self.name}' in the TFDS folder {root} "
                    f"({error.strerror}: {where}); set TFDS_DATA_DIR to a writable folder "
                    f"(default ~/tensorflow_datasets).") from None
        return builder

    def _download_and_prepare(self, builder: tfds.core.DatasetBuilder) -> None:
        builder.download_and_prepare(download_config=no_gcs_download_config(self.data_dir))

    def as_dataset(self, split: str, tfds_data_dir: Optional[str] = None,
                   max_examples: Optional[int] = None,
                   with_labels: bool = False) -> tf.data.Dataset:
        """The images of `split` (its first `max_examples`), uint8 `[H, W, C]`, in file order.

        With `with_labels`, elements are `(image, label)` with an int64 scalar label.

        Raises:
            DataError: the source data is missing, `split` is not one of `SPLITS`, or labels
                are asked of a dataset without them.
        """
        self.check_split(split, with_labels)
        builder = self.prepare(tfds_data_dir)
        dataset = builder.as_dataset(split=self.tfds_split(split), shuffle_files=False,
                                     read_config=tfds.ReadConfig(try_autocache=False))
        if max_examples is not None:
            dataset = dataset.take(max_examples)
        if with_labels:
            return dataset.map(lambda example: (example["image"],
                                                tf.cast(example["label"], tf.int64)),
                               num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.map(lambda example: example["image"],
                           num_parallel_calls=tf.data.AUTOTUNE)

    def array_cache_path(self, split: str, tfds_data_dir: Optional[str] = None,
                         max_examples: Optional[int] = None) -> Optional[str]:
        """Where the decoded images of `split` (its first `max_examples`) are kept as one `.npy`
        file: `tfdgm_arrays/` inside the prepared dataset's version folder, so deleting the
        prepared records (to re-prepare) deletes it too. None for data that is not prepared
        (generated points) or not in a local folder."""
        builder = self.prepare(tfds_data_dir)
        if builder is None:
            return None
        folder = str(builder.data_dir)
        if not os.path.isdir(folder):
            return None
        suffix = "" if max_examples is None else f"-first{max_examples}"
        return os.path.join(folder, "tfdgm_arrays", f"{split}{suffix}.npy")

    def check_split(self, split: str, with_labels: bool = False) -> None:
        """Raises a `DataError` for an unknown split, or for labels a dataset does not have."""
        if split not in SPLITS:
            raise DataError(f"dataset '{self.name}' has no split '{split}'; "
                            f"splits are {', '.join(SPLITS)}.")
        if with_labels and not self.has_labels:
            raise DataError(unlabelled_message(self.name))

    @classmethod
    def tfds_split(cls, split: str) -> str:
        """The TFDS split (or slice, e.g. `'train[55000:]'`) that holds our `split`."""
        return split

    @classmethod
    def split_sizes(cls, builder: tfds.core.DatasetBuilder) -> Dict[str, int]:
        """Split -> number of examples, as prepared."""
        return {split: builder.info.splits[cls.tfds_split(split)].num_examples
                for split in SPLITS}

    def prepared_split_sizes(self, tfds_data_dir: Optional[str] = None) -> Dict[str, int]:
        """Prepares the dataset (once) and returns split -> number of examples."""
        return self.split_sizes(self.prepare(tfds_data_dir))


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


class CatalogSpec(DatasetSpec):
    """A spec whose builder is a TFDS catalog dataset (`tfds_name`), downloaded once.

    Downloading needs internet the first time; later runs read the prepared copy in the TFDS
    data dir. Every failure (no network, DNS, checksum, disk) becomes one `DataError` that ends
    with `fix`, the offline alternative.
    """

    tfds_name: ClassVar[str] = ""
    fix: ClassVar[str] = ""

    def builder(self, tfds_data_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
        try:
            return tfds.builder(self.tfds_name, data_dir=tfds_data_dir, try_gcs=False)
        except Exception as error:  # TFDS raises many kinds; all mean the same to the user.
            raise DataError(f"dataset '{self.name}': TFDS cannot open its builder "
                            f"'{self.tfds_name}' ({error!r}). Fix: {self.fix}") from error

    def _download_and_prepare(self, builder: tfds.core.DatasetBuilder) -> None:
        try:
            import importlib_resources  # noqa: F401
        except ImportError as error:
            # TFDS 4.9.10 imports it to find the builder's checksums (declared for Python < 3.9
            # only), so downloading fails without it; see the module docstring.
            raise DataError(f"dataset '{self.name}': TFDS 4.9 needs the package "
                            f"importlib_resources to download catalog datasets "
                            f"(pip install importlib_resources). Or {self.fix}") from error
        try:
            builder.download_and_prepare(download_config=no_gcs_download_config(self.data_dir))
        except Exception as error:  # Network, DNS, SSL, checksum, disk: one message for all.
            raise DataError(f"dataset '{self.name}': TFDS could not download and prepare "
                            f"'{self.tfds_name}' into '{builder.data_dir_root}' "
                            f"({type(error).__name__}: {error}). Fix: {self.fix}") from error
