"""`tf.data` pipelines: a registered dataset + `DataConfig` -> batched float32 train/valid/test.

The contract the trainer relies on:

* image splits yield float32 `[B, H, W, C]` in [0, 1]: grey data is `k / 255` for the 8-bit level
  `k` (exactly recoverable as `round(255 * x)`, which a discretized-logistic likelihood needs);
  binary data is {0, 1}. Point datasets (kind `points`, `tfdgm.data.toy2d`) yield float32
  `[B, D]` as generated. Splits yield the images (points) only, never labels
  (`load_labelled` gives those);
* `validation` and `test` are in file order, batched by `eval_batch_size`, the last partial batch
  kept;
* `train` is batched by `batch_size` with `drop_remainder=True`, so an epoch is
  `steps_per_epoch = N // batch_size` batches, and is a deterministic function of
  `(seed, epoch)` (below);
* `binarize` (grey data only; binary data and points are a `ConfigError`):
  - `dynamic`: x ~ Bernoulli(grey level), a fresh draw for every training batch; `validation`
    and `test` get one draw with the fixed seed `EVAL_BINARIZATION_SEED` (per example,
    independent of batch size and of `seed`), so evaluation is deterministic and comparable
    across runs;
  - `threshold`: x = 1[grey level > 0.5];
* `max_examples` keeps the first N examples of every split (smoke tests).

Training data as a function of (seed, epoch): exact resumption
----------------------------------------------------------------

tf.data's `shuffle(reshuffle_each_iteration=True)` and `Dataset.random(rerandomize_each_
iteration=True)` draw epoch `e`'s order and noise from the `e`-th iteration of a stateful
sequence, which restarts in a new process: a run killed after epoch 3 and resumed would see
epoch 0's batches again. Here nothing is stateful. The decoded training split is held in memory
(`[N, ...]`, uint8 for images) and the `g`-th training batch of the run, `g = e * L + b` with
`L = steps_per_epoch`, is

    ids_j = pi_e(b * B + j),                      j = 0 .. B - 1
    x = images[ids],                              then for `dynamic`:
    x ~ Bernoulli(x) with stateless noise seeded by fold_in(fold_in(noise_key, e), b)

where `pi_e` is the pseudorandom permutation of `[0, N)` of
`tf.random.experimental.index_shuffle` with the seed `fold_in(shuffle_key, e)`, and
`shuffle_key`, `noise_key` are derived from `seed` by `numpy.random.SeedSequence`. A batch is
computed from `(seed, g)` alone, in the graph (no Python per batch), so starting the stream at
any `g` costs nothing and gives exactly the batches an uninterrupted process gives there. Every
epoch is a uniform shuffle of the whole training set (not a buffered one); `shuffle_buffer: 1`
keeps the file order (`pi_e` the identity), any other value shuffles fully.

How to train with it (what `load_datasets(..., initial_epoch=k)` gives):

```python
data = load_datasets(config.data, seed=config.seed, initial_epoch=k)  # k = epochs done
model.fit(data.train, steps_per_epoch=data.steps_per_epoch,   # data.train is infinite
          epochs=config.training.epochs, initial_epoch=k, validation_data=data.validation)
```

`data.train` is infinite (it continues with epochs k, k+1, ...), so `steps_per_epoch` is
required; Keras then keeps one iterator across epochs. A trainer whose epochs are `S` batches
(`training.steps_per_epoch`) passes `initial_step=k * S` instead of `initial_epoch` and
`steps_per_epoch=S`: the stream is indexed by the global batch `g`, so it stays exact.
`data.train_epoch(e)` is epoch `e` alone, finite (for custom loops and tests).

Without `initial_epoch` / `initial_step` (the previous contract), `train` is one finite epoch
that draws a new order and new noise each time it is iterated, keyed by
`Dataset.random(rerandomize_each_iteration=True)`: `fit` without `steps_per_epoch` works, but a
resumed run does not see the batches an uninterrupted one would.

What is held in memory, and what is prepared once
--------------------------------------------------

A split is decoded from its TFDS records once: the stored elements (uint8 images, float32
points) of each `(dataset, split, max_examples)` are kept as one numpy array (`stored_array`: a
`.npy` file beside the prepared records, which later processes load instead of decoding, and a
small process-wide cache), which the training batches, the evaluation
splits, `load_images` and `Datasets.images` all read, so preparing a run (a VampPrior's
pseudo-inputs, an RBM's visible biases, the TensorBoard images) decodes nothing twice. The batched
evaluation splits are computed once and cached in memory (`.cache()`) when their float32 batches
take at most `EVAL_CACHE_BYTES`, else recomputed from the stored array at each pass (a cast and,
for `dynamic`, one stateless draw per example). Binarization noise is drawn in the graph
(stateless, no Python per batch), and every split ends with `.prefetch(AUTOTUNE)`. The image
data comes from TFDS (`builder.as_dataset`); generated point sets come straight from their spec
(nothing to prepare).

`validation_examples: K` keeps the `K` validation examples at the evenly spaced indices
`floor(i N / K)` (`tfdgm.data.subsets`), each processed exactly as in the whole split (the same
fixed binarization draw), so the subset's figures are those of the same examples of the full
split.

The datasets set `auto_shard_policy=DATA`: under `MultiWorkerMirroredStrategy` every worker
builds the same (seeded) pipeline and `experimental_distribute_dataset` gives each its slice of
every global batch, so the workers' shards are disjoint and the steps equal one device's.
"""

