"""Equal-budget comparison of priors on static MNIST (the VampPrior paper's protocol, shortened).

    python bench/bench_priors.py --data-dir ../shared/data [--epochs 10] [--warmup 5]
                                 [--nll-samples 1000] [--nll-examples 1000] [--out results.json]

Trains each row of `configs/vampprior/` for the same number of epochs with the same seed through
`tfdgm.training.train.train_and_evaluate`, then prints the test -ELBO and NLL table (markdown).
The paper's converged test log-likelihoods: VAE + standard prior -88.56, VAE + VampPrior -85.57,
HVAE + VampPrior -83.19.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfdgm import experiment  # noqa: E402
from tfdgm.training.train import train_and_evaluate  # noqa: E402

ROWS = [("VAE + standard prior", "vae_standard", -88.56),
        ("VAE + VampPrior", "vae_vampprior", -85.57),
        ("VAE + MAF prior", "vae_maf_prior", None),
        ("HVAE + standard prior", "hvae_standard", None),
        ("HVAE + VampPrior", "hvae_vampprior", -83.19)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TFDGM_DATA_DIR"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--nll-samples", type=int, default=1000)
    parser.add_argument("--nll-examples", type=int, default=1000)
    parser.add_argument("--runs", default="runs/bench_priors")
    parser.add_argument("--rows", nargs="*", help="config names to run (default: all)")
    parser.add_argument("--out")
    args = parser.parse_args()

    results = []
    for label, name, paper in ROWS:
        if args.rows and name not in args.rows:
            continue
        overrides = [f"name={name}", f"training.epochs={args.epochs}",
                     f"model.objective.warmup_epochs={args.warmup}",
                     f"evaluation.nll_samples={args.nll_samples}",
                     f"evaluation.nll_examples={args.nll_examples}",
                     f"evaluation.surgery_examples={min(args.nll_examples, 1000)}"]
        if args.data_dir:
            overrides.append(f"data.data_dir={args.data_dir}")
        config = experiment.load_config(f"configs/vampprior/{name}.yaml", overrides)
        start = time.time()
        metrics = train_and_evaluate(config, os.path.join(args.runs, name))
        results.append({"row": label, "config": name, "paper_ll": paper,
                        "wall_s": time.time() - start, **metrics})

    print(f"\n{args.epochs} epochs each (warm-up {args.warmup}), NLL with S={args.nll_samples} on "
          f"{args.nll_examples} evenly spaced test digits\n")
    print("| model | test -ELBO | test NLL | paper NLL | I[x,z] | marginal KL | epoch s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        paper = f"{-r['paper_ll']:.2f}" if r["paper_ll"] else "—"
        print(f"| {r['row']} | {-r['test_elbo']:.2f} | {r['test_nll']:.2f} | {paper} | "
              f"{r.get('test_mutual_information', float('nan')):.2f} | "
              f"{r.get('test_marginal_kl', float('nan')):.2f} | "
              f"{r['train_seconds'] / max(r['epochs_trained'], 1):.1f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
