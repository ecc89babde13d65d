"""`tf.data` pipelines: a registered dataset + `DataConfig` -> batched float32 train/valid/test.

The contract the trainer relies on:

* every split yields float32 images `[B, H, W, C]` in [0, 1]; grey data is `k / 255` for the 8-bit
  level `k` (exactly recoverable as `round(255 * x)`, which a discretized-logistic likelihood
  needs); binary data is {0, 1};
* `train` is shuffled (buffer `shuffle_buffer`, seeded by `seed`, a new order every epoch) and
  batched by `batch_size` with `drop_remainder=True`; `validation` and `test` are in file order,
  batched by `eval_batch_size`, with the last partial batch kept;
* `binarize` (grey data only; binary data is a `ConfigError`):
  - `dynamic`: x ~ Bernoulli(grey level), a fresh draw every epoch on `train` (stateless noise
    seeded by one `Dataset.random(seed, rerandomize_each_iteration=True)` value per batch, so
    runs with the same seed see the same draws); `validation` and `test` get one draw with the
    fixed seed `EVAL_BINARIZATION_SEED` (per example, independent of batch size and of `seed`),
    so evaluation is deterministic and comparable across runs;
  - `threshold`: x = 1[grey level > 0.5];
* `max_examples` keeps the first N examples of every split (smoke tests).

Decoded images are cached in memory (`.cache()`, all datasets here are small) and every split ends
with `.prefetch(AUTOTUNE)`. The datasets come from TFDS (`builder.as_dataset`).

The datasets set `auto_shard_policy=DATA`: under `MultiWorkerMirroredStrategy` every worker
builds the same (seeded) pipeline and `experimental_distribute_dataset` gives each its slice of
every global batch, so the workers' shards are disjoint and the steps equal one device's.
"""

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfdgm.config import DataConfig
from tfdgm.data.spec import KINDS, SPLITS, DatasetSpec
from tfdgm.errors import ConfigError
from tfdgm.registry import DATASETS