import collections
import contextlib
import dataclasses
import os
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfdgm.config import DataConfig
from tfdgm.data.spec import IMAGE_KINDS, KINDS, SPLITS, DatasetSpec, unlabelled_message
from tfdgm.errors import ConfigError, DataError
from tfdgm.data.subsets import evenly_spaced_indices
from tfdgm.registry import DATASETS

BINARIZE = ("none", "dynamic", "threshold")
EVAL_BINARIZATION_SEED = 2011
EVAL_CACHE_BYTES = 2 * 1024 ** 3
"""Largest batched float32 evaluation split that is cached in memory (else recomputed per pass)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data before training.

    ```python
    info = dataset_info(DataConfig(name="fashion_mnist"))
    info.event_shape, info.kind, info.num_classes   # (28, 28, 1), 'grey', 10
    ```

    Attributes:
        name: the registered dataset name.
        image_shape: the shape of one element: `(H, W, C)` for images; for point datasets
            `(D,)`, the same as `event_shape` (models of images read `image_shape`).
        kind: what the model sees: `'binary'` ({0, 1}, also after `binarize`), `'grey'`
            (k / 255) or `'points'` (float32 vectors in R^D).
        num_examples: split -> number of examples (after `max_examples`).
        event_shape: the shape of one element whatever the kind (`image_shape` for images).
        has_labels: whether `load_labelled` can give class labels.
        num_classes: labels are `0 .. num_classes - 1` (None without labels).
    """
    name: str
    image_shape: Tuple[int, ...]
    kind: str
    num_examples: Dict[str, int]
    event_shape: Optional[Tuple[int, ...]] = None
    has_labels: bool = False
    num_classes: Optional[int] = None

    def __post_init__(self):
        if self.event_shape is None:
            object.__setattr__(self, "event_shape", tuple(self.image_shape))


@dataclasses.dataclass
class Datasets:
    """The three batched splits (see the module docstring) and their `DatasetInfo`.

    ```python
    data = load_datasets(config.data, seed=0, initial_epoch=3)
    model.fit(data.train, steps_per_epoch=data.steps_per_epoch, epochs=10, initial_epoch=3)
    first = data.train_epoch(3)   # the same batches as the first 'steps_per_epoch' of train
    ```

    Attributes:
        train, validation, test: the batched splits (`validation`: the `validation_examples`
            subset when the config asks for one).
        info: the data's `DatasetInfo`, with the split sizes as prepared.
        steps_per_epoch: training batches per epoch, `num_examples["train"] // batch_size`.
        validation_examples: how many examples `validation` holds.
    """
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    info: DatasetInfo
    steps_per_epoch: int = 0
    validation_examples: Optional[int] = None
    _train_epoch: Optional[Callable[[int], tf.data.Dataset]] = dataclasses.field(
            default=None, repr=False)
    _images: Optional[Callable[[str, Optional[int]], np.ndarray]] = dataclasses.field(
            default=None, repr=False)

    def train_epoch(self, epoch: int) -> tf.data.Dataset:
        """Training epoch `epoch` alone: its `steps_per_epoch` batches, as in `train`."""
        return self._train_epoch(epoch)

    def images(self, split: str, num: Optional[int] = None) -> np.ndarray:
        """The first `num` (None: all) examples of the whole `split` as float32 numpy, exactly
        `load_images(config, split)[:num]`, read from the arrays already in memory (no decoding,
        and the cached batched splits are left untouched)."""
        return self._images(split, num)


