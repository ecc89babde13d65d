"""`evaluate_sample_quality`: which images and which classifier score a run's samples."""

import numpy as np
import pytest

from tfdgm import experiment
from tfdgm.data import load_labelled
from tfdgm.evaluation.quality import evaluate_sample_quality, reference_data_config


def _config(binarize):
    return experiment.from_dict({
        "name": "quality",
        "data": {"name": "mnist5k", "binarize": binarize, "eval_batch_size": 100,
                 "max_examples": 300},
        "model": {"name": "vae", "latent_dim": 2, "encoder": {"name": "mlp", "hidden_units": [8]},
                  "decoder": {"name": "mlp", "hidden_units": [8]},
                  "likelihood": {"name": "gaussian" if binarize == "none" else "bernoulli"}},
        "evaluation": {"sample_quality_samples": 200},
    })


class _TrainingImages:
    """A generator whose samples are grey training images (a perfect model of the grey data,
    and of its dynamic binarization's means `E[x_b | x] = x`)."""

    def __init__(self, images):
        self.images = images

    def sample(self, num, temperature=1.0, seed=0):
        rng = np.random.default_rng(seed)
        return self.images[rng.choice(len(self.images), num, replace=False)]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("feature_networks"))


def test_a_dynamically_binarized_run_is_scored_on_the_grey_images(cache_dir, monkeypatch):
    monkeypatch.setenv("TFDGM_CACHE_DIR", cache_dir)
    grey = _config("none")
    dynamic = _config("dynamic")
    assert reference_data_config(dynamic.data) == grey.data
    assert reference_data_config(grey.data) is grey.data
    model = _TrainingImages(load_labelled(grey.data, "train")[0])
    on_grey = evaluate_sample_quality(model, grey)
    on_dynamic = evaluate_sample_quality(model, dynamic)
    # One classifier (trained on the grey images) and one reference set: the same figures, so a
    # Bernoulli model's means and a GAN's samples are on one scale.
    assert on_dynamic == on_grey
    assert on_dynamic["test_feature_network"]["dataset"] == on_grey["test_feature_network"][
        "dataset"]
    assert on_dynamic["test_classifier_precision"] > 0.5


def test_a_thresholded_run_keeps_its_own_images_and_classifier(cache_dir, monkeypatch):
    monkeypatch.setenv("TFDGM_CACHE_DIR", cache_dir)
    threshold = _config("threshold")
    assert reference_data_config(threshold.data) is threshold.data
    model = _TrainingImages(load_labelled(threshold.data, "train")[0])
    grey = evaluate_sample_quality(_TrainingImages(load_labelled(_config("none").data,
                                                                 "train")[0]), _config("none"))
    binary = evaluate_sample_quality(model, threshold)
    assert binary["test_feature_network"]["key"] != grey["test_feature_network"]["key"]
