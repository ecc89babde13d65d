"""Sample quality of several runs on one scale: classifier FID / KID / precision / recall /
inception score per run, in one markdown table.

Protocol. Every row is scored by `tfdgm.evaluation.quality` (`evaluation.sample_quality_samples
= --samples` samples at temperature 1 against as many test images, through the dataset's cached
classifier feature network), so rows are comparable only when the `classifier` column (the
network's cache key and weights' sha256) is the same. Two ways to get the runs:

* `--configs`: each config is trained here, one after the other, through the real CLI
  (`python -m tfdgm train`), at one equal budget of `--updates` parameter updates of the
  network that sees the data: discriminator (critic) updates for a GAN, which cost about the
  same for every loss (a WGAN-GP update also differentiates the penalty, so it costs more), and
  gradient steps for a single-optimizer family. A GAN with `n_critic = k` trains
  `--updates / k` steps (each: `k` critic updates, one generator update); the steps are split
  into `--epochs` epochs of `training.steps_per_epoch` steps. Validation runs once, at the end,
  on `--validation-examples` examples, and `training.patience` is the number of epochs, so no
  run stops early.
* `--run-dirs`: finished runs are collected as they are; with `--evaluate` each is first
  re-scored with `python -m tfdgm evaluate --run DIR --set evaluation.sample_quality_samples=N`
  (which rewrites the run's `metrics.json` and image grids: evaluate a copy of a run you do not
  own).

Training seconds are the runs' own `train_seconds` (fit only: no start-up, no evaluation), on
whatever else the machine is running; the table says which budget each row had.

    python bench/bench_sample_quality.py --configs configs/gan/ns_gan_fashion_mnist.yaml \\
        configs/gan/wgan_gp_fashion_mnist.yaml --updates 1500 --epochs 5 --samples 10000 \\
        --runs-dir /tmp/quality_runs
    python bench/bench_sample_quality.py --run-dirs /tmp/quality_runs/* --out table.md
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfdgm.data import dataset_info  # noqa: E402
from tfdgm.experiment import load_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def updates_per_step(config) -> int:
    """Updates of the data-facing network per training step: `n_critic` for a GAN, else 1."""
    return int(getattr(config.model, "critic_steps", 1))


def budget_overrides(config, updates: int, epochs: int, samples: int,
                     validation_examples: int):
    """The `--set` overrides that train `config` for `updates` updates in `epochs` epochs."""
    per_step = updates_per_step(config)
    steps = updates // per_step
    if steps % epochs or updates % per_step:
        raise SystemExit(f"{config.name}: {updates} updates at {per_step} per step is not a whole "
                         f"number of steps per epoch for {epochs} epochs; choose --updates as a "
                         f"multiple of {per_step * epochs}.")
    return [f"training.epochs={epochs}", f"training.steps_per_epoch={steps // epochs}",
            f"training.patience={epochs}", f"training.validate_every={epochs}",
            f"data.validation_examples={validation_examples}",
            f"evaluation.sample_quality_samples={samples}"]


def run_cli(args, log_path):
    """`python -m tfdgm ARGS` from the repository root, output to `log_path`; exit status."""
    with open(log_path, "w") as log:
        return subprocess.call([sys.executable, "-m", "tfdgm"] + args, cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT)


def train(config_path, runs_dir, updates, epochs, samples, validation_examples, extra):
    config = load_config(config_path, extra)
    run_dir = os.path.join(runs_dir, config.name)
    overrides = budget_overrides(config, updates, epochs, samples, validation_examples) + extra
    args = ["train", "--config", config_path, "--run-dir", run_dir]
    for override in overrides:
        args += ["--set", override]
    print(f"[{time.strftime('%H:%M:%S')}] python -m tfdgm {' '.join(args)}", flush=True)
    status = run_cli(args, run_dir + ".log")
    if status:
        print(f"  exit status {status}; see {run_dir}.log", flush=True)
    return run_dir


def evaluate(run_dir, samples):
    args = ["evaluate", "--run", run_dir, "--set", f"evaluation.sample_quality_samples={samples}"]
    print(f"[{time.strftime('%H:%M:%S')}] python -m tfdgm {' '.join(args)}", flush=True)
    status = run_cli(args, run_dir.rstrip("/") + ".evaluate.log")
    if status:
        print(f"  exit status {status}; see {run_dir.rstrip('/')}.evaluate.log", flush=True)


def describe(config) -> str:
    """What the row's model is: the family, and a GAN's loss and critic constraints."""
    model = config.model
    if model.name != "gan":
        parts = [model.name]
        likelihood = getattr(model, "likelihood", None)
        if isinstance(likelihood, dict):
            parts.append(likelihood.get("name", ""))
        return " ".join(p for p in parts if p)
    text = model.loss + (" + SN" if model.spectral_norm else "")
    batch_norm = ", batch norm in D" if model.uses_discriminator_batch_norm else ""
    return f"{text} (n_critic {model.critic_steps}{batch_norm})"


def collect(run_dir):
    """One row from a run directory's `config.yaml` and `metrics.json` (None if unfinished)."""
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        print(f"  {run_dir}: no metrics.json (unfinished?); left out", flush=True)
        return None
    config = load_config(os.path.join(run_dir, "config.yaml"))
    with open(metrics_path) as f:
        metrics = json.load(f)
    if "test_classifier_fid" not in metrics:
        print(f"  {run_dir}: no sample-quality figures; rerun with --evaluate", flush=True)
        return None
    steps_per_epoch = config.training.steps_per_epoch or math.ceil(
        dataset_info(config.data).num_examples["train"] / config.data.batch_size)
    steps = metrics.get("epochs_trained", config.training.epochs) * steps_per_epoch
    network = metrics["test_feature_network"]
    return {
        "run": config.name, "run_dir": os.path.abspath(run_dir), "model": describe(config),
        "steps": steps, "updates": steps * updates_per_step(config),
        "train_seconds": metrics.get("train_seconds"),
        "fid": metrics["test_classifier_fid"], "kid": metrics["test_classifier_kid"],
        "kid_std": metrics["test_classifier_kid_std"],
        "precision": metrics["test_classifier_precision"],
        "recall": metrics["test_classifier_recall"],
        "inception_score": metrics["test_classifier_inception_score"],
        "inception_score_std": metrics["test_classifier_inception_score_std"],
        "inception_score_real": metrics.get("test_classifier_inception_score_real"),
        "samples": metrics.get("test_num_fake", config.evaluation.sample_quality_samples),
        "classifier": f"{network['key'][:8]} / {network['weights_sha256'][:8]}",
        "classifier_accuracy": network["validation_accuracy"],
        "samples_png": sample_grid(run_dir),
    }


