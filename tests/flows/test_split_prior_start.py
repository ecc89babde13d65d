"""Glow's split priors start at `N(0, exp(split_prior_log_std)^2 I)`: 0 by default (the
paper's), -2 on request (TFP's start), and the setting survives serialization."""

import numpy as np
import tensorflow as tf

from tfdgm import experiment
from tfdgm.flows.priors import ConditionalGaussianPrior


def _split_priors(model):
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, ConditionalGaussianPrior)]


def test_the_prior_starts_at_its_log_std_and_round_trips():
    prior = ConditionalGaussianPrior(channels=3, initial_log_std=-2.0)
    mean, log_std = prior(tf.random.normal([2, 4, 4, 5]))
    np.testing.assert_array_equal(mean, np.zeros([2, 4, 4, 3]))
    np.testing.assert_array_equal(log_std, np.full([2, 4, 4, 3], -2.0))
    clone = ConditionalGaussianPrior.from_config(prior.get_config())
    assert clone.initial_log_std == -2.0 and clone.channels == 3


def test_glow_defaults_to_the_papers_start_and_takes_tfps():
    for raw, expected in (({}, 0.0), ({"split_prior_log_std": -2.0}, -2.0)):
        config = experiment.from_dict({
            "name": "glow", "data": {"name": "mnist5k", "batch_size": 4, "max_examples": 8},
            "model": {"name": "glow", "num_levels": 2, "num_steps": 1, "hidden_channels": 4,
                      **raw}})
        model = experiment.build_model(config, experiment.dataset_info(config.data))
        model.build()
        priors = _split_priors(model)
        assert priors and all(p.initial_log_std == expected for p in priors)
        _, log_std = priors[0](tf.zeros([1, 14, 14, 2]))
        np.testing.assert_array_equal(log_std, np.full(log_std.shape, expected))
        assert model.get_config()["split_prior_log_std"] == expected
        flow = type(model.flow).from_config(model.flow.get_config())
        assert flow.split_prior_log_std == expected
    paper = experiment.load_config("configs/flows/glow_mnist_paper.yaml")
    assert paper.model.split_prior_log_std == 0.0
