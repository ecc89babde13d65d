"""Benchmark: the library's VAE training epoch vs a bare `tf.function` step of the same network.

    python bench/bench_vae.py --data-dir ../shared/data [--rounds 3] [--set KEY=VALUE ...]

Times the gated-MLP VAE of `configs/vae_static_mnist.yaml` (300-300, z = 40, Bernoulli, Adam
5e-4, batch 100) on static binarized MNIST (50000 training images, 500 steps an epoch); without
`--data-dir` (no `binarized_mnist.npz`) the same network on the 4000 mnist5k training digits,
dynamically binarized. One process, the same batches, six paths:

* `library_default`: what `make train` does in an epoch, through the library's own functions as
  `tfdgm.training.train` calls them: the run's strategy (`make_strategy`: one device), the model
  built from the config (`tfdgm.experiment.build_model`), compiled with the run's optimizers,
  its steps compiled or not by `tfdgm.training.xla.select` for the config's default
  `training.jit_compile` (`auto`) and run `training.steps_per_execution` (`auto`) steps a call
  (`tfdgm.training.execution`), trained by `model.fit` on the run's resumable training stream
  (`load_training_datasets`) with the per-batch callbacks of a run (the family's, the NaN guard,
  the progress bar), minus the epoch-end validation, checkpoint and TensorBoard writes (those
  are in `bench/bench_command.py`);
* `library_xla`, `library_no_xla`: the same with `training.jit_compile` forced to true / false;
* `library_one_step`: the default with one training step a call (`training.steps_per_execution:
  1`);
* `bare`: the same encoder, decoder and posterior heads, a hand-written ELBO and Adam step in a
  `tf.function` without XLA, looping over the same batches held in memory (no input pipeline);
* `bare_xla`: that step compiled with XLA.

Every path first runs one untimed epoch (tracing, compilation). Then `--rounds` rounds, each
timing one epoch of every path, the order rotated from round to round (alternated, so background
load on a shared machine falls on all paths alike). A library path's round is one `fit` call of
`--fit-epochs` (2) epochs of which the last are timed (from `on_epoch_begin` to `on_epoch_end`),
as a run's `fit` repeats epochs; the first epoch of a call also creates the input iterator, and
its excess is reported apart (`fit_call_overhead_seconds`). Reported: the median epoch seconds of
each path, the per-round ratios to `bare` (median, min, max), whether Keras compiled each library
path with XLA, and the machine (with its load average: other processes slow every path alike
but widen the spread). The goal of issue 12: library_default / bare <= 0.85. Prints one JSON
line (`--out` writes it to a file as well).
"""

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdgm import experiment  # noqa: E402
from tfdgm.training import callbacks as cb  # noqa: E402
from tfdgm.training import train as train_lib  # noqa: E402
from tfdgm.training.strategy import make_strategy  # noqa: E402
from tfdgm.training.train import load_training_datasets, run_optimizers  # noqa: E402

try:  # the `training.jit_compile: auto` decision (issue 12)
    from tfdgm.training import xla  # noqa: E402
except ImportError:
    xla = None
try:  # `training.steps_per_execution: auto` (issue 12)
    from tfdgm.training import execution  # noqa: E402
except ImportError:
    execution = None

CONFIG = "configs/vae_static_mnist.yaml"
PHILOX = "philox"
"""The bare steps' stateless sampler: what TensorFlow picks on a CPU without XLA; XLA's CPU
default (`auto_select`) is a much slower generator (`tfdgm.training.xla`)."""
FALLBACK = ["data.name=mnist5k", "data.binarize=dynamic"]


# Shared by the bench scripts of issue 12 (bench_steps.py and bench_command.py import these). ---

def machine(load_at_start):
    """What the figures were measured on (`load_at_start`: the 1-minute load average when the
    measurement began)."""
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(), "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "load_average_1m_at_start": round(load_at_start, 2),
    }


def static_mnist_available(data_dir):
    return bool(data_dir) and os.path.exists(os.path.join(data_dir, "binarized_mnist.npz"))


def alternated_rounds(paths, rounds):
    """`{name: [seconds per round]}` for `paths` (`{name: callable -> seconds}`): `rounds`
    rounds, each calling every path once, the order rotated by one each round."""
    names = list(paths)
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(paths[name]())
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names),
              file=sys.stderr, flush=True)
    return times


def ratio_summary(times, numerator, denominator):
    """Median, min and max over rounds of `times[numerator][r] / times[denominator][r]`."""
    ratios = np.asarray(times[numerator]) / np.asarray(times[denominator])
    return {"median": float(np.median(ratios)), "min": float(ratios.min()),
            "max": float(ratios.max()), "rounds": [round(float(v), 4) for v in ratios]}


def emit(result, out=None):
    """Prints `result` as one JSON line (and writes it to `out`)."""
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    line = json.dumps(result)
    print(line, flush=True)
    if out:
        with open(out, "w") as f:
            f.write(line + "\n")


# The library path -------------------------------------------------------------------------------

