"""RBM benchmark: tfdgm's PCD against scikit-learn's BernoulliRBM, and AIS accuracy.

1. Speed and quality side by side: both train an RBM by persistent CD (one Gibbs sweep, as many
   chains as the batch, plain SGD: sklearn has no momentum or weight decay) with the same hidden
   units, batch size, learning rate and epochs on mnist5k binarized by threshold (one fixed
   binarization for both). Reported: seconds per epoch (ours without the first, compiling,
   epoch) and the test log-likelihood, with sklearn's trained weights loaded into our RBM so
   one AIS run (same chains, betas and base rate) scores both.
2. AIS against exact enumeration for small RBMs with random, non-initial parameters.
3. The standard error of log Z against the number of betas and chains for the 500-unit model.

    .venv/bin/python bench/bench_rbm.py [--hidden 500] [--epochs 5] [--betas 15000]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdgm.config import DataConfig  # noqa: E402
from tfdgm.data import load_images  # noqa: E402
from tfdgm.models.ebm import ais  # noqa: E402
from tfdgm.models.ebm.rbm import RBM  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def test_log_likelihood(model, test, base_rate, betas, chains, seed=1):
    result = ais.ais_log_partition(model.rbm.kernel, model.rbm.visible_bias,
                                   model.rbm.hidden_bias, base_rate, betas, chains, seed=seed)
    mean_log_f = float(tf.reduce_mean(-model.rbm.free_energy(tf.constant(test))))
    return mean_log_f - result.log_z, result


def make_rbm(hidden, seed=0):
    return RBM((28, 28, 1), hidden_units=hidden, persistent=True, num_chains=100, seed=seed)


def compare_with_sklearn(args, train, test):
    from sklearn.neural_network import BernoulliRBM

    base_rate = ais.base_rate_visible_bias(train)
    betas = ais.beta_schedule(num_betas=args.betas)
    print(f"== PCD-1, {args.hidden} hidden units, batch {args.batch}, lr {args.lr}, "
          f"{args.epochs} epochs, {len(train)} training digits (threshold binarization)")

    theirs = BernoulliRBM(n_components=args.hidden, learning_rate=args.lr,
                          batch_size=args.batch, n_iter=args.epochs, random_state=0)
    start = time.perf_counter()
    theirs.fit(train)
    sklearn_epoch = (time.perf_counter() - start) / args.epochs

    ours = make_rbm(args.hidden)
    ours.build()
    ours.compile_for_training({"model": keras.optimizers.SGD(args.lr)}, jit_compile=args.jit)
    ours.initialize_from_data(train)
    data = (tf.data.Dataset.from_tensor_slices(train.reshape(-1, 28, 28, 1))
            .shuffle(len(train), seed=0).batch(args.batch, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))
    timer = EpochTimer()
    ours.fit(data, epochs=args.epochs, verbose=0, callbacks=[timer])
    ours_epoch = float(np.mean(timer.seconds[1:] if len(timer.seconds) > 1 else timer.seconds))
    print(f"seconds per epoch: tfdgm {ours_epoch:.3f} (first, compiling: "
          f"{timer.seconds[0]:.3f}), sklearn {sklearn_epoch:.3f}, speed-up "
          f"{sklearn_epoch / ours_epoch:.2f}x")

    loaded = make_rbm(args.hidden)
    loaded.build()
    loaded.rbm.kernel.assign(theirs.components_.T.astype(np.float32))
    loaded.rbm.visible_bias.assign(theirs.intercept_visible_.astype(np.float32))
    loaded.rbm.hidden_bias.assign(theirs.intercept_hidden_.astype(np.float32))
    for name, model in (("tfdgm", ours), ("sklearn", loaded)):
        start = time.perf_counter()
        ll, result = test_log_likelihood(model, test, base_rate, betas, args.chains)
        print(f"{name:8s} test log p(v) = {ll:.2f} nats (log Z = {result.log_z:.2f} +- "
              f"{result.std_error:.3f}, 3-sigma [{result.log_z_lower:.2f}, "
              f"{result.log_z_upper:.2f}]; AIS {len(betas) - 1} betas x {args.chains} chains, "
              f"{time.perf_counter() - start:.1f} s)")
    return ours, base_rate


def ais_versus_enumeration(args):
    print("== AIS vs exact log Z (random RBMs, W ~ N(0, 0.5^2) * scale, b, c ~ N(0, 0.5^2))")
    rng = np.random.default_rng(0)
    betas = ais.beta_schedule(num_betas=args.small_betas)
    for num_visible, num_hidden, scale in ((20, 10, 1.0), (20, 10, 2.0), (784, 15, 0.5),
                                           (784, 20, 0.5)):
        w = rng.normal(0, 0.5 * scale, (num_visible, num_hidden))
        b, c = rng.normal(-1, 0.5, num_visible), rng.normal(0, 0.5, num_hidden)
        exact = ais.exact_log_partition(w, b, c)
        data = (rng.uniform(size=(500, num_visible)) < 1 / (1 + np.exp(-b))).astype(float)
        result = ais.ais_log_partition(w.astype(np.float32), b.astype(np.float32),
                                       c.astype(np.float32), ais.base_rate_visible_bias(data),
                                       betas, args.chains, seed=2)
        inside = result.log_z_lower <= exact <= result.log_z_upper
        print(f"{num_visible:4d} x {num_hidden:2d} (scale {scale}): exact {exact:9.3f}, AIS "
              f"{result.log_z:9.3f} +- {result.std_error:.3f}, error {result.log_z - exact:+.3f}"
              f" ({(result.log_z - exact) / max(result.std_error, 1e-12):+.1f} se), within the "
              f"3-sigma bounds: {inside}")


def standard_error_grid(args, model, base_rate):
    print(f"== log Z standard error of the {args.hidden}-unit model vs betas and chains")
    for num_betas in args.grid_betas:
        for chains in args.grid_chains:
            start = time.perf_counter()
            result = ais.ais_log_partition(model.rbm.kernel, model.rbm.visible_bias,
                                           model.rbm.hidden_bias, base_rate,
                                           ais.beta_schedule(num_betas=num_betas), chains,
                                           seed=3)
            print(f"betas {num_betas:6d} chains {chains:4d}: log Z {result.log_z:9.3f} +- "
                  f"{result.std_error:.3f} ({time.perf_counter() - start:.1f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--betas", type=int, default=15000)
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--small-betas", type=int, default=3000)
    parser.add_argument("--grid-betas", type=int, nargs="*", default=[1000, 4000])
    parser.add_argument("--grid-chains", type=int, nargs="*", default=[25, 100])
    parser.add_argument("--jit", action="store_true", help="XLA-compile our train step")
    args = parser.parse_args()

    config = DataConfig(name="mnist5k", binarize="threshold")
    train = load_images(config, "train").reshape(-1, 784)
    test = load_images(config, "test").reshape(-1, 784)
    model, base_rate = compare_with_sklearn(args, train, test)
    ais_versus_enumeration(args)
    standard_error_grid(args, model, base_rate)


if __name__ == "__main__":
    main()
