"""Benchmark: flow posteriors in the Sylvester-flow paper's VAE, cost per step and equal budget.

    python bench/bench_flows.py cost [--steps 10] [--warmup 3] [--batch-size 100] [--rows ...]
    python bench/bench_flows.py compare [--data-dir ../shared/data] [--epochs 1]
        [--max-examples 5000] [--nll-samples 200] [--nll-examples 200] [--out flows.json]

The six rows are the configs of `configs/sylvester/` (van den Berg et al. 2018, table 1): the
plain VAE and the VAE with 16 planar flows, 16 IAF steps (1280-wide MADEs), 16 O-SNF flows
(bottleneck 32), 16 H-SNF flows (8 reflections) and 16 T-SNF flows; all with the gated
convolutional encoder/decoder, z = 64, Bernoulli likelihood, Adamax 5e-4.

* `cost`: seconds per training step (`model.train_on_batch` on a fixed random binary batch of
  `--batch-size` images, after `--warmup` untimed steps that trace and warm up), timed in
  `--steps` interleaved rounds (one step of every row per round, so that load from other
  processes falls on all rows alike): median and minimum, their ratio to the plain VAE's, and
  the trainable parameter count.
* `compare`: an equal-budget training comparison: every row is trained by the library's
  `train_and_evaluate` for the same `--epochs` from the same seed on the same data, then its
  best checkpoint is evaluated on the test split: -ELBO (single-sample, the test split capped at
  `--max-examples`) and the importance-sampled NLL with `--nll-samples` samples on the first `--nll-examples`
  test images. Data: static binarized MNIST from `--data-dir` (`binarized_mnist.npz`; capped at
  `--max-examples` per split), else the 5000 mnist5k digits dynamically binarized. Short budgets
  say little about the paper's converged numbers (2000 epochs); the point is that every row
  trains end to end through the same code path, and what a fixed budget buys.

Every setting is printed with the results; `--out` also writes them as JSON.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdgm import experiment  # noqa: E402
from tfdgm.data import dataset_info  # noqa: E402
from tfdgm.experiment import build_model  # noqa: E402
from tfdgm.optimizers import make_optimizer  # noqa: E402
from tfdgm.training.train import train_and_evaluate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ("vae", "planar", "iaf", "o_snf", "h_snf", "t_snf")
LABELS = {"vae": "VAE", "planar": "Planar", "iaf": "IAF", "o_snf": "O-SNF", "h_snf": "H-SNF",
          "t_snf": "T-SNF"}
PAPER = {"vae": (86.55, 82.14), "planar": (86.06, 81.91), "iaf": (84.20, 80.79),
         "o_snf": (83.32, 80.22), "h_snf": (83.40, 80.29), "t_snf": (83.40, 80.28)}
"""-ELBO and NLL on static MNIST from the paper (van den Berg et al. 2018, table 1)."""


def config_path(row):
    return os.path.join(ROOT, "configs", "sylvester", f"{row}.yaml")


def environment():
    return {"devices": [d.name for d in tf.config.list_logical_devices()],
            "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def data_overrides(data_dir, max_examples):
    """Static MNIST from `data_dir` if it holds `binarized_mnist.npz`, else mnist5k (dynamic)."""
    if data_dir and os.path.exists(os.path.join(data_dir, "binarized_mnist.npz")):
        overrides = [f"data.data_dir={data_dir}"]
        if max_examples:
            overrides.append(f"data.max_examples={max_examples}")
        return overrides, "static_mnist"
    overrides = ["data.name=mnist5k", "data.binarize=dynamic"]
    if max_examples:
        overrides.append(f"data.max_examples={max_examples}")
    return overrides, "mnist5k (dynamic binarization)"


# Cost per step -----------------------------------------------------------------------------------

def build_row(row, batch_size, jit):
    """`row`'s model, compiled with its config's optimizer (Adamax 5e-4)."""
    config = experiment.load_config(config_path(row), [f"data.batch_size={batch_size}",
                                                f"training.jit_compile={str(jit).lower()}"])
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, dataset_info(config.data))
    model.compile(optimizer=make_optimizer(config.optimizer), jit_compile=jit)
    return model


def run_cost(args):
    """Times the rows' training steps in interleaved rounds (one step of every row per round),
    so that load from other processes affects every row alike; reports median and minimum."""
    rows = args.rows.split(",")
    rng = np.random.default_rng(0)
    x = (rng.random((args.batch_size, 28, 28, 1)) < 0.3).astype(np.float32)
    models = {}
    for row in rows:
        start = time.perf_counter()
        models[row] = build_row(row, args.batch_size, args.jit)
        for _ in range(args.warmup):
            models[row].train_on_batch(x)
        print(f"{row}: built, traced and warmed up in {time.perf_counter() - start:.0f} s",
              flush=True)
    load_before = os.getloadavg()
    times = {row: [] for row in rows}
    for _ in range(args.steps):
        for row in rows:
            start = time.perf_counter()
            logs = models[row].train_on_batch(x, return_dict=True)
            times[row].append(time.perf_counter() - start)
            if not np.isfinite(logs["loss"]):
                raise FloatingPointError(f"{row}: non-finite loss {logs['loss']}")
    load_after = os.getloadavg()
    results = {row: {"median_step_s": statistics.median(times[row]),
                     "min_step_s": min(times[row]),
                     "params": int(sum(np.prod(v.shape) for v in
                                       models[row].trainable_variables))}
               for row in rows}
    base = results.get("vae")
    print(f"\nTraining-step cost: batch {args.batch_size}, {args.warmup} warm-up steps, then "
          f"{args.steps} interleaved rounds (one step of every row each); jit_compile={args.jit}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
          f"({os.cpu_count()} CPUs)\n")
    print("| posterior | median ms / step | x VAE | min ms / step | x VAE (min) | trainable "
          "parameters |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row, r in results.items():
        ratio = f"{r['median_step_s'] / base['median_step_s']:.2f}" if base else "-"
        ratio_min = f"{r['min_step_s'] / base['min_step_s']:.2f}" if base else "-"
        print(f"| {LABELS.get(row, row)} | {r['median_step_s'] * 1e3:.0f} | {ratio} | "
              f"{r['min_step_s'] * 1e3:.0f} | {ratio_min} | {r['params'] / 1e6:.2f}M |")
    return {"settings": {"batch_size": args.batch_size, "warmup_steps": args.warmup,
                         "rounds": args.steps, "jit_compile": args.jit,
                         "load_average": [load_before[0], load_after[0]]},
            "rows": results}


# Equal-budget comparison -------------------------------------------------------------------------

def run_compare(args):
    overrides, data_name = data_overrides(args.data_dir, args.max_examples)
    chunk = min(args.nll_samples, args.nll_chunk)
    overrides += [
        f"training.epochs={args.epochs}",
        f"model.objective.warmup_epochs={args.warmup_epochs}",
        f"training.patience={args.epochs + 1}",
        "training.image_every_epochs=1000000",
        f"evaluation.nll_samples={args.nll_samples}",
        f"evaluation.nll_chunk={chunk}",
        f"evaluation.nll_examples={args.nll_examples}",
        f"seed={args.seed}",
    ]
    work = args.run_dir or tempfile.mkdtemp(prefix="tfdgm-bench-flows-")
    results = {}
    try:
        for row in args.rows.split(","):
            config = experiment.load_config(config_path(row), overrides + [f"name=bench_flows_{row}"])
            keras.utils.set_random_seed(config.seed)
            start = time.perf_counter()
            metrics = train_and_evaluate(config, os.path.join(work, row))
            seconds = time.perf_counter() - start
            results[row] = {"neg_elbo": -metrics["test_elbo"], "nll": metrics.get("test_nll"),
                            "active_units": metrics.get("active_units"),
                            "train_seconds": metrics.get("train_seconds"),
                            "total_seconds": seconds}
            print(f"{row}: -ELBO {results[row]['neg_elbo']:.2f}, NLL {results[row]['nll']:.2f} "
                  f"({seconds:.0f} s)", flush=True)
    finally:
        if not args.run_dir:
            shutil.rmtree(work, ignore_errors=True)
    settings = {"data": data_name, "max_examples_per_split": args.max_examples,
                "epochs": args.epochs, "warmup_epochs": args.warmup_epochs, "seed": args.seed,
                "nll_samples": args.nll_samples, "nll_examples": args.nll_examples,
                "batch_size": 100, "optimizer": "adamax 5e-4"}
    print("\nEqual-budget comparison: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print("(-ELBO: single-sample, on the test split (capped at max_examples_per_split); NLL on "
          "its first nll_examples images; active units from the flow-transformed code, so not "
          "comparable between rows; paper: static MNIST, up to 2000 epochs, S = 5000)\n")
    print("| posterior | -ELBO | NLL | active units | train s | paper -ELBO | paper NLL |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row, r in results.items():
        paper = PAPER.get(row, (float("nan"), float("nan")))
        print(f"| {LABELS.get(row, row)} | {r['neg_elbo']:.2f} | {r['nll']:.2f} | "
              f"{r['active_units']} | {r['train_seconds']:.0f} | {paper[0]:.2f} | "
              f"{paper[1]:.2f} |")
    return {"settings": settings, "rows": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    cost = sub.add_parser("cost", help="seconds per training step of each row")
    cost.add_argument("--steps", type=int, default=10, help="timed rounds (median, min)")
    cost.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    cost.add_argument("--batch-size", type=int, default=100)
    cost.add_argument("--jit", action="store_true", help="XLA-compile the training step")
    compare = sub.add_parser("compare", help="equal-budget training, test -ELBO and NLL")
    compare.add_argument("--data-dir", default=os.environ.get("TFDGM_DATA_DIR"),
                         help="folder with binarized_mnist.npz (else mnist5k)")
    compare.add_argument("--max-examples", type=int, default=None,
                         help="cap on every split (data.max_examples)")
    compare.add_argument("--epochs", type=int, default=1)
    compare.add_argument("--warmup-epochs", type=int, default=0,
                         help="KL warm-up epochs (0: beta = 1 from the start)")
    compare.add_argument("--nll-samples", type=int, default=200)
    compare.add_argument("--nll-chunk", type=int, default=100)
    compare.add_argument("--nll-examples", type=int, default=200)
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--run-dir", help="keep the runs here (default: a temporary folder)")
    for p in (cost, compare):
        p.add_argument("--rows", default=",".join(ROWS),
                       help=f"comma-separated subset of {','.join(ROWS)}")
        p.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    result = run_cost(args) if args.part == "cost" else run_compare(args)
    result.update(part=args.part, environment=environment())
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
