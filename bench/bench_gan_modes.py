"""Mode coverage of every GAN loss on the ring of 8 and the grid of 25 Gaussians, at one budget.

Each config is trained through the real command, one fresh process per run,

    python -m tfdgm train --config configs/gan/<config>.yaml --run-dir <runs>/<config> \\
        --set training.epochs=E --set training.steps_per_epoch=S --set training.patience=E \\
        --set training.jit_compile=true

with `E * S` equal to `--generator-steps` for every config (one training step is one generator
update and the `n_critic` discriminator updates before it, `tfdgm.models.gan.options`), and
scored by the run's own test evaluation (`metrics.json`). The table has one row per config: the
loss (with `+ SN` for spectral norm), generator steps, critic updates (`n_critic` times the
generator steps), training seconds (`train_seconds`: the epochs' seconds, their validation
passes and the first step's XLA compilation included; start-up and the test evaluation not),
modes captured and the high-quality fraction, beside the published rows of VEEGAN's table 1.

The protocol is VEEGAN's (Srivastava et al. 2017, section 5.1;
`tfdgm.evaluation.mixture_modes`): 2500 generator samples (`evaluation.num_samples`); a sample
is high quality within 3 standard deviations (`evaluation.mode_num_std`, Euclidean distance in
the plane) of its nearest centre; a mode is captured when at least one high-quality sample has
it as its nearest centre. The mixtures are those of `tfdgm.data.toy2d`: `ring_of_gaussians`, 8
components of std 0.02 on the circle of radius 2 (Metz et al. 2017, as VEEGAN), and
`grid_of_gaussians`, 25 components of std 0.05 centred on `{-4, -2, 0, 2, 4}^2`. VEEGAN averages
five runs per model; each row here is one run (seed 0).

A run directory that already holds a finished run of the same budget (`metrics.json`) is read,
not retrained, so a list can be extended or re-tabled without repeating runs; `--fresh` trains
again, `--table-only` trains nothing (unfinished runs are rows marked "not run"). Training runs
one at a time.

    python bench/bench_gan_modes.py [--configs ns_gan_ring wgan_ring ...] \\
        [--generator-steps 1170] [--steps-per-epoch 117] [--runs runs/gan_modes] [--out F.md]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MIXTURES = ("ring", "grid")
LOSSES = ("ns_gan", "wgan", "wgan_gp", "hinge", "sn_gan")
DEFAULT_CONFIGS = [f"{loss}_{mixture}" for mixture in MIXTURES for loss in LOSSES]

#: VEEGAN's table 1 (Srivastava et al. 2017): modes captured and high-quality samples (%),
#: averaged over five runs, for the ring of 8 and the grid of 25.
PUBLISHED = {
    "ring": [("GAN (VEEGAN's table)", "1", "99.3%"),
             ("unrolled GAN (VEEGAN's table)", "7.6", "35.6%"),
             ("VEEGAN (VEEGAN's table)", "8.0", "52.9%")],
    "grid": [("GAN (VEEGAN's table)", "3.3", "0.5%"),
             ("unrolled GAN (VEEGAN's table)", "23.6", "16%"),
             ("VEEGAN (VEEGAN's table)", "24.6", "40%")],
}


def config_path(name):
    path = name if name.endswith(".yaml") else os.path.join(ROOT, "configs", "gan", name + ".yaml")
    if not os.path.exists(path):
        sys.exit(f"bench_gan_modes: no config {path}; pass names of configs/gan/*.yaml.")
    return path


def describe(path):
    """(loss label, n_critic, mixture) of a GAN config on a 2-D mixture."""
    sys.path.insert(0, ROOT)
    from tfdgm.experiment import load_config

    config = load_config(path)
    model = config.model
    label = model.loss + (" + SN" if model.spectral_norm else "")
    mixture = {"ring_of_gaussians": "ring", "grid_of_gaussians": "grid"}.get(config.data.name)
    if mixture is None:
        sys.exit(f"bench_gan_modes: {path} trains on '{config.data.name}', not on "
                 f"ring_of_gaussians or grid_of_gaussians.")
    return label, model.critic_steps, mixture


def finished(run_dir, epochs):
    """The run's metrics if it finished `epochs` epochs, else None."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        metrics = json.load(f)
    return metrics if metrics.get("epochs_trained") == epochs else None


def train(path, run_dir, epochs, steps_per_epoch, extra_sets):
    sets = [f"training.epochs={epochs}", f"training.steps_per_epoch={steps_per_epoch}",
            f"training.patience={epochs}", "training.jit_compile=true"] + list(extra_sets)
    command = [sys.executable, "-m", "tfdgm", "train", "--config", path, "--run-dir", run_dir]
    for item in sets:
        command += ["--set", item]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    with open(os.path.join(os.path.dirname(run_dir), os.path.basename(run_dir) + ".log"),
              "w") as log:
        code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    print(f"  exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
    return code


def table(rows, generator_steps):
    lines = ["| mixture | loss | generator steps | critic updates | training s | modes captured "
             "| high-quality samples |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for mixture in MIXTURES:
        ours = [row for row in rows if row["mixture"] == mixture]
        if not ours:
            continue
        for row in ours:
            if row["metrics"] is None:
                status = "not run" if row["exit"] is None else f"failed (exit {row['exit']})"
                lines.append(f"| {mixture} | {row['label']} | {generator_steps} | "
                             f"{row['critic_updates']} | | {status} | |")
                continue
            m = row["metrics"]
            lines.append(
                f"| {mixture} | {row['label']} | {generator_steps} | {row['critic_updates']} | "
                f"{m['train_seconds']:.0f} | {m['test_modes_captured']} / {m['test_num_modes']} "
                f"| {100 * m['test_high_quality_fraction']:.1f}% |")
        for label, modes, quality in PUBLISHED[mixture]:
            lines.append(f"| {mixture} | {label} | | | | {modes} | {quality} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                        help="configs/gan names or YAML paths (default: every loss on both)")
    parser.add_argument("--generator-steps", type=int, default=1170)
    parser.add_argument("--steps-per-epoch", type=int, default=117)
    parser.add_argument("--runs", default=os.path.join(ROOT, "runs", "gan_modes"),
                        help="folder of the run directories (<runs>/<config>_<steps>)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra override for every run, e.g. evaluation.num_samples=5000")
    parser.add_argument("--fresh", action="store_true", help="retrain finished runs")
    parser.add_argument("--table-only", action="store_true",
                        help="tabulate the finished runs, train none")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    if args.generator_steps % args.steps_per_epoch:
        sys.exit("bench_gan_modes: --generator-steps must be a multiple of --steps-per-epoch.")
    epochs = args.generator_steps // args.steps_per_epoch
    os.makedirs(args.runs, exist_ok=True)

    rows = []
    for name in args.configs:
        path = config_path(name)
        label, n_critic, mixture = describe(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        run_dir = os.path.join(os.path.abspath(args.runs), f"{stem}_{args.generator_steps}")
        metrics = None if args.fresh else finished(run_dir, epochs)
        code = None
        if metrics is None and not args.table_only:
            shutil.rmtree(run_dir, ignore_errors=True)
            code = train(path, run_dir, epochs, args.steps_per_epoch, args.set)
            metrics = finished(run_dir, epochs)
        rows.append({"mixture": mixture, "label": label, "metrics": metrics, "exit": code,
                     "critic_updates": n_critic * args.generator_steps})
        print(table(rows, args.generator_steps), flush=True)

    result = table(rows, args.generator_steps)
    print()
    print(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(result + "\n")


if __name__ == "__main__":
    main()
