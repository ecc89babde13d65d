"""Command line: `python -m tfdgm {train,evaluate,sample,export} ...`.

    python -m tfdgm train --config configs/quickstart.yaml [--set key=value ...] [--run-dir DIR]
    python -m tfdgm evaluate --run runs/quickstart [--set evaluation.nll_samples=1000]
    python -m tfdgm sample --run runs/quickstart -n 64 [--temperature 0.7] [--seed 1] [--out F]
    python -m tfdgm export --run runs/quickstart [--base-dir export] [--version N|auto]

TensorFlow's C++ log lines (oneDNN, CUDA probing on machines without a GPU) are hidden unless
`--verbose` is given (before or after the command, so `make train ARGS=--verbose` works). Bad input
(config keys, values, dataset, incompatible options) exits with status 2 and a message naming
the problem and the fix; a NaN/Inf in training exits with status 3.
"""

import argparse
import atexit
import os
import sys

from tfdgm.errors import TfdgmError

VERBOSE = "--verbose" in sys.argv[1:]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if VERBOSE else "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _import_tensorflow(verbose: bool = VERBOSE) -> None:
    """Imports TensorFlow once a command is about to run (`--help` and argument errors never
    pay its seconds), quietly unless `verbose`: with file descriptor 2 on /dev/null, because its
    shared libraries log through absl before `TF_CPP_MIN_LOG_LEVEL` applies (CUDA stub probing
    on machines without a GPU)."""
    if "tensorflow" in sys.modules or verbose:
        import tensorflow  # noqa: F401
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401,F811
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


SET_HELP = ("override a config value (YAML syntax), e.g. model.latent_dim=32; repeatable")
RUN_SET_HELP = ("override an evaluation-time config value (YAML syntax): evaluation.*, export.*, "
                "distribute.*, data.data_dir or data.eval_batch_size; repeatable")
DATA_DIR_HELP = "folder of the dataset's source files (shorthand for --set data.data_dir=DIR)"
VERBOSE_HELP = "show TensorFlow's C++ log lines (hidden by default)"
GRIDS = "samples.png and the family's other grids"


def _parser():
    parser = argparse.ArgumentParser(prog="python -m tfdgm", description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="train, evaluate, sample or export")

    train = commands.add_parser("train", help="train (or resume) a run, then evaluate it")
    train.add_argument("--config", default="configs/quickstart.yaml",
                       help="experiment config YAML (default: %(default)s)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    train.add_argument("--run-dir", help="run directory (default: runs/<config name>)")
    train.add_argument("--data-dir", help=DATA_DIR_HELP)
    train.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help=VERBOSE_HELP)

    for name, text in (
            ("evaluate", f"recompute the test figures of a run's best checkpoint; rewrites the "
                         f"run's metrics.json and image grids ({GRIDS})"),
            ("sample", "write a PNG grid of samples from a run's best checkpoint"),
            ("export", "export a run as a SavedModel (TF Serving layout) and TFLite")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--run", required=True, help="the run directory, e.g. runs/quickstart")
        command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help=RUN_SET_HELP)
        command.add_argument("--data-dir", help=DATA_DIR_HELP)
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help=VERBOSE_HELP)
        if name == "sample":
            command.add_argument("-n", "--num", type=int, default=64,
                                 help="number of samples (default: %(default)s)")
            command.add_argument("--temperature", type=float, default=1.0,
                                 help="sampling temperature T > 0 as the model family defines "
                                      "it (for latent-variable models: latent noise from "
                                      "N(0, T^2 I)); default: %(default)s")
            command.add_argument("--seed", type=int, default=0,
                                 help="seed of the sampling noise (default: %(default)s)")
            command.add_argument("--out", help="PNG path (default: <run>/samples_<n>_T<T>.png, "
                                               "e.g. samples_64_T0p7.png, with _seed<seed> "
                                               "added for a seed other than 0)")
        if name == "export":
            command.add_argument("--base-dir",
                                 help="export base directory (config export.base_dir)")
            command.add_argument("--version", metavar="N|auto",
                                 help="model version, or 'auto' for the next free one (one "
                                      "above the highest present; config export.version)")
            command.add_argument("--overwrite", action="store_true",
                                 help="replace an existing export (SavedModel and .tflite) of "
                                      "the same version")
    return parser


def _load_run(args):
    """Config of an existing run and its model restored from the best checkpoint."""
    from tfdgm import experiment
    from tfdgm.data import dataset_info
    from tfdgm.errors import ConfigError
    from tfdgm.training.train import Run, changed_keys, restore, run_optimizers

    run = Run(args.run)
    if not os.path.exists(run.config):
        raise ConfigError(f"'{args.run}' is not a run directory (no config.yaml). Train one "
                          f"first with `make train`, or pass RUN=runs/<name>.")
    overrides = list(args.set) + ([f"data.data_dir={args.data_dir}"] if args.data_dir else [])
    config = experiment.load_config(run.config, overrides)
    changed = changed_keys(experiment.load_config(run.config), config, EVALUATION_CHANGES)
    if changed:
        raise ConfigError(f"{args.command} cannot change the experiment a run trained "
                          f"({', '.join(changed)}); --set only evaluation.*, export.*, "
                          f"distribute.*, data.data_dir or data.eval_batch_size here, or train "
                          f"a new run with `make train`.")
    if not os.path.exists(run.checkpoint("best")):
        raise ConfigError(f"'{args.run}' has no checkpoint yet ({run.checkpoint('best')}); "
                          f"train it for at least one epoch.")
    model = experiment.build_model(config, dataset_info(config.data))
    model.compile_for_training(run_optimizers(model, config))
    restore(model, run.checkpoint("best"))
    return config, run, model