def _spec_class(config: DataConfig) -> type:
    """The registered spec of `config.name` after checking the config's data options."""
    spec_cls = DATASETS.get(config.name, "data.name")
    if config.binarize not in BINARIZE:
        raise ConfigError(f"data.binarize: '{config.binarize}' is not one of "
                          f"{', '.join(BINARIZE)}.")
    if config.binarize != "none" and spec_cls.kind == "binary":
        raise ConfigError(
                f"data.binarize: '{config.binarize}' binarizes grey-level data, but "
                f"'{config.name}' is already binary (pixels in {{0, 1}}). Set data.binarize: none.")
    if config.binarize != "none" and spec_cls.kind not in IMAGE_KINDS:
        raise ConfigError(
                f"data.binarize: '{config.binarize}' binarizes grey-level images, but "
                f"'{config.name}' is {spec_cls.kind} (float vectors). Set data.binarize: none.")
    for key in ("batch_size", "eval_batch_size", "shuffle_buffer"):
        if getattr(config, key) < 1:
            raise ConfigError(f"data.{key}: must be at least 1, got {getattr(config, key)}.")
    if config.max_examples is not None and config.max_examples < 1:
        raise ConfigError(f"data.max_examples: must be at least 1 (or null for all), got "
                          f"{config.max_examples}.")
    assert spec_cls.kind in KINDS, spec_cls
    return spec_cls


def _capped(num_examples: Dict[str, int], config: DataConfig) -> Dict[str, int]:
    cap = config.max_examples
    return {split: n if cap is None else min(n, cap) for split, n in num_examples.items()}


def _check_batch_size(num_examples: Dict[str, int], config: DataConfig) -> None:
    if num_examples["train"] < config.batch_size:
        raise ConfigError(
                f"data.batch_size: {config.batch_size} is more than the "
                f"{num_examples['train']} training examples of '{config.name}', so the training "
                f"set would have no full batch. Lower data.batch_size or raise data.max_examples.")


def _info(spec_cls: type, config: DataConfig, num_examples: Dict[str, int]) -> DatasetInfo:
    kind = "binary" if config.binarize != "none" else spec_cls.kind
    return DatasetInfo(name=config.name, image_shape=tuple(spec_cls.image_shape), kind=kind,
                       num_examples=_capped(num_examples, config),
                       event_shape=tuple(spec_cls.image_shape),
                       has_labels=bool(spec_cls.has_labels),
                       num_classes=spec_cls.num_classes if spec_cls.has_labels else None)


def dataset_info(config: DataConfig) -> DatasetInfo:
    """The shape, kind, labels and split sizes of `config`'s data, without reading any data.

    The split sizes are those of the canonical dataset (capped by `max_examples`); a local source
    file with fewer examples shows its real sizes in `load_datasets(...).info`.

    Raises:
        ConfigError: unknown dataset name (the message lists the registered ones), binarizing
            binary data or points, non-positive sizes, or a batch larger than the training set.
    """
    spec_cls = _spec_class(config)
    info = _info(spec_cls, config, dict(spec_cls.num_examples))
    _check_batch_size(info.num_examples, config)
    return info


