"""Reproduction: linear-probe accuracy of learned representations vs raw pixels (BiGAN, Sec. 4).

    python bench/bench_linear_probe.py --runs runs/bigan_mnist5k runs/quickstart

For each trained run (any family whose model has `embeddings`: a BiGAN's encoder `E(x)`, a
VAE's posterior means, an RBM's hidden probabilities) it fits the linear probe of
`tfdgm.evaluation.linear_probe` on the codes of the labelled training split and reports its
accuracy on the test split, beside the same probe on the raw pixels of the same examples. The
images are those the run trained on (`data:` of its config, e.g. mnist5k's 4000 / 500 digits),
binarization aside: codes and pixels are computed from the grey images.

Prints one JSON line per representation and a markdown table.
"""

import argparse
import dataclasses
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tfdgm import experiment  # noqa: E402
from tfdgm.data import dataset_info, load_labelled  # noqa: E402
from tfdgm.evaluation.linear_probe import linear_probe  # noqa: E402
from tfdgm.training.train import Run, restore, run_optimizers  # noqa: E402


def load_run(run_dir):
    """The config of `run_dir` and its model restored from the best checkpoint."""
    run = Run(run_dir)
    config = experiment.load_config(run.config)
    model = experiment.build_model(config, dataset_info(config.data))
    model.compile_for_training(run_optimizers(model, config))
    restore(model, run.checkpoint("best"))
    return config, model


def codes(model, images, batch_size=500):
    """`{name: [N, D]}` embeddings of `images`, in batches."""
    import numpy as np

    parts = [model.embeddings(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="trained run directories")
    parser.add_argument("--l2", type=float, default=1e-3, help="the probe's weight decay")
    args = parser.parse_args()

    rows, pixel_rows = [], {}
    for run_dir in args.runs:
        config, model = load_run(run_dir)
        grey = dataclasses.replace(config.data, binarize="none")
        x_train, y_train = load_labelled(grey, "train")
        x_test, y_test = load_labelled(grey, "test")
        if config.data.name not in pixel_rows:
            start = time.time()
            pixel_rows[config.data.name] = dict(
                representation=f"raw pixels ({config.data.name})", width=int(x_train[0].size),
                **linear_probe(x_train, y_train, x_test, y_test, l2=args.l2),
                seconds=time.time() - start)
            rows.append(pixel_rows[config.data.name])
        train_codes, test_codes = codes(model, x_train), codes(model, x_test)
        for name in train_codes:
            start = time.time()
            rows.append(dict(representation=f"{config.model.name} {name} ({run_dir})",
                             width=int(train_codes[name].shape[1]),
                             **linear_probe(train_codes[name], y_train, test_codes[name], y_test,
                                            l2=args.l2),
                             seconds=time.time() - start))
    for row in rows:
        print(json.dumps({**row, "machine": platform.platform(), "cpus": os.cpu_count()}))
    print("\n| representation | width | test accuracy | train accuracy |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['representation']} | {row['width']} | {row['accuracy']:.3f} | "
              f"{row['train_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