class EpochTimer(keras.callbacks.Callback):
    """Records the seconds from each epoch's start to its end (first in the callback list)."""

    def __init__(self):
        super().__init__()
        self.seconds, self._start = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


class LibraryEpochs:
    """A model built, compiled and trained through the library's own functions.

    `__call__` runs one `model.fit` call of `fit_epochs` epochs (epochs continue from the last
    call, so the KL warm-up advances as in a run) and returns the mean seconds of its epochs
    after the first: an epoch as a run's `fit` repeats it. The first epoch of a call also
    creates the input iterator and the callbacks' state, which a run pays once; its excess over
    the others is kept in `fit_call_overhead`.
    """

    def __init__(self, config, checkpoint_dir, fit_epochs=2):
        self.config, self.fit_epochs = config, fit_epochs
        # As tfdgm.training.train._train_and_evaluate prepares a fresh run.
        self.strategy = make_strategy(config.distribute.strategy)
        self.datasets = load_training_datasets(config, first_epoch=0)
        self.steps = config.training.steps_per_epoch or self.datasets.steps_per_epoch
        with self.strategy.scope():
            keras.utils.set_random_seed(config.seed)
            self.model = experiment.build_model(config, self.datasets.info)
            self.decision = None
            if xla is None:  # before training.jit_compile: auto
                self.model.compile_for_training(run_optimizers(self.model, config),
                                                jit_compile=config.training.jit_compile)
            else:
                self.model.compile_for_training(run_optimizers(self.model, config),
                                                jit_compile=False)
            self.model.prepare_training(self.datasets, config)
            if xla is not None:
                self.decision = xla.select(self.model, self.strategy,
                                           config.training.jit_compile, self.datasets.train,
                                           train_lib._probe_batches(self.datasets, config))
            self.execution = None
            if execution is not None:
                self.execution = execution.choose(config.training.steps_per_execution,
                                                  self.steps,
                                                  self.strategy.num_replicas_in_sync)
                execution.apply(self.model, self.execution)
        self.callbacks = self.model.training_callbacks(config) + [
            cb.NonFiniteGuard(checkpoint_dir, self.model.watched_terms)]
        self.epoch = 0
        self.fit_call_overhead = []

    def fit(self, epochs):
        """Seconds of each of `epochs` epochs of one `fit` call."""
        timer = EpochTimer()
        with contextlib.redirect_stdout(io.StringIO()):  # verbose=1 as a run; not on screen
            self.model.fit(self.datasets.train, epochs=self.epoch + epochs,
                           initial_epoch=self.epoch, steps_per_epoch=self.steps,
                           callbacks=[timer] + self.callbacks, verbose=1, shuffle=False)
        self.epoch += epochs
        return timer.seconds

    def __call__(self):
        seconds = self.fit(self.fit_epochs)
        if len(seconds) == 1:
            return seconds[0]
        steady = float(np.mean(seconds[1:]))
        self.fit_call_overhead.append(seconds[0] - steady)
        return steady

    def warm_up(self):
        """One epoch (tracing, compilation), untimed by the benchmark; returns its seconds."""
        return sum(self.fit(1))

    def jit_compile_used(self):
        """Whether the training step was compiled with XLA, and the library's reason; the
        training steps a call of the training function."""
        steps = {"steps_per_execution": int(self.model.steps_per_execution)}
        if self.decision is not None:
            return {"train": self.decision.train, "test": self.decision.test,
                    "decision": self.decision.describe(),
                    "probe_seconds": round(self.decision.probe_seconds, 3), **steps}
        return {"train": bool(getattr(self.model, "jit_compile", None)), **steps}

    def batches(self):
        """The first epoch's batches of the run's training stream, as tensors in memory."""
        from tfdgm.data.batches import images_of

        return [tf.constant(images_of(batch)) for batch in self.datasets.train.take(self.steps)]


class BareEpochs:
    """`step(x, seed)` over in-memory `batches`; `__call__` runs one epoch, returns seconds."""

    def __init__(self, step, batches):
        self.step, self.batches, self.epoch = step, batches, 0

    def __call__(self):
        start = time.perf_counter()
        for i, x in enumerate(self.batches):
            loss = self.step(x, tf.constant([self.epoch, i], tf.int64))
        float(loss)  # waits for the last step
        self.epoch += 1
        return time.perf_counter() - start

    warm_up = __call__


# The bare VAE step ------------------------------------------------------------------------------