def _to_float(kind: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """Stored values -> float32: grey k (uint8) -> k / 255; binary and points as they are."""
    if kind == "grey":
        return lambda image: tf.cast(image, tf.float32) / 255.0
    return lambda image: tf.cast(image, tf.float32)


def _bernoulli(probs: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """x ~ Bernoulli(probs) elementwise, float32 {0, 1}, from stateless noise with `seed` [2]."""
    noise = tf.random.stateless_uniform(tf.shape(probs), seed=seed, dtype=probs.dtype)
    return tf.cast(noise < probs, tf.float32)


def _threshold(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x > 0.5, tf.float32)


def _eval_transform(kind: str, binarize: str, split: str) -> Callable:
    """`(index, stored element) -> float32 element` of an evaluation split (fixed processing).

    `dynamic` is one Bernoulli draw per example, seeded by (EVAL_BINARIZATION_SEED + split
    index, example index).
    """
    to_float = _to_float(kind)
    split_seed = tf.constant(EVAL_BINARIZATION_SEED + SPLITS.index(split), tf.int64)

    def transform(index, element):
        x = to_float(element)
        if binarize == "threshold":
            return _threshold(x)
        if binarize == "dynamic":
            return _bernoulli(x, tf.stack([split_seed, index]))
        return x

    return transform


def _evaluation_split(spec: DatasetSpec, split: str, config: DataConfig,
                      tfds_data_dir: Optional[str], with_labels: bool = False,
                      indices: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """Unbatched float32 elements of `split` in file order, processed as for evaluation.

    Without labels the elements come from `stored_array` (decoded once per process); `indices`
    keeps those examples only (increasing), each processed as in the whole split. With
    `with_labels`, elements are `(element, int64 label)` read from the records.
    """
    transform = _eval_transform(spec.kind, config.binarize, split)
    if with_labels:
        dataset = spec.as_dataset(split, tfds_data_dir, config.max_examples,
                                  with_labels=True).enumerate()
        return dataset.map(lambda i, pair: (transform(i, pair[0]), pair[1]),
                           num_parallel_calls=tf.data.AUTOTUNE)
    examples = stored_array(spec, split, config, tfds_data_dir)
    if indices is None:
        indices = np.arange(len(examples), dtype=np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((indices, examples[indices]))
    return dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE)


def _cached_if_small(batched: tf.data.Dataset, num_examples: int,
                     element_shape: Tuple[int, ...]) -> tf.data.Dataset:
    """`batched.cache()` when its float32 elements fit in `EVAL_CACHE_BYTES`."""
    size = 4 * num_examples * int(np.prod(element_shape))
    return batched.cache() if size <= EVAL_CACHE_BYTES else batched


def _with_options(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def _training_seeds(seed: int) -> Tuple[tf.Tensor, tf.Tensor, int]:
    """Stateless keys `[2]` for the shuffle and the binarization noise, and an op seed for
    the per-iteration key of the legacy (non-resumable) contract, all derived from `seed`."""
    state = np.random.SeedSequence(seed % 2**64).generate_state(5, dtype=np.uint32)
    keys = state[:4].astype(np.int64)
    return (tf.constant(keys[:2], tf.int64), tf.constant(keys[2:], tf.int64), int(state[4]))


_STORED_ARRAYS: "collections.OrderedDict[tuple, np.ndarray]" = collections.OrderedDict()
_STORED_ARRAYS_KEPT = 6


def stored_array(spec: DatasetSpec, split: str, config: DataConfig,
                 tfds_data_dir: Optional[str]) -> np.ndarray:
    """All stored elements of `split` (uint8 images or float32 points) as one read-only numpy
    array.

    Decoded from the prepared records once, then kept beside them as a `.npy` file
    (`DatasetSpec.array_cache_path`) that later processes load instead of decoding the records
    again, and in memory for the rest of the process (the last few splits, keyed by dataset,
    source folder, TFDS folder, split and `max_examples`). A folder that cannot be written only
    costs the decoding.
    """
    key = (type(spec).__name__, config.name, spec.data_dir if hasattr(spec, "data_dir") else None,
           tfds_data_dir or os.environ.get("TFDS_DATA_DIR"), split, config.max_examples)
    if key in _STORED_ARRAYS:
        _STORED_ARRAYS.move_to_end(key)
        return _STORED_ARRAYS[key]
    path = spec.array_cache_path(split, tfds_data_dir, config.max_examples)
    array = _load_array(path) if path else None
    if array is None:
        array = _decode_split(spec, split, config, tfds_data_dir)
        if path:
            _save_array(path, array)
    array.setflags(write=False)
    _STORED_ARRAYS[key] = array
    while len(_STORED_ARRAYS) > _STORED_ARRAYS_KEPT:
        _STORED_ARRAYS.popitem(last=False)
    return array


def _decode_split(spec: DatasetSpec, split: str, config: DataConfig,
                  tfds_data_dir: Optional[str]) -> np.ndarray:
    dataset = spec.as_dataset(split, tfds_data_dir, config.max_examples)
    batches = list(dataset.batch(4096).as_numpy_iterator())
    if batches:
        return np.concatenate(batches, axis=0)
    return np.zeros((0,) + tuple(spec.image_shape),
                    np.uint8 if spec.kind in IMAGE_KINDS else np.float32)


def _load_array(path: str) -> Optional[np.ndarray]:
    """The array saved at `path`, or None if there is none (or it cannot be read)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _save_array(path: str, array: np.ndarray) -> None:
    """Writes `array` to `path` atomically (a temporary file renamed into place), or nothing
    where the folder cannot be written."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as file:
            np.save(file, array, allow_pickle=False)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(temporary)


class _TrainingBatches:
    """The training batches of the module docstring: batch `g` is a function of `(seed, g)`."""

    def __init__(self, examples: np.ndarray, kind: str, config: DataConfig, seed: int):
        self.examples = tf.constant(examples)
        self.num_examples = int(examples.shape[0])
        self.batch_size = config.batch_size
        self.steps_per_epoch = self.num_examples // self.batch_size
        self.shuffle = config.shuffle_buffer > 1
        self.binarize = config.binarize
        self.to_float = _to_float(kind)
        self.shuffle_key, self.noise_key, self.legacy_seed = _training_seeds(seed)

    def batch(self, epoch: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        """Batch `index` of epoch `epoch` (int64 scalars): float32 `[B, ...]`."""
        fold_in = tf.random.experimental.stateless_fold_in
        positions = index * self.batch_size + tf.range(self.batch_size, dtype=tf.int64)
        if self.shuffle:
            positions = tf.random.experimental.index_shuffle(
                    positions, seed=fold_in(self.shuffle_key, epoch),
                    max_index=tf.constant(self.num_examples - 1, tf.int64))
        x = self.to_float(tf.gather(self.examples, positions))
        if self.binarize == "threshold":
            return _threshold(x)
        if self.binarize == "dynamic":
            return _bernoulli(x, fold_in(fold_in(self.noise_key, epoch), index))
        return x

    def _at(self, step: tf.Tensor) -> tf.Tensor:
        return self.batch(step // self.steps_per_epoch, step % self.steps_per_epoch)

    def stream(self, initial_step: int) -> tf.data.Dataset:
        """The infinite stream of batches `initial_step`, `initial_step + 1`, ..."""
        return tf.data.Dataset.counter(initial_step).map(
                self._at, num_parallel_calls=tf.data.AUTOTUNE)

    def epoch(self, epoch: int) -> tf.data.Dataset:
        """The `steps_per_epoch` batches of epoch `epoch`."""
        first = epoch * self.steps_per_epoch
        return tf.data.Dataset.range(first, first + self.steps_per_epoch).map(
                self._at, num_parallel_calls=tf.data.AUTOTUNE)

    def legacy_epoch(self) -> tf.data.Dataset:
        """One epoch keyed by a random int64 drawn anew each time the dataset is iterated."""
        keys = tf.data.Dataset.random(seed=self.legacy_seed, rerandomize_each_iteration=True)
        epoch = keys.take(1).flat_map(lambda key: tf.data.Dataset.range(
                self.steps_per_epoch).map(lambda index: self.batch(key, index),
                                          num_parallel_calls=tf.data.AUTOTUNE))
        return epoch.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))


def load_datasets(config: DataConfig, seed: int, tfds_data_dir: Optional[str] = None,
                  initial_epoch: Optional[int] = None, *,
                  initial_step: Optional[int] = None) -> Datasets:
    """Prepares (once) and loads `config.name` as batched train/validation/test.

    Args:
        config: the `data` section of the experiment config.
        seed: seeds the training order and dynamic binarization (same seed, same batches).
        tfds_data_dir: where TFDS keeps prepared datasets (default `$TFDS_DATA_DIR`, else
            `~/tensorflow_datasets`); local source files are read from `config.data_dir`.
        initial_epoch: the first training epoch of `train` (the epochs already done when
            resuming): `train` is then the infinite stream of epochs `initial_epoch`,
            `initial_epoch + 1`, ..., exactly as an uninterrupted run sees them (module
            docstring); pass `steps_per_epoch` to `fit`.
        initial_step: instead of `initial_epoch`, the first global training batch (for
            trainers whose epochs are not one pass over the data).

    Without `initial_epoch` and `initial_step`, `train` is one finite epoch with a new order
    each time it is iterated (the previous, non-resumable contract).

    Returns:
        `Datasets` whose splits yield float32 `[B, H, W, C]` in [0, 1] (`[B, D]` for points).

    Raises:
        ConfigError: as `dataset_info`, or both `initial_epoch` and `initial_step` given.
        DataError: the source data is missing or unreadable (the message says the fix).
    """
    if initial_epoch is not None and initial_step is not None:
        raise ConfigError("load_datasets: give initial_epoch or initial_step, not both.")
    for name, value in (("initial_epoch", initial_epoch), ("initial_step", initial_step)):
        if value is not None and value < 0:
            raise ConfigError(f"load_datasets: {name} must be >= 0, got {value}.")
    spec_cls = _spec_class(config)
    spec = spec_cls(data_dir=config.data_dir)
    info = _info(spec_cls, config, spec.prepared_split_sizes(tfds_data_dir))
    _check_batch_size(info.num_examples, config)

    batches = _TrainingBatches(stored_array(spec, "train", config, tfds_data_dir),
                               spec_cls.kind, config, seed)
    if initial_epoch is not None:
        train = batches.stream(initial_epoch * batches.steps_per_epoch)
    elif initial_step is not None:
        train = batches.stream(initial_step)
    else:
        train = batches.legacy_epoch()

    num_validation = len(stored_array(spec, "validation", config, tfds_data_dir))
    subsets = {"validation": evenly_spaced_indices(num_validation, config.validation_examples),
               "test": None}
    evaluation = {}
    for split, indices in subsets.items():
        examples = _evaluation_split(spec, split, config, tfds_data_dir, indices=indices)
        count = len(indices) if indices is not None else info.num_examples[split]
        evaluation[split] = _cached_if_small(examples.batch(config.eval_batch_size), count,
                                             spec_cls.image_shape)
    return Datasets(
            train=_with_options(train.prefetch(tf.data.AUTOTUNE)),
            validation=_with_options(evaluation["validation"].prefetch(tf.data.AUTOTUNE)),
            test=_with_options(evaluation["test"].prefetch(tf.data.AUTOTUNE)),
            info=info,
            steps_per_epoch=batches.steps_per_epoch,
            validation_examples=len(subsets["validation"]),
            _train_epoch=lambda epoch: _with_options(
                    batches.epoch(epoch).prefetch(tf.data.AUTOTUNE)),
            _images=lambda split, num: _images(spec, split, config, tfds_data_dir, num))


def _images(spec: DatasetSpec, split: str, config: DataConfig, tfds_data_dir: Optional[str],
            num: Optional[int] = None) -> np.ndarray:
    """The first `num` (None: all) examples of `split`, processed as for evaluation, as numpy."""
    spec.check_split(split)
    total = len(stored_array(spec, split, config, tfds_data_dir))
    count = total if num is None else min(num, total)
    dataset = _evaluation_split(spec, split, config, tfds_data_dir,
                                indices=np.arange(count, dtype=np.int64))
    batches = list(dataset.batch(max(config.eval_batch_size, 1000)).as_numpy_iterator())
    if not batches:
        return np.zeros((0,) + tuple(spec.image_shape), np.float32)
    return np.concatenate(batches, axis=0)


def load_images(config: DataConfig, split: str,
                tfds_data_dir: Optional[str] = None) -> np.ndarray:
    """All images of `split` as one float32 numpy array `[N, H, W, C]` in [0, 1], in file order.

    Processed as an evaluation split: `dynamic` binarization is the fixed draw (also for
    `train`), `threshold` is applied, `max_examples` caps N. For evaluation code, pseudo-input
    initialisation and tests. Point datasets give `[N, D]`. The split is decoded once per
    process (`stored_array`).
    """
    spec_cls = _spec_class(config)
    return _images(spec_cls(data_dir=config.data_dir), split, config, tfds_data_dir)


def _numpy_batches(dataset: tf.data.Dataset, batch_size: int) -> list:
    return list(dataset.batch(max(batch_size, 1000)).as_numpy_iterator())


def load_labelled(config: DataConfig, split: str, tfds_data_dir: Optional[str] = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """The images of `split` and their class labels, in file order.

    ```python
    x, y = load_labelled(DataConfig(name="fashion_mnist"), "train")   # for a feature classifier
    ```

    The images are those of `load_images(config, split)` (same processing and order).

    Returns:
        `(images, labels)`: float32 `[N, H, W, C]` (`[N, D]` for points) and int64 `[N]` in
        `0 .. num_classes - 1`.

    Raises:
        ConfigError: as `dataset_info`.
        DataError: the dataset has no labels (`DatasetInfo.has_labels` is False; the message
            lists the datasets that have them), or its source is missing.
    """
    spec_cls = _spec_class(config)
    if not spec_cls.has_labels:
        raise DataError(unlabelled_message(config.name) + " Choose one of those for data.name.")
    spec = spec_cls(data_dir=config.data_dir)
    dataset = _evaluation_split(spec, split, config, tfds_data_dir, with_labels=True)
    batches = _numpy_batches(dataset, config.eval_batch_size)
    if not batches:
        return (np.zeros((0,) + tuple(spec_cls.image_shape), np.float32),
                np.zeros((0,), np.int64))
    return (np.concatenate([x for x, _ in batches], axis=0),
            np.concatenate([y for _, y in batches], axis=0))
