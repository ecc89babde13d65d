"""Density flows at one training budget, through the real CLI: a markdown table of test bits/dim.

Every run is `python -m tfdgm train --config CONFIG --run-dir RUNS/<name> --set ...` in its own
process (the library's whole path: data preparation, XLA decision, checkpoints, best-checkpoint
selection on the validation bits/dim, test evaluation on the full test split), followed by
reading the run's `metrics.json` and `config.yaml`. Reported per run:

* `steps`: `epochs_trained x training.steps_per_epoch` (batch `data.batch_size`);
* `train s`: the run's training seconds (`metrics.json` `train_seconds`, the sum of its epochs'
  times, validation included: `state.json`'s history);
* `test bpd`: the training bound on the test split, one dequantization draw per image,
  `bpd = -(log p(y) - log q(u | x) - D log 2^n_bits) / (D log 2)` (`test_bits_per_dim`);
* for variational dequantization with `evaluation.dequantization_samples = S > 0`: the
  importance-weighted estimate `log (1/S) sum_s exp(log p(y_s) - log q(u_s | x) - D log K)` in
  bits/dim (`test_bits_per_dim_iw`, on `evaluation.iw_examples` evenly spaced test images) and
  the `S = 1` bound on the same images and draws (`test_bits_per_dim_iw_1`).

A run is named by its config (`name:`) unless the spec gives `@NAME`; a run directory that
already holds `metrics.json` is reported, not retrained (delete it to rerun). Each spec is
`CONFIG[@NAME][:KEY=VALUE,KEY=VALUE]`, the pairs being `--set` overrides for that run alone;
`--set` applies to all. Equal-step budget for the Fashion-MNIST flows:

    python bench/bench_flow_budget.py --runs-dir /tmp/flowruns --steps-per-epoch 200 \\
        --epochs 5 --set data.validation_examples=1000 \\
        configs/flows/realnvp_fashion_mnist.yaml configs/flows/glow_fashion_mnist.yaml
"""

import argparse
import json
import os
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_spec(spec):
    """`'a.yaml@run:training.epochs=3,data.batch_size=32'` -> `('a.yaml', 'run', [...])`."""
    path, _, overrides = spec.partition(":")
    path, _, name = path.partition("@")
    if not os.path.isfile(path):
        raise SystemExit(f"no config file {path!r}")
    sets = [item for item in overrides.split(",") if item]
    for item in sets:
        if "=" not in item:
            raise SystemExit(f"override {item!r} in {spec!r} is not KEY=VALUE")
    if not name:
        with open(path) as f:
            name = yaml.safe_load(f)["name"]
    return path, name, sets


def train(path, run_dir, sets, log_path):
    """Runs the CLI's `train`; returns its wall seconds. Its output goes to `log_path`."""
    command = [sys.executable, "-m", "tfdgm", "train", "--config", path, "--run-dir", run_dir]
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                              cwd=ROOT, check=False).returncode
    if code != 0:
        raise SystemExit(f"{run_dir}: train exited {code}; see {log_path}")
    return time.perf_counter() - start


def row(run_dir, name):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(run_dir, "config.yaml")) as f:
        config = yaml.safe_load(f)
    training, model = config.get("training", {}), config["model"]
    steps_per_epoch = training.get("steps_per_epoch")
    steps = (metrics["epochs_trained"] * steps_per_epoch) if steps_per_epoch else None
    return {"run": name, "model": model["name"],
            "dequantization": model.get("dequantization", "uniform"),
            "batch": config["data"].get("batch_size"), "steps": steps,
            "train_seconds": metrics.get("train_seconds"),
            "best_epoch": metrics.get("best_epoch"),
            "epochs_trained": metrics.get("epochs_trained"),
            "test_bits_per_dim": metrics["test_bits_per_dim"],
            "test_bits_per_dim_iw": metrics.get("test_bits_per_dim_iw"),
            "test_bits_per_dim_iw_1": metrics.get("test_bits_per_dim_iw_1"),
            "test_dequantization_samples": metrics.get("test_dequantization_samples"),
            "test_iw_examples": metrics.get("test_iw_examples")}


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def markdown(rows):
    lines = ["| run | model | dequantization | batch | steps | train s | best epoch | "
             "test bpd | test bpd IW (S) | S = 1 bound, same images |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        iw = "-" if r["test_bits_per_dim_iw"] is None else "{:.4f} ({})".format(
            r["test_bits_per_dim_iw"], r["test_dequantization_samples"])
        lines.append(
            f"| {r['run']} | {r['model']} | {r['dequantization']} | {r['batch']} | "
            f"{_fmt(r['steps'], 'd')} | {_fmt(r['train_seconds'], '.0f')} | "
            f"{r['best_epoch']}/{r['epochs_trained']} | {r['test_bits_per_dim']:.4f} | {iw} | "
            f"{_fmt(r['test_bits_per_dim_iw_1'], '.4f')} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", metavar="CONFIG[@NAME][:KEY=VALUE,...]")
    parser.add_argument("--runs-dir", required=True, help="run directories go to RUNS_DIR/NAME")
    parser.add_argument("--epochs", type=int, help="training.epochs of every run")
    parser.add_argument("--steps-per-epoch", type=int, help="training.steps_per_epoch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for every run (repeatable)")
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args()
    common = list(args.set)
    if args.epochs:
        # Equal steps: no early stopping inside the budget.
        common += [f"training.epochs={args.epochs}", f"training.patience={args.epochs}"]
    if args.steps_per_epoch:
        common.append(f"training.steps_per_epoch={args.steps_per_epoch}")
    specs = [parse_spec(spec) for spec in args.specs]
    os.makedirs(args.runs_dir, exist_ok=True)
    rows = []
    for path, name, sets in specs:
        run_dir = os.path.join(args.runs_dir, name)
        if not os.path.exists(os.path.join(run_dir, "metrics.json")):
            seconds = train(path, run_dir, common + sets, os.path.join(args.runs_dir,
                                                                        name + ".log"))
            print(f"{name}: trained and evaluated in {seconds:.0f} s", flush=True)
        rows.append(row(run_dir, name))
    print(markdown(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
