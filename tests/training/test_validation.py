"""Validation that costs what it must: `training.validate_every` and `data.validation_examples`,
early stopping and the best checkpoint on validated epochs only, exact resumption with both."""

import json

import numpy as np
import pytest

from tfdgm import config as config_lib
from tfdgm import experiment
from tfdgm.data import evenly_spaced_indices, load_datasets, load_images
from tfdgm.errors import ConfigError
from tfdgm.models.base import Monitor
from tfdgm.training import callbacks as cb
from tfdgm.training.train import train_and_evaluate, validated_epochs

RAW = {
    "name": "validate",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 40,
             "max_examples": 200, "validation_examples": 70},
    "model": {"name": "vae", "latent_dim": 4, "encoder": {"name": "mlp", "hidden_units": [16]},
              "decoder": {"name": "mlp", "hidden_units": [16]},
              "objective": {"warmup_epochs": 0}},
    "training": {"epochs": 3, "patience": 5, "validate_every": 2},
    "evaluation": {"nll_samples": 0, "surgery_examples": 0},
}


def test_the_validation_subset_is_the_evenly_spaced_examples_of_the_whole_split():
    config = config_lib.parse(RAW).data
    datasets = load_datasets(config, seed=0, initial_epoch=0)
    whole = load_images(config, "validation")  # the fixed dynamic-binarization draws
    subset = np.concatenate(list(datasets.validation.as_numpy_iterator()))
    assert datasets.validation_examples == 70 == len(subset)
    np.testing.assert_array_equal(subset, whole[evenly_spaced_indices(len(whole), 70)])
    np.testing.assert_array_equal(datasets.images("validation", 5), whole[:5])


def test_validated_epochs_are_every_kth_and_the_last():
    training = config_lib.parse({"training": {"epochs": 7, "validate_every": 3}}).training
    assert validated_epochs(training) == [3, 6, 7]
    assert validated_epochs(config_lib.parse({"training": {"epochs": 2}}).training) == [1, 2]


@pytest.mark.parametrize("section, key, value, message", [
    ("training", "validate_every", 0, "training.validate_every must be at least 1"),
    ("data", "validation_examples", 0, "data.validation_examples must be at least 1"),
    ("training", "jit_compile", "sometimes", "'sometimes' is not one of auto, true, false"),
])
def test_bad_validation_and_compilation_settings_are_config_errors(section, key, value,
                                                                   message):
    with pytest.raises(ConfigError, match=message):
        config_lib.parse({section: {key: value}})


def test_yaml_booleans_and_auto_are_accepted_for_jit_compile():
    parse = lambda text: config_lib.parse({}, [f"training.jit_compile={text}"])  # noqa: E731
    assert parse("true").training.jit_compile is True
    assert parse("false").training.jit_compile is False
    assert parse("auto").training.jit_compile == "auto"
    assert config_lib.parse({}).training.jit_compile == "auto"


def test_patience_counts_epochs_but_acts_only_on_validated_ones(tmp_path):
    """Unvalidated epochs neither improve nor stop the run; patience is in epochs since the
    last improvement, checked when an epoch is validated."""
    from tfdgm.testing.models import small_vae
    state = cb.RunState()
    checkpointer = cb.RunCheckpointer(str(tmp_path), state, patience=3,
                                      monitor=Monitor("elbo"), write=False)
    checkpointer.set_model(small_vae())
    train = {"loss": 1.0}
    checkpointer.on_epoch_end(0, {**train, "val_elbo": -100.0})   # validated, best
    checkpointer.on_epoch_end(1, train)                           # not validated
    assert state.best_epoch == 1 and state.epochs_without_improvement == 1
    checkpointer.on_epoch_end(2, train)
    assert not state.stopped_early and state.epochs_without_improvement == 2
    checkpointer.on_epoch_end(3, {**train, "val_elbo": -101.0})   # validated, 3 epochs on
    assert state.stopped_early and state.best_value == -100.0
    with pytest.raises(KeyError, match="val_elbo"):  # a validated epoch must hold the monitor
        checkpointer.on_epoch_end(4, {**train, "val_loss": 1.0})


def test_validating_every_other_epoch_on_a_subset_resumes_exactly(tmp_path):
    whole = experiment.from_dict(RAW)
    first = experiment.from_dict({**RAW, "training": {**RAW["training"], "epochs": 2}})
    train_and_evaluate(whole, str(tmp_path / "whole"))
    train_and_evaluate(first, str(tmp_path / "resumed"))
    train_and_evaluate(whole, str(tmp_path / "resumed"))
    states = [json.loads((tmp_path / run / "checkpoints" / "state.json").read_text())
              for run in ("whole", "resumed")]
    for state in states:
        assert ["val_elbo" in h for h in state["history"]] == [False, True, True]
        assert state["best_epoch"] in (2, 3)
    assert states[0]["best_epoch"] == states[1]["best_epoch"]
    for a, b in zip(states[0]["history"], states[1]["history"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == pytest.approx(
            {k: v for k, v in b.items() if k != "seconds"}, rel=1e-5)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "whole" / "logs" / "validation"),
                              size_guidance={"tensors": 0})
    events.Reload()
    assert [event.step for event in events.Tensors("elbo")] == [2, 3]
