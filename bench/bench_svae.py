"""Benchmark: N-VAE vs S-VAE (hyperspherical, von Mises-Fisher) at latent dimensions 2 ... 40.

    python bench/bench_svae.py --data-dir ../shared/data [--dims 2,5,10,20,40] [--epochs 3]
        [--max-examples N] [--nll-samples 500] [--nll-examples 1000]
        [--posterior von_mises_fisher] [--out svae.json] [--run-dir runs/bench_svae]

The comparison of Davidson et al. (2018), table 2 (lecture 000): for each d, an N-VAE (Gaussian
posterior, N(0, I) prior on R^d; `configs/svae/nvae.yaml`) and an S-VAE (vMF posterior, uniform
prior on the sphere S^d; `configs/svae/svae.yaml`), both with the MLP encoder 784-256-128 and
decoder 128-256-784, Bernoulli likelihood, Adam 1e-3, batch 64, and the test log-likelihood
estimated by importance sampling with S = 500. The S-VAE of dimension d has `latent_dim = d + 1`
(S^d in R^(d+1), as in the paper's code: the same d degrees of freedom as R^d; `--same-ambient`
uses `latent_dim = d` instead).

Every model is trained by the library's `train_and_evaluate` from the same seed on the same data
for the same `--epochs` (no warm-up, no early stopping: an equal short budget, where the paper
trained to convergence with warm-up and early stopping), then the checkpoint with the best
validation ELBO is evaluated: the test ELBO on the whole test split and the NLL with
`--nll-samples` on `--nll-examples` test digits spread evenly over it (`evaluation.nll_examples`).
The defaults (3 epochs of the 50000 training digits, NLL on 1000 digits) take about 15 minutes
on 2 CPU cores. The per-example
log-likelihoods are then recomputed from the saved checkpoint with the library's estimator (same
seed, same digits: the same numbers) to give the standard error of each paired difference
`LL_S - LL_N` over the digits (`--no-paired-se` skips that second pass).

Data: static binarized MNIST (`binarized_mnist.npz` in `--data-dir`, 50000/10000/10000; capped
at `--max-examples` per split if given); the paper's table is on dynamically binarized MNIST.
Prints a markdown table and, with `--out`, writes every figure and setting as JSON.
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdgm import experiment  # noqa: E402
from tfdgm.data import load_datasets  # noqa: E402
from tfdgm.evaluation import importance_sampled_log_likelihood  # noqa: E402
from tfdgm.experiment import build_model  # noqa: E402
from tfdgm.data.subsets import evenly_spaced  # noqa: E402
from tfdgm.training.train import Run, restore, train_and_evaluate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIMS = (2, 5, 10, 20, 40)
PAPER = {2: (-135.73, -132.50), 5: (-110.21, -108.43), 10: (-93.84, -93.16),
         20: (-88.90, -89.02), 40: (-88.93, -90.87)}
"""Test log-likelihood (N-VAE, S-VAE) of Davidson et al. (2018), table 2: dynamically binarized
MNIST, trained to convergence, S = 500."""


def environment():
    return {"devices": [d.name for d in tf.config.list_logical_devices()],
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
            "machine": platform.processor() or platform.machine(),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def run_config(kind, d, args):
    """The config of the `kind` (`nvae` or `svae`) model at dimension `d`."""
    latent_dim = d if kind == "nvae" or args.same_ambient else d + 1
    overrides = [
        f"name=bench_svae_{kind}_d{d}",
        f"model.latent_dim={latent_dim}",
        f"data.data_dir={args.data_dir}",
        f"training.epochs={args.epochs}",
        f"training.patience={args.epochs + 1}",
        "model.objective.warmup_epochs=0",
        "training.image_every_epochs=1000000",
        f"evaluation.nll_samples={args.nll_samples}",
        f"evaluation.nll_chunk={min(args.nll_chunk, args.nll_samples)}",
        f"evaluation.nll_examples={args.nll_examples}",
        "evaluation.surgery_examples=0",
        f"seed={args.seed}",
    ]
    if args.max_examples:
        overrides.append(f"data.max_examples={args.max_examples}")
    if kind == "svae":
        overrides.append(f"model.posterior.name={args.posterior}")
    return experiment.load_config(os.path.join(ROOT, "configs", "svae", f"{kind}.yaml"), overrides)


def per_example_log_likelihood(config, run_dir):
    """`log p(x)` `[N]` of the run's best checkpoint on the digits `train_and_evaluate` used for
    its NLL (same estimator, subset and seed as `tfdgm.training.train.evaluate`)."""
    datasets = load_datasets(config.data, seed=config.seed)
    model = build_model(config, datasets.info)
    restore(model, Run(run_dir).checkpoint("best"))
    evaluation = config.evaluation
    data, count = evenly_spaced(datasets.test, datasets.info.num_examples["test"],
                                evaluation.nll_examples)
    estimates = importance_sampled_log_likelihood(
        model, data.batch(max(1, 50000 // evaluation.nll_chunk)),
        num_samples=evaluation.nll_samples, chunk=evaluation.nll_chunk, seed=config.seed + 1,
        num_examples=count, verbose=False)
    return estimates["log_likelihood"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TFDGM_DATA_DIR"),
                        help="folder with binarized_mnist.npz")
    parser.add_argument("--dims", default=",".join(map(str, DIMS)))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-examples", type=int, default=None,
                        help="cap on every split (data.max_examples; default: all)")
    parser.add_argument("--nll-samples", type=int, default=500)
    parser.add_argument("--nll-chunk", type=int, default=100)
    parser.add_argument("--nll-examples", type=int, default=1000)
    parser.add_argument("--posterior", default="von_mises_fisher",
                        choices=("von_mises_fisher", "power_spherical"))
    parser.add_argument("--same-ambient", action="store_true",
                        help="S-VAE latent_dim = d (S^(d-1)) instead of d + 1 (S^d)")
    parser.add_argument("--no-paired-se", action="store_true",
                        help="skip the per-example pass that gives the paired standard errors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if not args.data_dir or not os.path.exists(os.path.join(args.data_dir, "binarized_mnist.npz")):
        parser.error("--data-dir (or $TFDGM_DATA_DIR) must hold binarized_mnist.npz")

    keras.config.disable_interactive_logging()  # no per-step progress bars from fit
    dims = [int(d) for d in args.dims.split(",")]
    work = args.run_dir or tempfile.mkdtemp(prefix="tfdgm-bench-svae-")
    start_all = time.perf_counter()
    rows = {}
    try:
        for d in dims:
            row = {}
            for kind in ("nvae", "svae"):
                config = run_config(kind, d, args)
                run_dir = os.path.join(work, config.name)
                keras.utils.set_random_seed(config.seed)
                start = time.perf_counter()
                metrics = train_and_evaluate(config, run_dir)
                seconds = time.perf_counter() - start
                row[kind] = {"latent_dim": config.model.latent_dim,
                             "log_likelihood": -metrics["test_nll"],
                             "elbo": metrics["test_elbo"],
                             "reconstruction": metrics["test_reconstruction"],
                             "kl": metrics["test_kl"], "active_units": metrics["active_units"],
                             "train_seconds": metrics["train_seconds"],
                             "total_seconds": seconds}
                if not args.no_paired_se:
                    row[kind]["per_example"] = per_example_log_likelihood(config, run_dir)
                print(f"d={d} {kind}: LL {row[kind]['log_likelihood']:.2f}, ELBO "
                      f"{row[kind]['elbo']:.2f}, KL {row[kind]['kl']:.2f} ({seconds:.0f} s)",
                      flush=True)
            if not args.no_paired_se:
                difference = row["svae"].pop("per_example") - row["nvae"].pop("per_example")
                row["difference"] = float(difference.mean())
                row["difference_se"] = float(difference.std(ddof=1) / np.sqrt(len(difference)))
            else:
                row["difference"] = row["svae"]["log_likelihood"] - row["nvae"]["log_likelihood"]
                row["difference_se"] = None
            rows[d] = row
    finally:
        if not args.run_dir:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - start_all

    settings = {"data": "static_mnist", "max_examples_per_split": args.max_examples,
                "epochs": args.epochs, "warmup_epochs": 0, "early_stopping": False,
                "batch_size": 64, "optimizer": "adam 1e-3", "networks": "mlp 256-128 / 128-256",
                "nll_samples": args.nll_samples, "nll_examples": args.nll_examples,
                "svae_posterior": args.posterior,
                "svae_latent_dim": "d" if args.same_ambient else "d + 1", "seed": args.seed,
                "total_seconds": total}
    print("\nN-VAE vs S-VAE: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print("(LL: importance-sampled test log-likelihood in nats, higher is better; diff = S - N "
          "+- paired standard error over the NLL digits; paper: Davidson et al. 2018 table 2, "
          "dynamic MNIST, to convergence)\n")
    print("| d | N-VAE LL | S-VAE LL | diff (S - N) | winner | N-VAE ELBO | S-VAE ELBO | "
          "N KL | S KL | paper N-VAE | paper S-VAE |")
    print("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for d, row in rows.items():
        n, s = row["nvae"], row["svae"]
        diff, se = row["difference"], row["difference_se"]
        diff_text = f"{diff:+.2f}" + (f" +- {se:.2f}" if se is not None else "")
        winner = "S-VAE" if diff > 0 else "N-VAE"
        if se is not None and abs(diff) < 2 * se:
            winner += " (within 2 SE)"
        paper = PAPER.get(d, (float("nan"), float("nan")))
        print(f"| {d} | {n['log_likelihood']:.2f} | {s['log_likelihood']:.2f} | {diff_text} | "
              f"{winner} | {n['elbo']:.2f} | {s['elbo']:.2f} | {n['kl']:.2f} | {s['kl']:.2f} | "
              f"{paper[0]:.2f} | {paper[1]:.2f} |")
    low = [d for d in rows if d <= 10]
    pattern = {"svae_ahead_at_low_d": all(rows[d]["difference"] > 0 for d in low) if low else None,
               "svae_behind_at_40": rows[40]["difference"] < 0 if 40 in rows else None}
    print(f"\nPaper's pattern (S-VAE ahead for d <= 10, behind at d = 40): "
          f"S-VAE ahead at every d <= 10: {pattern['svae_ahead_at_low_d']}; "
          f"S-VAE behind at d = 40: {pattern['svae_behind_at_40']}. Total {total:.0f} s.")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"settings": settings, "rows": {str(d): r for d, r in rows.items()},
                       "paper": {str(d): {"nvae": p[0], "svae": p[1]} for d, p in PAPER.items()},
                       "pattern": pattern, "environment": environment()}, f, indent=2)


if __name__ == "__main__":
    main()
