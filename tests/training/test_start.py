"""The start of a run: its banner, the start-up time in the run log and its records, and the
loud warning of a run whose validation quantity diverges (learning rate 1)."""

import json
import os

import pytest

from tfdgm import experiment
from tfdgm.models.base import Monitor
from tfdgm.training import callbacks as cb
from tfdgm.training.train import train_and_evaluate

RAW = {
    "name": "start",
    "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 100,
             "max_examples": 200},
    "model": {"name": "vae", "latent_dim": 4,
              "encoder": {"name": "gated_mlp", "hidden_units": [32]},
              "decoder": {"name": "gated_mlp", "hidden_units": [32]},
              "objective": {"warmup_epochs": 2}},
    "training": {"epochs": 1},
    "evaluation": {"nll_samples": 0, "surgery_examples": 0},
}


def test_the_banner_and_the_startup_time_before_training(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    metrics = train_and_evaluate(experiment.from_dict(RAW), run_dir)
    out = capsys.readouterr().out
    banner = out[out.index(f"Run {run_dir}: fresh, 1 epochs"):out.index("First training step")]
    lines = banner.splitlines()
    assert ("  data        mnist5k (binary, 28x28x1): train 200 (4 steps of 50 an epoch), "
            "validation 200 (every epoch), test 200") in lines
    model = [line for line in lines if line.startswith("  model       vae: ")]
    assert model and "trainable parameters" in model[0]
    assert any(line.startswith("  strategy    OneDeviceStrategy, 1 replica (") for line in lines)
    assert ("  compilation XLA: off, the run has 4 training steps, too few to repay XLA's "
            "compilation (auto compiles runs of 1000 or more; training.jit_compile: true "
            "compiles anyway)") in lines
    assert "  precision   float32" in lines
    assert f"  tensorboard tensorboard --logdir {os.path.join(run_dir, 'logs')}" in lines
    assert any(line.startswith("  monitor     validation elbo (max) before training: -5")
               for line in lines)
    warnings = [line for line in lines if line.startswith("WARNING: ")]
    assert len(warnings) == 1 and "warmup_epochs (2)" in warnings[0]  # config_warnings
    assert "warnings" not in metrics  # a healthy run

    state = json.loads(open(os.path.join(run_dir, "checkpoints", "state.json")).read())
    assert 0 < metrics["preparation_seconds"] <= metrics["startup_seconds"]
    assert state["startup_seconds"] == metrics["startup_seconds"]
    assert f"First training step {metrics['startup_seconds']:.1f} s after the process" in out
    assert cb.process_start_time() < cb._IMPORTED_AT  # /proc: before this test's imports


def test_divergence_criterion():
    elbo, bits = Monitor("elbo", "max"), Monitor("bits_per_dim", "min")
    assert cb.diverged(elbo, -1.4e13, -543.0) and cb.diverged(elbo, -6e4, -543.0)
    assert not cb.diverged(elbo, -1774.0, -543.0)   # 3x worse: a bad run, not a diverged one
    assert not cb.diverged(elbo, -90.0, -543.0)     # better
    assert cb.diverged(bits, 300.0, 2.0) and not cb.diverged(bits, 5.0, 2.0)
    assert not cb.diverged(bits, 50.0, 0.01)        # the floor of 1 on the reference's scale
    assert not cb.diverged(elbo, -1e9, None)


def test_a_diverging_run_warns_at_the_epoch_at_the_end_and_in_its_metrics(tmp_path, capsys):
    raw = {**RAW, "optimizer": {"learning_rate": 1.0},
           "model": {**RAW["model"], "objective": {"warmup_epochs": 0}}}
    metrics = train_and_evaluate(experiment.from_dict(raw), str(tmp_path / "run"))
    out = capsys.readouterr().out
    (warning,) = metrics["warnings"][:1]
    assert warning.startswith("validation elbo ") and "training has diverged" in warning
    assert "--set optimizer.learning_rate=0.1" in warning
    assert any("the best checkpoint (epoch 1" in w for w in metrics["warnings"])
    assert out.count(f"WARNING: {warning}") >= 2  # at the epoch and at the end of the run
    with open(tmp_path / "run" / "metrics.json") as f:
        assert json.load(f)["warnings"] == metrics["warnings"]
    assert metrics["test_elbo"] < 100 * -543
