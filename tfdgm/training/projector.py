"""Latent codes of a fixed test subset for TensorBoard's embedding projector.

The projector plugin (`tensorboard.plugins.projector`) reads, from a run directory:

    projector_config.pbtxt   a `ProjectorConfig` text proto: one embedding per code the model
                             gives (`model.embeddings`), each naming its checkpoint tensor, the
                             metadata file and the sprite
    checkpoint, embeddings-1.*
                             a TF checkpoint holding each code `[N, D]` as a variable (tensor
                             `<name>/.ATTRIBUTES/VARIABLE_VALUE`), found through the
                             `checkpoint` state file
    metadata.tsv             one row per example: the example's index in the test split and,
                             where the dataset has labels, its class (then with a header row
                             `index<TAB>label`; a single column has no header)
    sprite.png               the examples' images in a square grid, `single_image_dim` =
                             [width, height] of one image (image datasets only)

The subset is `limit` test examples spread evenly over the split (`evenly_spaced_indices`), so
every run of a dataset shows the same examples; a user colours the points by label and runs
PCA or t-SNE in the browser (the lectures' 2-D latent-space figures).
"""

import dataclasses
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

from tfdgm.config import DataConfig
from tfdgm.data import dataset_info, evenly_spaced_indices, load_images, load_labelled
from tfdgm.evaluation.images import save_png, sprite

EXAMPLES = 1000
"""Test examples shown by default."""

CHECKPOINT_NAME = "embeddings"
METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"
MAX_SPRITE_SIDE = 8192
"""The projector does not load sprites wider or taller than this (pixels)."""


@dataclasses.dataclass(frozen=True)
class ProjectorExamples:
    """The examples whose codes the projector shows.

    Attributes:
      images: `[N, H, W, C]` in [0, 1] (`[N, D]` for point datasets), processed as the test
        split is for evaluation.
      indices: `[N]` int64 positions of the examples in the test split.
      labels: `[N]` int64 classes, or None for a dataset without labels.
    """
    images: np.ndarray
    indices: np.ndarray
    labels: Optional[np.ndarray] = None


def projector_examples(config: DataConfig, limit: int = EXAMPLES,
                  tfds_data_dir: Optional[str] = None) -> ProjectorExamples:
    """`limit` test examples of `config`'s dataset, evenly spaced, with labels where it has them.

    ```python
    examples = projector_examples(config.data)        # 1000 of the test split
    examples.images.shape, examples.labels[:3]   # (1000, 28, 28, 1), [7, 4, 1]
    ```
    """
    if dataset_info(config).has_labels:
        images, labels = load_labelled(config, "test", tfds_data_dir)
    else:
        images, labels = load_images(config, "test", tfds_data_dir), None
    indices = evenly_spaced_indices(len(images), limit)
    return ProjectorExamples(images=images[indices], indices=indices,
                             labels=None if labels is None else labels[indices])


def model_embeddings(model, images: np.ndarray, batch_size: int) -> Dict[str, np.ndarray]:
    """`model.embeddings` of `images [N, ...]` computed `batch_size` at a time:
    `{name: [N, D]}`, empty for a model without codes."""
    chunks = [model.embeddings(images[start:start + batch_size])
              for start in range(0, len(images), batch_size)]
    if not chunks or not chunks[0]:
        return {}
    return {name: np.concatenate([np.asarray(chunk[name], np.float32) for chunk in chunks])
            for name in chunks[0]}


def tensor_name(name: str) -> str:
    """The checkpoint key of the variable holding embedding `name`."""
    return f"{name}/.ATTRIBUTES/VARIABLE_VALUE"


def _metadata_rows(examples: ProjectorExamples) -> List[str]:
    if examples.labels is None:
        return [str(int(index)) for index in examples.indices]
    return ["index\tlabel"] + [f"{int(index)}\t{int(label)}"
                               for index, label in zip(examples.indices, examples.labels)]


def _sprite_fits(images: np.ndarray) -> bool:
    if images.ndim != 4:
        return False
    side = int(np.ceil(np.sqrt(len(images))))
    return side * max(images.shape[1:3]) <= MAX_SPRITE_SIDE


def write_projector(log_dir: str, embeddings: Dict[str, np.ndarray],
                    examples: ProjectorExamples) -> Optional[str]:
    """Writes the files of the module docstring for `embeddings` `{name: [N, D]}` of `examples`
    into `log_dir`; returns the path of `projector_config.pbtxt`, or None (and writes nothing)
    when there are no embeddings.

    ```python
    examples = projector_examples(config.data)
    write_projector("runs/quickstart/logs/test", model.embeddings(examples.images), examples)
    ```
    """
    if not embeddings:
        return None
    count = len(examples.indices)
    for name, values in embeddings.items():
        if np.ndim(values) != 2 or len(values) != count:
            raise ValueError(f"embedding '{name}' has shape {np.shape(values)}; expected "
                             f"[{count}, D], one code per example.")
    os.makedirs(log_dir, exist_ok=True)
    with tf.device("/cpu:0"):
        variables = {name: tf.Variable(np.asarray(values, np.float32), trainable=False, name=name)
                     for name, values in embeddings.items()}
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(**variables), log_dir,
                                         max_to_keep=1, checkpoint_name=CHECKPOINT_NAME)
    manager.save()

    with open(os.path.join(log_dir, METADATA_FILE), "w") as f:
        f.write("\n".join(_metadata_rows(examples)) + "\n")
    with_sprite = _sprite_fits(examples.images)
    if with_sprite:
        save_png(sprite(examples.images), os.path.join(log_dir, SPRITE_FILE))

    config = projector.ProjectorConfig()
    for name in embeddings:
        embedding = config.embeddings.add()
        embedding.tensor_name = tensor_name(name)
        embedding.metadata_path = METADATA_FILE
        if with_sprite:
            embedding.sprite.image_path = SPRITE_FILE
            height, width = examples.images.shape[1:3]
            embedding.sprite.single_image_dim.extend([width, height])
    projector.visualize_embeddings(log_dir, config)
    return os.path.join(log_dir, "projector_config.pbtxt")

