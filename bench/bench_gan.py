"""The library's GAN training step vs a bare `tf.function` step of the same networks and losses.

Both sides train the same architectures (the `dcgan` networks of `tfdgm.models.gan.networks`)
with the same optimizers on the same batches: the library through `model.fit` (its
`train_step`: stateless replica-aware noise, metric trackers, loss scaling hooks), the bare side
through a hand-written `@tf.function` over the same `tf.data` pipeline (stateful
`tf.random.normal`, no metrics). Rounds alternate library / bare; the figure is the median time
per training step (one generator update and its `n_critic` discriminator updates) and the ratio
library / bare (goal: at most 1.1).

    python bench/bench_gan.py [--rounds 7] [--steps 20] [--filters 32] [--batch 64]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdgm.data import dataset_info  # noqa: E402
from tfdgm.experiment import build_model, from_dict  # noqa: E402
from tfdgm.models.gan import losses  # noqa: E402
from tfdgm.models.gan.model import GAN  # noqa: E402
from tfdgm.training.train import make_optimizers  # noqa: E402


def library_model(loss, n_critic, filters, minibatch):
    config = from_dict({"name": "bench", "data": {"name": "mnist5k",
                                                  "batch_size": n_critic * minibatch},
                        "model": {"name": "gan", "loss": loss, "n_critic": n_critic,
                                  "filters": filters, "latent_dim": 100}})
    keras.utils.set_random_seed(0)
    model = build_model(config, dataset_info(config.data))
    model.compile_for_training(make_optimizers(model, config.optimizer))
    return model, config


def bare_step_fn(config, info, loss, n_critic, penalty_weight):
    """A minimal `tf.function` GAN step on fresh networks of the same architecture."""
    keras.utils.set_random_seed(0)
    nets = GAN.networks(config.model, info)
    generator, discriminator = nets["generator"], nets["discriminator"]
    generator.build()
    discriminator.build()
    optimizers = make_optimizers(GAN, config.optimizer)
    g_opt, d_opt = optimizers["generator"], optimizers["discriminator"]
    g_opt.build(generator.trainable_variables)
    d_opt.build(discriminator.trainable_variables)
    latent = config.model.latent_dim

    @tf.function
    def step(x):
        for i in range(n_critic):
            real = x[i::n_critic]
            m = tf.shape(real)[0]
            fake = generator(tf.random.normal([m, latent]), training=True)
            with tf.GradientTape() as tape:
                scores = discriminator(tf.concat([real, fake], 0), training=True)
                d_loss = tf.reduce_mean(losses.discriminator_loss(loss, scores[:m], scores[m:]))
                if loss == "wgan_gp":
                    eps = tf.random.uniform([m])
                    d_loss += penalty_weight * tf.reduce_mean(losses.gradient_penalty(
                        lambda t: discriminator(t, training=False), real, fake, eps))
            variables = discriminator.trainable_variables
            d_opt.apply(tape.gradient(d_loss, variables), variables)
        with tf.GradientTape() as tape:
            fake = generator(tf.random.normal([m, latent]), training=True)
            g_loss = tf.reduce_mean(losses.generator_loss(
                loss, discriminator(fake, training=True)))
        variables = generator.trainable_variables
        g_opt.apply(tape.gradient(g_loss, variables), variables)
        return d_loss, g_loss

    return step


def benchmark(loss, n_critic, rounds, steps, filters, minibatch):
    batch = n_critic * minibatch
    x = np.random.default_rng(0).uniform(size=(steps * batch, 28, 28, 1)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True).cache()
    model, config = library_model(loss, n_critic, filters, minibatch)
    step = bare_step_fn(config, dataset_info(config.data), loss, n_critic,
                        config.model.gradient_penalty)

    def run_library():
        start = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        return (time.perf_counter() - start) / steps

    def run_bare():
        start = time.perf_counter()
        for batch_x in data:
            result = step(batch_x)
        float(result[0])
        return (time.perf_counter() - start) / steps

    run_library(), run_bare()  # trace and warm up
    library, bare = [], []
    for _ in range(rounds):
        library.append(run_library())
        bare.append(run_bare())
    lib, ref = float(np.median(library)), float(np.median(bare))
    print(f"{loss:15s} n_critic={n_critic} batch={batch:4d} filters={filters}: "
          f"library {1e3 * lib:7.1f} ms/step, bare {1e3 * ref:7.1f} ms/step, "
          f"ratio {lib / ref:.3f}", flush=True)
    return lib, ref


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64, help="examples per critic update")
    parser.add_argument("--losses", default="non_saturating:1,wgan_gp:5")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices "
          f"{[d.name for d in tf.config.list_logical_devices()]}")
    for entry in args.losses.split(","):
        loss, n_critic = entry.split(":")
        benchmark(loss, int(n_critic), args.rounds, args.steps, args.filters, args.batch)


if __name__ == "__main__":
    main()
