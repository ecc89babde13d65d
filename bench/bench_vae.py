"""Benchmark: the library's VAE training epoch vs a bare `tf.function` step of the same network.

    python bench/bench_vae.py [--data-dir ../shared/data] [--epochs 3] [--batch-size 100]

Times the VampPrior paper's standard VAE (gated MLP 300-300, z=40, Bernoulli, Adam 5e-4, batch 100)
on static binarized MNIST (50000 training images; with no `--data-dir` it falls back to the 5000
mnist5k digits, dynamically binarized) two ways, in one process on the same data:

* library: `tfdgm`'s `VAE` trained by `model.fit` on the `tfdgm.data` pipeline with the run's
  callbacks (warm-up, NaN guard, checkpointing off) -- what `make train` does per epoch, without
  validation;
* bare: the same encoder/decoder layers, a hand-written ELBO and `tf.GradientTape` step under
  `tf.function`, looping over in-memory batches.

Prints epoch seconds, examples/second and the ratio library / bare (aim: <= 1.2 on CPU).
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdgm import experiment  # noqa: E402
from tfdgm.data import load_datasets  # noqa: E402
from tfdgm.experiment import build_model  # noqa: E402
from tfdgm.training import callbacks as cb  # noqa: E402


def bare_step_fn(model, optimizer):
    """A training step written directly against the model's layers: no Keras trainer."""
    encoder, decoder = model.encoder, model.decoder
    loc_head, scale_head = model.posterior.loc_head, model.posterior.scale_head
    variables = model.trainable_variables

    @tf.function(jit_compile=False)
    def step(x, seed):
        with tf.GradientTape() as tape:
            h = encoder(x)
            loc, scale = loc_head(h), tf.nn.softplus(scale_head(h)) + 1e-5
            z = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed)
            logits = decoder(z)
            log_px = -tf.reduce_sum(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), [1, 2, 3])
            kl = tf.reduce_sum(0.5 * (loc ** 2 + scale ** 2 - 1.0) - tf.math.log(scale), -1)
            loss = tf.reduce_mean(kl - log_px)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TFDGM_DATA_DIR"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--jit", action="store_true", help="XLA-compile both steps")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    static = bool(args.data_dir) and os.path.exists(os.path.join(args.data_dir,
                                                                 "binarized_mnist.npz"))
    data = ({"name": "static_mnist", "data_dir": args.data_dir} if static
            else {"name": "mnist5k", "binarize": "dynamic"})
    config = experiment.from_dict({
        "name": "bench",
        "data": {**data, "batch_size": args.batch_size},
        "model": {"latent_dim": 40, "encoder": {"name": "gated_mlp", "hidden_units": [300, 300]},
                  "decoder": {"name": "gated_mlp", "hidden_units": [300, 300]}},
        "optimizer": {"name": "adam", "learning_rate": 5e-4},
        "training": {"jit_compile": args.jit},
    })
    datasets = load_datasets(config.data, seed=0)
    images = np.concatenate(list(datasets.train.as_numpy_iterator()))
    steps = len(images) // args.batch_size
    examples = steps * args.batch_size

    model = build_model(config, datasets.info)
    model.compile(optimizer=keras.optimizers.Adam(5e-4), jit_compile=args.jit)
    callbacks = [cb.KLWarmup(0), cb.NonFiniteGuard("-")]
    library = []
    for epoch in range(args.epochs + 1):  # the first epoch traces and warms up
        start = time.perf_counter()
        model.fit(datasets.train, epochs=epoch + 1, initial_epoch=epoch, callbacks=callbacks,
                  verbose=0)
        library.append(time.perf_counter() - start)

    bare_model = build_model(config, datasets.info)
    step = bare_step_fn(bare_model, keras.optimizers.Adam(5e-4))
    batches = [tf.constant(images[i * args.batch_size:(i + 1) * args.batch_size])
               for i in range(steps)]
    bare = []
    for epoch in range(args.epochs + 1):
        start = time.perf_counter()
        for i, x in enumerate(batches):
            loss = step(x, tf.constant([epoch, i], tf.int64))
        float(loss)
        bare.append(time.perf_counter() - start)

    library_s, bare_s = float(np.median(library[1:])), float(np.median(bare[1:]))
    result = {
        "dataset": config.data.name, "train_examples": examples, "batch_size": args.batch_size,
        "epochs_timed": args.epochs, "jit_compile": args.jit,
        "library_epoch_s": library_s, "library_examples_per_s": examples / library_s,
        "bare_epoch_s": bare_s, "bare_examples_per_s": examples / bare_s,
        "ratio_library_over_bare": library_s / bare_s,
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__, "keras": keras.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