def bare_vae_step(model, config, jit_compile=False):
    """A training step written directly against the model's layers, no Keras trainer:

    z = mu(h) + sigma(h) eps, sigma = softplus(.) + 1e-5, h = encoder(x);
    loss = mean_B [ KL(N(mu, sigma^2) || N(0, I)) - log Bernoulli(x; decoder(z)) ] (beta = 1),
    Adam with the config's settings.
    """
    options = config.optimizer
    optimizer = keras.optimizers.Adam(options.learning_rate, beta_1=options.beta_1,
                                      beta_2=options.beta_2, epsilon=options.epsilon)
    encoder, decoder = model.encoder, model.decoder
    loc_head, scale_head = model.posterior.loc_head, model.posterior.scale_head
    variables = model.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def step(x, seed):
        with tf.GradientTape() as tape:
            h = encoder(x)
            loc, scale = loc_head(h), tf.nn.softplus(scale_head(h)) + 1e-5
            z = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed, alg=PHILOX)
            logits = decoder(z)
            log_px = -tf.reduce_sum(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), [1, 2, 3])
            kl = tf.reduce_sum(0.5 * (loc ** 2 + scale ** 2 - 1.0) - tf.math.log(scale), -1)
            loss = tf.reduce_mean(kl - log_px)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return step


def bare_model(config, info):
    """A fresh model of `config` (the same layers and initial weights as the library's)."""
    keras.utils.set_random_seed(config.seed)
    return experiment.build_model(config, info)


LIBRARY_VARIANTS = {"library_default": [], "library_xla": ["training.jit_compile=true"],
                    "library_no_xla": ["training.jit_compile=false"],
                    "library_one_step": ["training.steps_per_execution=1"]}
BARE_VARIANTS = {"bare": False, "bare_xla": True}
PATHS = tuple(LIBRARY_VARIANTS) + tuple(BARE_VARIANTS)


def measure(config_path, overrides, bare_step, paths, rounds, fit_epochs):
    """Times `paths` (names of `PATHS`; `library_default` and `bare` always) of the config at
    `config_path` with `overrides`: one warm-up epoch each, then `rounds` alternated rounds.
    `bare_step(model, config, jit_compile) -> step(x, seed)`. Returns the figures (a dict)."""
    load_at_start = os.getloadavg()[0]
    names = ["library_default"] + [p for p in paths if p in LIBRARY_VARIANTS
                                   and p != "library_default"]
    with tempfile.TemporaryDirectory() as scratch:
        library = {name: LibraryEpochs(experiment.load_config(
            config_path, overrides + LIBRARY_VARIANTS[name]), scratch, fit_epochs)
            for name in names}
        default = library["library_default"]
        batches = default.batches()
        timed = dict(library)
        for name in ["bare"] + [p for p in paths if p in BARE_VARIANTS and p != "bare"]:
            model = bare_model(default.config, default.datasets.info)
            timed[name] = BareEpochs(bare_step(model, default.config, BARE_VARIANTS[name]),
                                     batches)
        warmup = {name: path.warm_up() for name, path in timed.items()}  # traces, compiles
        times = alternated_rounds(timed, rounds)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    examples = default.steps * default.config.data.batch_size
    return {
        "config": config_path, "overrides": overrides, "dataset": default.config.data.name,
        "steps_per_epoch": default.steps, "batch_size": default.config.data.batch_size,
        "rounds": rounds, "library_epochs_per_fit_call": fit_epochs,
        "default_jit_compile_setting": str(default.config.training.jit_compile),
        "jit_compile_used": {name: path.jit_compile_used() for name, path in library.items()},
        "epoch_seconds_median": medians,
        "epoch_seconds_rounds": {name: [round(v, 4) for v in t] for name, t in times.items()},
        "ratio_to_bare": {name: ratio_summary(times, name, "bare") for name in timed
                          if name != "bare"},
        "examples_per_second": {name: examples / s for name, s in medians.items()},
        "warmup_epoch_seconds": warmup,
        "fit_call_overhead_seconds": {
            name: float(np.median(path.fit_call_overhead)) for name, path in library.items()
            if path.fit_call_overhead},
        "machine": machine(load_at_start),
    }


def add_common_arguments(parser, rounds=3):
    parser.add_argument("--rounds", type=int, default=rounds, help="timed rounds (>= 3)")
    parser.add_argument("--steps", type=int, help="steps per epoch (default: a whole epoch)")
    parser.add_argument("--fit-epochs", type=int, default=2,
                        help="epochs per fit call of a library path per round; all but the "
                             "first are timed (1: time the first, with the fit call's set-up)")
    parser.add_argument("--paths", default=",".join(PATHS),
                        help=f"comma-separated subset of {','.join(PATHS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every library path")
    parser.add_argument("--out", help="also write the JSON line(s) here")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 1)[1])
    parser.add_argument("--data-dir", default=os.environ.get("TFDGM_DATA_DIR"),
                        help="folder with binarized_mnist.npz (default $TFDGM_DATA_DIR; "
                             "without it: mnist5k)")
    add_common_arguments(parser)
    args = parser.parse_args()

    static = static_mnist_available(args.data_dir)
    overrides = ([f"data.data_dir={args.data_dir}"] if static else FALLBACK) + args.set
    if args.steps:
        overrides.append(f"training.steps_per_epoch={args.steps}")
    result = measure(CONFIG, overrides, bare_vae_step, args.paths.split(","), args.rounds,
                     args.fit_epochs)
    emit({"benchmark": "bench_vae", **result, "goal": "library_default / bare <= 0.85"},
         args.out)


if __name__ == "__main__":
    main()
