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

The two sides differ in more than speed; `--runs` adds tfdgm runs with one difference removed at
a time, to find which one costs bits/dim (`tfdgm:KEY=VALUE[,KEY=VALUE]`, keys: the `Glow`
options `coupling_scale`, `learn_top`, `learn_split_priors`; `conditioner_init`, the
initializer of the couplings' two hidden convolutions: `glorot_uniform`, Keras' default and
ours, or `he_normal`, TFP's `GlowDefaultNetwork`'s; and `split_prior_log_std`, the `Glow`
option of the split priors' initial log-std (default 0, the paper's; -2 is TFP's start: its
exit bijector scales the factored-out half by `exp(h + 2)`):

    python bench/bench_glow.py --steps 300 --runs tfdgm tfp tfdgm:conditioner_init=he_normal \
        tfdgm:learn_top=false tfdgm:coupling_scale=tanh
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
    rng = np.random.default_rng(args.seed)
    for step in range(args.steps):
        idx = rng.integers(0, len(train), args.batch)
        noise = rng.uniform(size=(args.batch, *train.shape[1:])).astype(np.float32)
        yield step, train[idx], noise


def _dequantize(x, noise):
    return (np.round(x * 255.) + noise) / 256.


def _bpd(log_p_y, dims):
    return float(-(np.mean(log_p_y) - dims * np.log(256.)) / (dims * np.log(2.)))


_BOOLEAN_OPTIONS = ("learn_top", "learn_split_priors")


def parse_variant(spec):
    """`'tfdgm:coupling_scale=tanh,learn_top=false'` -> `('tfdgm', {...})`; `'tfp'` -> `('tfp',
    {})`."""
    impl, _, options = spec.partition(":")
    if impl not in ("tfdgm", "tfp") or (impl == "tfp" and options):
        raise SystemExit(f"--runs: {spec!r} is not tfp or tfdgm[:KEY=VALUE,...]")
    parsed = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        if key in _BOOLEAN_OPTIONS:
            if value not in ("true", "false"):
                raise SystemExit(f"--runs: {key} takes true or false, got {value!r}")
            parsed[key] = value == "true"
        elif key == "coupling_scale" and value in ("sigmoid", "tanh", "additive"):
            parsed[key] = value
        elif key == "conditioner_init" and value in ("glorot_uniform", "he_normal"):
            parsed[key] = value
        elif key == "split_prior_log_std":
            parsed[key] = float(value)
        else:
            raise SystemExit(f"--runs: unknown option or value {item!r} in {spec!r}")
    return impl, parsed


def _reinitialize_conditioners(model, initializer):
    """Redraws the hidden kernels of every coupling conditioner (the zero last layer stays)."""
    import keras

    from tfdgm.flows.coupling import CouplingConvNet

    init = keras.initializers.get(initializer)
    for layer in model._flatten_layers():
        if isinstance(layer, CouplingConvNet):
            for conv in (layer.conv_in, layer.conv_hidden):
                conv.kernel.assign(init(conv.kernel.shape))


def run_tfdgm(args, options):
    import keras
    import tensorflow as tf

    from tfdgm.models.flows import Glow

    train, test = _data(args)
    keras.utils.set_random_seed(args.seed)
    options = dict(options)
    conditioner_init = options.pop("conditioner_init", "glorot_uniform")
    model = Glow(train.shape[1:], num_levels=args.levels, num_steps=args.depth,
                 hidden_channels=args.width, **options)
    model.build()
    if conditioner_init != "glorot_uniform":
        _reinitialize_conditioners(model, conditioner_init)
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


def run_tfp(args, options):
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    tfb, tfd = tfp.bijectors, tfp.distributions
    train, test = _data(args)
    tf.random.set_seed(args.seed)
    shape = train.shape[1:]
    glow = tfb.Glow(output_shape=shape, num_glow_blocks=args.levels,
                    num_steps_per_block=args.depth,
                    coupling_bijector_fn=lambda s: tfb.GlowDefaultNetwork(s, num_hidden=args.width),
                    exit_bijector_fn=tfb.GlowDefaultExitNetwork, seed=args.seed)
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
    parser.add_argument("--impl", help="run one side (internal)")
    parser.add_argument("--runs", nargs="+", default=["tfdgm", "tfp"],
                        help="tfp, tfdgm or tfdgm:KEY=VALUE[,KEY=VALUE] (see the docstring)")
    parser.add_argument("--seed", type=int, default=0,
                        help="batches, noise and initialization (both sides)")
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
        impl, options = parse_variant(args.impl)
        result = (run_tfdgm if impl == "tfdgm" else run_tfp)(args, options)
        print("RESULT " + json.dumps(result))
        return
    for spec in args.runs:
        parse_variant(spec)
    results = {}
    for impl in args.runs:
        command = [sys.executable, os.path.abspath(__file__), "--impl", impl] + sys.argv[1:]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"{impl} failed:\n{out.stderr[-4000:]}")
        results[impl] = json.loads(lines[-1][len("RESULT "):])
    print(f"Glow L={args.levels} K={args.depth} width={args.width} batch={args.batch} "
          f"steps={args.steps} data={args.data} seed={args.seed}")
    print("| run | seconds per step | first step (s) | peak RSS (MiB) | test bits/dim |")
    print("| --- | --- | --- | --- | --- |")
    for impl, r in results.items():
        print(f"| {impl} | {r['seconds_per_step']:.4f} | {r['first_step_seconds']:.1f} | "
              f"{r['peak_rss_mib']:.0f} | {r['test_bits_per_dim']:.4f} |")


if __name__ == "__main__":
    main()
