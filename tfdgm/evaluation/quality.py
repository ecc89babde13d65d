"""Sample quality of any model with the contract's `sample`, against its dataset's test split.

    metrics = evaluate_sample_quality(model, config)      # config.evaluation.sample_quality_*

The dataset's feature network (a classifier trained once on the labelled training split and
cached, `tfdgm.evaluation.feature_network`) embeds `n = evaluation.sample_quality_samples` test
images and `n` samples drawn with `model.sample(n, evaluation.sample_quality_temperature)`;
`tfdgm.evaluation.sample_quality` compares them. Every family's `sample` returns grey images in
[0, 1]: decoder means (a Bernoulli VAE), `p(v = 1 | h)` (RBM, DBN), generator outputs (GAN),
flow samples. The reference images, and the images the classifier is trained on, are:

* for `data.binarize: dynamic`, the dataset's grey images. A model of the binarized data
  `x_b ~ Bernoulli(x)` returns means, estimates of `E[x_b | x] = x`, so the grey images are
  what its samples are draws of; a fixed binarized draw of the test split would score even a
  perfect model's means badly. Such runs share the grey dataset's classifier and scale with
  the models trained on grey images (a GAN, a flow).
* otherwise the images the model trains on (`threshold`: the thresholded images).

Figures compare only runs scored by the same classifier (`feature_network.key` in
`metrics.json`), never published Inception-based FIDs.
"""

import dataclasses
from typing import Any, Dict

import numpy as np

from tfdgm.data import dataset_info, load_labelled
from tfdgm.evaluation.feature_network import load_or_train
from tfdgm.evaluation.sample_quality import sample_quality


def reference_data_config(data_config):
    """The `data:` section whose labelled images score a model's samples and train the
    classifier: `binarize: none` in place of `dynamic` (see the module docstring), else
    `data_config` itself.

    ```python
    reference_data_config(DataConfig(name="fashion_mnist", binarize="dynamic")).binarize  # none
    ```
    """
    if data_config.binarize == "dynamic":
        return dataclasses.replace(data_config, binarize="none")
    return data_config


def _classifier_name(data_config) -> str:
    """The cache name of a dataset's classifier, by what its images are (binarized or not)."""
    binarize = data_config.binarize
    return data_config.name if binarize == "none" else f"{data_config.name}-{binarize}"


def evaluate_sample_quality(model, config, batch_size: int = 500) -> Dict[str, Any]:
    """`test_classifier_fid`, `test_classifier_kid` (+ `_std`), `test_classifier_precision`,
    `test_classifier_recall`, `test_classifier_inception_score` (+ `_std`, and `_real` for the
    test images themselves) and `test_feature_network` (the classifier's record: key, weights'
    sha256, held-out accuracy). Returns `{}` with a printed reason where there is nothing to
    score against (a dataset without labels, or point data)."""
    evaluation = config.evaluation
    num = evaluation.sample_quality_samples
    data = reference_data_config(config.data)
    info = dataset_info(data)
    if not info.has_labels or len(info.image_shape) != 3:
        print(f"Sample quality skipped: dataset '{data.name}' has no labelled images to "
              f"train its feature network on.")
        return {}
    train = load_labelled(data, "train")
    validation = load_labelled(data, "validation")
    network = load_or_train(_classifier_name(data), *train, *validation,
                            epochs=10 if len(train[0]) < 20000 else 3, seed=config.seed)
    real, _ = load_labelled(data, "test")
    num = min(num, len(real))
    fake = np.concatenate([
        np.clip(model.sample(min(batch_size, num - start),
                             temperature=evaluation.sample_quality_temperature,
                             seed=config.seed + 17 + start), 0.0, 1.0)
        for start in range(0, num, batch_size)]).astype(np.float32)
    scores = sample_quality(network, real[:num], fake, kid_subset_size=min(1000, num),
                            seed=config.seed)
    record = scores.pop("feature_network")
    scores.pop("settings", None)
    metrics = {f"test_{key}": value for key, value in scores.items()
               if isinstance(value, (int, float))}
    metrics["test_feature_network"] = {"key": record["key"],
                                       "weights_sha256": record["weights_sha256"],
                                       "validation_accuracy": record["validation_accuracy"],
                                       "dataset": record["dataset"]}
    return metrics