EVALUATION_CHANGES = ("evaluation", "export", "distribute", "data.data_dir", "data.eval_batch_size")
"""What `evaluate`, `sample` and `export` may override in a run's config."""


def _temperature_tag(temperature):
    return f"{temperature:g}".replace(".", "p")


def samples_filename(num, temperature, seed=0):
    """`samples_<n>_T<T>[_seed<seed>].png`: the settings of a `sample` command, `.` written `p`
    (`samples_64_T0p7.png`); the seed only when it is not the default 0."""
    suffix = f"_seed{seed}" if seed else ""
    return f"samples_{num}_T{_temperature_tag(temperature)}{suffix}.png"


def _modification_times(folder):
    """`{file name: mtime}` of the files directly in `folder`."""
    return {entry.name: entry.stat().st_mtime_ns for entry in os.scandir(folder)
            if entry.is_file()}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    _import_tensorflow(VERBOSE or getattr(args, "verbose", False))
    try:
        if args.command == "train":
            from tfdgm import experiment
            from tfdgm.training.train import train_and_evaluate

            overrides = list(args.set) + ([f"data.data_dir={args.data_dir}"]
                                          if args.data_dir else [])
            config = experiment.load_config(args.config, overrides)
            run_dir = args.run_dir or os.path.join("runs", config.name)
            metrics = train_and_evaluate(config, run_dir)
            _print_metrics(metrics, run_dir)
        elif args.command == "evaluate":
            from tfdgm.data import load_datasets
            from tfdgm.training.callbacks import RunState
            from tfdgm.training.train import evaluate

            config, run, model = _load_run(args)
            datasets = load_datasets(config.data, seed=config.seed)
            before = _modification_times(run.dir)
            metrics = evaluate(model, datasets, config, run, RunState.load(run.checkpoints))
            after = _modification_times(run.dir)
            replaced = sorted(name for name in before if after.get(name, before[name])
                              != before[name] and not name.startswith("."))
            if replaced:
                print(f"Replaced the run's earlier {', '.join(replaced)} (now from the best "
                      f"checkpoint with this command's evaluation settings).")
            _print_metrics(metrics, run.dir)
        elif args.command == "sample":
            from tfdgm.errors import ConfigError
            from tfdgm.evaluation import save_png, tile
            from tfdgm.models.base import check_temperature

            if args.num < 1:
                raise ConfigError(f"-n/--num must be at least 1, got {args.num}.")
            temperature = check_temperature(args.temperature)
            out = args.out or os.path.join(
                args.run, samples_filename(args.num, temperature, args.seed))
            if not out.lower().endswith(".png"):
                raise ConfigError(f"--out {out}: the samples are written as PNG; give a path "
                                  f"ending in .png.")
            if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
                raise ConfigError(f"--out {out}: folder {os.path.dirname(out) or '.'} does not "
                                  f"exist; create it first.")
            config, run, model = _load_run(args)
            samples = model.sample(args.num, temperature=temperature, seed=args.seed)
            save_png(tile(samples), out)
            print(f"Wrote {args.num} samples (temperature {temperature:g}) to {out}")
        elif args.command == "export":
            from tfdgm.data import dataset_info
            from tfdgm.experiment import float32_copy
            from tfdgm.export import export_model, resolve_version, serving_instructions

            config, run, model = _load_run(args)
            model = float32_copy(config, model, dataset_info(config.data))
            base = args.base_dir or config.export.base_dir
            version = resolve_version(
                args.version if args.version is not None else config.export.version,
                base, config.name)
            exported = export_model(model, base, config.name, version,
                                    tflite=config.export.tflite, overwrite=args.overwrite)
            print(serving_instructions(model, exported, base))
    except TfdgmError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("\nInterrupted: run the same command again to resume from the last checkpoint.",
              file=sys.stderr)
        return 130
    return 0


def _print_metrics(metrics, run_dir):
    if not metrics:
        return
    print(f"\nResults ({os.path.join(run_dir, 'metrics.json')}):")
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f"  {key:>22}: {value:.3f}")
        elif not isinstance(value, list):
            print(f"  {key:>22}: {value}")


def exit_without_teardown(status: int) -> None:
    """Ends the process with `status` after its `atexit` handlers, skipping the interpreter's
    teardown, where freeing TensorFlow's objects one by one took 3-5 s after a training run on
    2 CPU cores; nothing is written then (checkpoints, metrics and event files are written and
    flushed when a command returns). A worker of a multi-worker cluster (`TF_CONFIG` set) exits
    the ordinary way."""
    if os.environ.get("TF_CONFIG"):
        sys.exit(status)
    atexit._run_exitfuncs()  # noqa: SLF001 (the handlers `sys.exit` would run: temp files)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    exit_without_teardown(main())
