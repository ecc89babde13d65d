"""The command line: help text for every option, what `evaluate` says it replaced, and the file
names `sample` picks."""

import argparse
import os

import pytest
import yaml
from PIL import Image

from tfdgm.__main__ import _parser, main, samples_filename

TINY = {
    "name": "tiny_cli",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 100,
             "max_examples": 100},
    "model": {"name": "vae", "latent_dim": 2, "encoder": {"name": "mlp", "hidden_units": [8]},
              "decoder": {"name": "mlp", "hidden_units": [8]},
              "objective": {"warmup_epochs": 1}},
    "training": {"epochs": 1},
    "evaluation": {"nll_samples": 0, "surgery_examples": 0},
}


def _parsers(parser, path="python -m tfdgm"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_option_of_every_command_has_help_text():
    missing = []
    for path, parser in _parsers(_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {choice.dest}" for choice in action._choices_actions
                            if not (choice.help or "").strip()]
    assert not missing, missing


@pytest.mark.parametrize("command", [["train"], ["evaluate", "--run", "r"],
                                     ["sample", "--run", "r"], ["export", "--run", "r"]])
def test_verbose_is_accepted_before_or_after_the_command(command):
    parser = _parser()
    assert parser.parse_args(["--verbose"] + command).verbose is True
    assert parser.parse_args(command + ["--verbose"]).verbose is True  # make ... ARGS=--verbose
    assert parser.parse_args(command).verbose is False


def test_sample_file_names_carry_the_settings():
    assert samples_filename(64, 1.0) == "samples_64_T1.png"  # the README's example
    assert samples_filename(16, 0.7) == "samples_16_T0p7.png"
    assert samples_filename(16, 0.7, seed=3) == "samples_16_T0p7_seed3.png"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run = str(folder / "run")
    assert main(["train", "--config", str(config), "--run-dir", run]) == 0
    return run


def test_evaluate_says_it_replaces_the_runs_grids_and_metrics(run_dir, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--run", run_dir]) == 0
    out = capsys.readouterr().out
    assert ("Replaced the run's earlier interpolation.png, metrics.json, reconstructions.png, "
            "samples.png") in out


def test_sample_names_its_file_by_its_settings(run_dir, capsys):
    capsys.readouterr()
    assert main(["sample", "--run", run_dir, "-n", "4", "--temperature", "0.5",
                 "--seed", "2"]) == 0
    assert main(["sample", "--run", run_dir, "-n", "4"]) == 0
    out = capsys.readouterr().out
    for name in ("samples_4_T0p5_seed2.png", "samples_4_T1.png"):
        path = os.path.join(run_dir, name)
        assert Image.open(path).size == (2 * 29 - 1, 2 * 29 - 1) and path in out