def sample_grid(run_dir):
    """The run's grid of samples at temperature 1 (`samples.png`; flows: `samples_T1p0.png`)."""
    for name in ("samples.png", "samples_T1p0.png"):
        path = os.path.join(os.path.abspath(run_dir), name)
        if os.path.exists(path):
            return path
    return None


def markdown(rows) -> str:
    lines = ["| run | model | updates (steps) | train s | classifier FID | classifier KID "
             "| precision / recall | inception score |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        seconds = "" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(
            f"| {r['run']} | {r['model']} | {r['updates']} ({r['steps']}) | {seconds} | "
            f"{r['fid']:.2f} | {r['kid']:.3f} +- {r['kid_std']:.3f} | "
            f"{r['precision']:.3f} / {r['recall']:.3f} | {r['inception_score']:.2f} +- "
            f"{r['inception_score_std']:.2f} |")
    real = [r["inception_score_real"] for r in rows if r["inception_score_real"] is not None]
    notes = sorted({(r["classifier"], r["classifier_accuracy"], r["samples"]) for r in rows})
    for classifier, accuracy, samples in notes:
        lines.append("")
        lines.append(f"Classifier (cache key / weights sha256) {classifier}, held-out accuracy "
                     f"{100 * accuracy:.1f}%; {samples} samples against {samples} test images"
                     + (f"; the test images' own inception score {real[0]:.2f}." if real else "."))
    if len(notes) > 1:
        lines.append("")
        lines.append("WARNING: the rows were scored by different classifiers or sample counts: "
                     "compare only rows that share both.")
    lines.append("")
    lines.append("Updates: discriminator (critic) updates for a GAN (steps x n_critic), gradient "
                 "steps otherwise.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="*", default=[], help="configs to train, in order")
    parser.add_argument("--run-dirs", nargs="*", default=[], help="finished runs to collect")
    parser.add_argument("--evaluate", action="store_true",
                        help="re-score --run-dirs with `python -m tfdgm evaluate` first")
    parser.add_argument("--updates", type=int, default=1500,
                        help="discriminator (critic) updates, or gradient steps, per config")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--validation-examples", type=int, default=1000)
    parser.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "sample_quality"))
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        metavar="KEY=VALUE", help="extra override for every trained config")
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if not args.configs and not args.run_dirs:
        parser.error("give --configs to train or --run-dirs to collect")
    os.makedirs(args.runs_dir, exist_ok=True)
    run_dirs = [train(os.path.abspath(path), args.runs_dir, args.updates, args.epochs,
                      args.samples, args.validation_examples, args.overrides)
                for path in args.configs]
    for run_dir in args.run_dirs:
        if args.evaluate:
            evaluate(run_dir, args.samples)
        run_dirs.append(run_dir)
    rows = [row for row in map(collect, run_dirs) if row is not None]
    table = markdown(rows)
    print(table)
    for row in rows:
        print(f"samples grid of {row['run']}: {row['samples_png']}")
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