BINARIZE = ("none", "dynamic", "threshold")
EVAL_BINARIZATION_SEED = 2011


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data before training.

    Attributes:
        name: the registered dataset name.
        image_shape: `(H, W, C)`.
        kind: pixel kind the model sees: `'binary'` ({0, 1}, also after `binarize`) or `'grey'`
            (k / 255).
        num_examples: split -> number of examples (after `max_examples`).
    """
    name: str
    image_shape: Tuple[int, int, int]
    kind: str
    num_examples: Dict[str, int]


@dataclasses.dataclass
class Datasets:
    """The three batched splits (see the module docstring) and their `DatasetInfo`."""
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    info: DatasetInfo


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
                       num_examples=_capped(num_examples, config))


def dataset_info(config: DataConfig) -> DatasetInfo:
    """The shape, pixel kind and split sizes of `config`'s data, without reading any data.

    The split sizes are those of the canonical dataset (capped by `max_examples`); a local source
    file with fewer examples shows its real sizes in `load_datasets(...).info`.

    Raises:
        ConfigError: unknown dataset name (the message lists the registered ones), binarizing
            binary data, non-positive sizes, or a batch larger than the training set.
    """
    spec_cls = _spec_class(config)
    info = _info(spec_cls, config, dict(spec_cls.num_examples))
    _check_batch_size(info.num_examples, config)
    return info


def _to_unit_interval(kind: str):
    """uint8 `[H, W, C]` -> float32 in [0, 1]: grey k -> k / 255; binary as is."""
    if kind == "grey":
        return lambda image: tf.cast(image, tf.float32) / 255.0
    return lambda image: tf.cast(image, tf.float32)


def _bernoulli(probs: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """x ~ Bernoulli(probs) elementwise, float32 {0, 1}, from stateless noise with `seed` [2]."""
    noise = tf.random.stateless_uniform(tf.shape(probs), seed=seed, dtype=probs.dtype)
    return tf.cast(noise < probs, tf.float32)


def _fixed_binarization(split: str):
    """A deterministic Bernoulli draw per example: seed (EVAL_BINARIZATION_SEED + split, index)."""
    split_seed = tf.constant(EVAL_BINARIZATION_SEED + SPLITS.index(split), tf.int64)

    def binarize(index, image):
        return _bernoulli(image, tf.stack([split_seed, index]))

    return binarize


def _decoded(spec: DatasetSpec, split: str, config: DataConfig, tfds_data_dir: Optional[str],
             fixed_draw: bool) -> tf.data.Dataset:
    """Unbatched float32 images of `split` in file order, binarized where that is fixed, cached.

    `fixed_draw`: apply `dynamic` binarization here, once, with the fixed evaluation seed.
    """
    dataset = spec.as_dataset(split, tfds_data_dir, config.max_examples)
    dataset = dataset.map(_to_unit_interval(spec.kind), num_parallel_calls=tf.data.AUTOTUNE)
    if config.binarize == "threshold":
        dataset = dataset.map(lambda x: tf.cast(x > 0.5, tf.float32),
                              num_parallel_calls=tf.data.AUTOTUNE)
    elif config.binarize == "dynamic" and fixed_draw:
        dataset = dataset.enumerate().map(_fixed_binarization(split),
                                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.cache()


def _with_options(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def _training_seeds(seed: int) -> Tuple[int, int]:
    """Two independent op seeds (shuffle, binarization noise) derived from `seed`."""
    shuffle_seed, noise_seed = np.random.SeedSequence(seed % 2**64).generate_state(2)
    return int(shuffle_seed), int(noise_seed)


def load_datasets(config: DataConfig, seed: int,
                  tfds_data_dir: Optional[str] = None) -> Datasets:
    """Prepares (once) and loads `config.name` through TFDS as batched train/validation/test.

    Args:
        config: the `data` section of the experiment config.
        seed: seeds the training shuffle and dynamic binarization (same seed, same batches).
        tfds_data_dir: where TFDS keeps prepared datasets (default `$TFDS_DATA_DIR`, else
            `~/tensorflow_datasets`); local source files are read from `config.data_dir`.

    Returns:
        `Datasets` whose splits yield float32 `[B, H, W, C]` in [0, 1] (module docstring).

    Raises:
        ConfigError: as `dataset_info`.
        DataError: the source data is missing or unreadable (the message says the fix).
    """
    spec_cls = _spec_class(config)
    spec = spec_cls(data_dir=config.data_dir)
    builder = spec.prepare(tfds_data_dir)
    info = _info(spec_cls, config, spec_cls.split_sizes(builder))
    _check_batch_size(info.num_examples, config)

    shuffle_seed, noise_seed = _training_seeds(seed)
    train = _decoded(spec, "train", config, tfds_data_dir, fixed_draw=False)
    train = train.shuffle(min(config.shuffle_buffer, info.num_examples["train"]),
                          seed=shuffle_seed, reshuffle_each_iteration=True)
    train = train.batch(config.batch_size, drop_remainder=True)
    if config.binarize == "dynamic":
        noise_seeds = tf.data.Dataset.random(seed=noise_seed, rerandomize_each_iteration=True)
        train = tf.data.Dataset.zip(train, noise_seeds).map(
                lambda x, s: _bernoulli(x, tf.stack([s, tf.constant(0, tf.int64)])),
                num_parallel_calls=tf.data.AUTOTUNE)

    evaluation = {
            split: _decoded(spec, split, config, tfds_data_dir, fixed_draw=True)
            .batch(config.eval_batch_size) for split in ("validation", "test")}
    return Datasets(
            train=_with_options(train.prefetch(tf.data.AUTOTUNE)),
            validation=_with_options(evaluation["validation"].prefetch(tf.data.AUTOTUNE)),
            test=_with_options(evaluation["test"].prefetch(tf.data.AUTOTUNE)),
            info=info)


def load_images(config: DataConfig, split: str,
                tfds_data_dir: Optional[str] = None) -> np.ndarray:
    """All images of `split` as one float32 numpy array `[N, H, W, C]` in [0, 1], in file order.

    Processed as an evaluation split: `dynamic` binarization is the fixed draw (also for
    `train`), `threshold` is applied, `max_examples` caps N. For evaluation code, pseudo-input
    initialisation and tests.
    """
    spec_cls = _spec_class(config)
    spec = spec_cls(data_dir=config.data_dir)
    dataset = _decoded(spec, split, config, tfds_data_dir, fixed_draw=True)
    batches = list(dataset.batch(max(config.eval_batch_size, 1000)).as_numpy_iterator())
    if not batches:
        return np.zeros((0,) + tuple(spec_cls.image_shape), np.float32)
    return np.concatenate(batches, axis=0)
