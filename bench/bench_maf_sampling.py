"""Benchmark: MAF sampling by `MADE.invert` against `D` fixed-point passes of the whole MADE.

    python bench/bench_maf_sampling.py [--rounds 5] [--num 64,1000] [--flows 5] [--hidden 1024]

The model is `configs/flows/maf5_fashion_mnist.yaml`'s MAF (5 MADE layers of one hidden layer
of 1024 units over the D = 784 pixels of a 28 x 28 image), with random weights (sampling costs
the same whatever they are). Two samplers of the same flow, each a `tf.function` traced once
before timing (no XLA):

* `invert`: the library's `generate` (`MAFPrior._layer_generate` -> `MADE.invert`): coordinate
  by coordinate, the first layer updated by one rank-one term, one output column applied;
* `passes`: each layer inverted by `D` passes `z <- u exp(s(z)) + m(z)` of the whole MADE from
  `z = 0` (the library's sampler before, and what TFP's `MaskedAutoregressiveFlow` inverse does).

Both give the same samples (checked up to float32 rounding before timing). Then `--rounds`
alternated rounds for each batch size in `--num`. Prints one JSON line: the median seconds of
each sampler and batch size, the ratio `passes / invert` (median, min, max), and the machine.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench_vae import alternated_rounds, emit, machine, ratio_summary  # noqa: E402
from tfdgm import experiment  # noqa: E402
from tfdgm import random as tfdgm_random  # noqa: E402
from tfdgm.data import dataset_info  # noqa: E402
from tfdgm.testing.bijector_checks import randomize_weights  # noqa: E402


def passes_generate(prior, eps):
    """`g^{-1}(eps)` by `D` fixed-point passes of each layer's whole MADE."""
    z = tf.cast(eps, prior.compute_dtype)
    for k in reversed(range(prior.num_flows)):
        u = z

        def body(z, k=k, u=u):
            m, s = prior.shift_and_log_scale(k, z)
            return (u * tf.exp(s) + m,)

        (z,) = tf.while_loop(lambda z: True, body, (tf.zeros_like(u),),
                             maximum_iterations=prior.latent_dim)
    return z


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 1)[1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--num", default="64,1000", help="comma-separated batch sizes")
    parser.add_argument("--flows", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--out")
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    config = experiment.from_dict({"name": "bench", "data": {"name": "mnist5k"}, "model": {
        "name": "maf", "num_flows": args.flows, "hidden_units": [args.hidden]}})
    model = experiment.build_model(config, dataset_info(config.data))
    prior = model.flow
    prior.build()
    randomize_weights(prior, seed=0, stddev=0.02)
    samplers = {"invert": tf.function(prior.generate, autograph=False),
                "passes": tf.function(lambda eps: passes_generate(prior, eps), autograph=False)}
    sizes = [int(n) for n in args.num.split(",")]
    figures, agreement = {}, {}
    for num in sizes:
        eps = tfdgm_random.stateless_normal([num, prior.latent_dim], [num, 0])
        outputs = {name: sampler(eps).numpy() for name, sampler in samplers.items()}  # traces
        agreement[num] = float(np.max(np.abs(outputs["invert"] - outputs["passes"])))

        def timed(sampler, eps=eps):
            def run():
                start = time.perf_counter()
                sampler(eps).numpy()
                return time.perf_counter() - start
            return run

        times = alternated_rounds({name: timed(s) for name, s in samplers.items()}, args.rounds)
        figures[num] = {
            "seconds_median": {name: float(np.median(t)) for name, t in times.items()},
            "seconds_rounds": {name: [round(v, 4) for v in t] for name, t in times.items()},
            "passes_over_invert": ratio_summary(times, "passes", "invert")}
    emit({"benchmark": "bench_maf_sampling", "num_flows": args.flows,
          "hidden_units": [args.hidden], "dimensions": prior.latent_dim, "rounds": args.rounds,
          "max_abs_difference": agreement, "by_batch_size": figures,
          "machine": machine(load_at_start)}, args.out)


if __name__ == "__main__":
    main()
