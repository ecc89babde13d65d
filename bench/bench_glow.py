"""Glow: tfdgm's `glow` model vs TFP's own `tfb.Glow`, same L, K, width, data and steps.

Both flows model uniformly dequantized 8-bit images `y - 1/2` (no logit), trained with Adam on
the same batches for the same number of steps; each runs in its own subprocess, so its peak
resident memory (`ru_maxrss`) is its own. Reported: seconds per training step (after the first
steps, which trace), peak memory, and test bits/dim (the uniform-dequantization bound, one
fixed noise draw per test image, the same draw for both):

    bpd = -(log p(y) - D log 256) / (D log 2)

TFP's Glow uses its default networks (`tfb.GlowDefaultNetwork` at the same width,
`tfb.GlowDefaultExitNetwork`; tf_keras layers), its ActNorm (data-dependent initialization) and
its default split (`grab_after_block` 1/2 per level); 28 x 28 images need no padding for L = 2
(both require H, W divisible by 2^L).

    python bench/bench_glow.py --data mnist5k --levels 2 --depth 4 --width 64 --steps 200
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(args):
    from tfdgm.config import DataConfig
    from tfdgm.data import load_images

    config = DataConfig(name=args.data, max_examples=args.max_examples)
    train = load_images(config, "train")
    test = load_images(config, "test")[:args.test_examples]
    return train, test


def _batches(train, args):
    rng = np.random.default_rng(0)
    for step in range(args.steps):
        idx = rng.integers(0, len(train), args.batch)
        noise = rng.uniform(size=(args.batch, *train.shape[1:])).astype(np.float32)
        yield step, train[idx], noise


def _dequantize(x, noise):
    return (np.round(x * 255.) + noise) / 256.


def _bpd(log_p_y, dims):
    return float(-(np.mean(log_p_y) - dims * np.log(256.)) / (dims * np.log(2.)))


def run_tfdgm(args):
    import keras
    import tensorflow as tf

    from tfdgm.models.flows import Glow

    train, test = _data(args)
    keras.utils.set_random_seed(0)
    model = Glow(train.shape[1:], num_levels=args.levels, num_steps=args.depth,
                 hidden_channels=args.width)
    model.build()
    optimizer = keras.optimizers.Adam(args.lr)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(y):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(model.log_density(y, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    log_density = tf.function(lambda y: model.log_density(y))
    return _train_and_test(args, train, test, step, log_density)


def run_tfp(args):
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    tfb, tfd = tfp.bijectors, tfp.distributions
    train, test = _data(args)
    tf.random.set_seed(0)
    shape = train.shape[1:]
    glow = tfb.Glow(output_shape=shape, num_glow_blocks=args.levels,
                    num_steps_per_block=args.depth,
                    coupling_bijector_fn=lambda s: tfb.GlowDefaultNetwork(s, num_hidden=args.width),
                    exit_bijector_fn=tfb.GlowDefaultExitNetwork, seed=0)
    dims = int(np.prod(shape))
    flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [dims]), glow)
    # The first call creates the variables and initializes ActNorm from its data: the first
    # training batch, as on tfdgm's side.
    _, x, noise = next(_batches(train, args))
    flow.log_prob(_dequantize(x, noise) - 0.5)
    optimizer = tf_keras.optimizers.Adam(args.lr)

    @tf.function
    def step(y):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.log_prob(y - 0.5))
        variables = flow.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    log_density = tf.function(lambda y: flow.log_prob(y - 0.5))
    return _train_and_test(args, train, test, step, log_density)


def _train_and_test(args, train, test, step, log_density):
    times = []
    for i, x, noise in _batches(train, args):
        start = time.perf_counter()
        loss = float(step(_dequantize(x, noise)))
        times.append(time.perf_counter() - start)
        if not np.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {i}")
    noise = np.random.default_rng(1).uniform(size=test.shape).astype(np.float32)
    y = _dequantize(test, noise)
    log_p = np.concatenate([log_density(y[i:i + 250]).numpy() for i in range(0, len(y), 250)])
    dims = int(np.prod(test.shape[1:]))
    warm = times[min(5, len(times) - 1):]
    return {"seconds_per_step": float(np.median(warm)), "first_step_seconds": times[0],
            "test_bits_per_dim": _bpd(log_p, dims),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("tfdgm", "tfp"), help="run one side (internal)")
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--max-examples", type=int, default=None)
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    if args.impl:
        result = (run_tfdgm if args.impl == "tfdgm" else run_tfp)(args)
        print("RESULT " + json.dumps(result))
        return
    results = {}
    for impl in ("tfdgm", "tfp"):
        command = [sys.executable, os.path.abspath(__file__), "--impl", impl] + sys.argv[1:]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"{impl} failed:\n{out.stderr[-4000:]}")
        results[impl] = json.loads(lines[-1][len("RESULT "):])
    print(f"Glow L={args.levels} K={args.depth} width={args.width} batch={args.batch} "
          f"steps={args.steps} data={args.data}")
    print(f"{'':8s} {'s/step':>8s} {'first step s':>13s} {'peak RSS MiB':>13s} {'test bpd':>9s}")
    for impl, r in results.items():
        print(f"{impl:8s} {r['seconds_per_step']:8.4f} {r['first_step_seconds']:13.1f} "
              f"{r['peak_rss_mib']:13.0f} {r['test_bits_per_dim']:9.4f}")


if __name__ == "__main__":
    main()
