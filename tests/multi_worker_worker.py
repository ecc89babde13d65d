"""One worker of the multi-worker test (`tests/test_distribute.py`); a script, not a test module.

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:P1", "127.0.0.1:P2"]},
                "task": {"type": "worker", "index": I}}' \
        python tests/multi_worker_worker.py INITIAL_WEIGHTS.npz OUTPUT.npz

creates `tf.distribute.MultiWorkerMirroredStrategy` before any other TensorFlow op, builds the
small test VAE in its scope, loads the initial weights, trains it with
`tfdgm.training.loop.custom_fit` on the shared synthetic data (global batches of
`BATCH_SIZE`, each worker training on its half) and writes the final weights (`w0`, `w1`, ...)
and the epoch logs (`logs_<key>`) to OUTPUT.npz.

The test module imports the builders below (`build_vae`, `binary_images`, `make_dataset`), so
the workers and the in-process reference runs train the same model on the same data.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

IMAGE_SHAPE = (28, 28, 1)
LATENT_DIM = 8
HIDDEN_UNITS = [64]
BATCH_SIZE = 32
TRAIN_EXAMPLES = 4 * BATCH_SIZE
VALIDATION_EXAMPLES = 2 * BATCH_SIZE
EPOCHS = 2
LEARNING_RATE = 1e-3


def binary_images(num_examples, seed):
    """`[N, 28, 28, 1]` float32 random binary images (numpy, reproducible from `seed`)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.random((num_examples,) + IMAGE_SHAPE) < 0.3).astype("float32")


def make_dataset(images, batch_size=BATCH_SIZE):
    """Global batches of `images` in order (no shuffling); multi-worker input is split by data."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size).with_options(options)


def build_vae(posterior="diagonal_gaussian", seed=0):
    """The small test VAE: MLP encoder / decoder [64], latent 8, Bernoulli likelihood.

    Call inside the strategy's scope; the model is built (all weights exist)."""
    import tfdgm.models  # noqa: F401  (registers the families and components)
    from tfdgm.models.vae.model import VAE
    from tfdgm.registry import DECODERS, ENCODERS, LIKELIHOODS, POSTERIORS, PRIORS

    likelihood = LIKELIHOODS.build({"name": "bernoulli"}, "likelihood")
    encoder = ENCODERS.build({"name": "mlp", "hidden_units": HIDDEN_UNITS}, "encoder",
                             event_shape=IMAGE_SHAPE)
    decoder = DECODERS.build({"name": "mlp", "hidden_units": HIDDEN_UNITS}, "decoder",
                             event_shape=IMAGE_SHAPE,
                             params_per_pixel=likelihood.params_per_pixel)
    model = VAE(encoder=encoder, decoder=decoder,
                posterior=POSTERIORS.build({"name": posterior}, "posterior",
                                           latent_dim=LATENT_DIM),
                prior=PRIORS.build({"name": "standard_normal"}, "prior", latent_dim=LATENT_DIM),
                likelihood=likelihood, image_shape=IMAGE_SHAPE, seed=seed)
    model.build()
    return model


def main(initial_path, output_path):
    import tensorflow as tf

    # First TensorFlow call of the process: the strategy sets up the cluster from TF_CONFIG.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    import keras
    import numpy as np

    from tfdgm.training.loop import custom_fit

    with strategy.scope():
        model = build_vae()
        initial = np.load(initial_path)
        model.set_weights([initial[f"w{i}"] for i in range(len(initial.files))])
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    history = custom_fit(model, strategy, make_dataset(binary_images(TRAIN_EXAMPLES, 1)),
                         make_dataset(binary_images(VALIDATION_EXAMPLES, 2)), epochs=EPOCHS,
                         initial_epoch=0, steps_per_epoch=None, callbacks=[], verbose=0)
    logs = {f"logs_{key}": np.asarray(values) for key, values in history.history.items()}
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(output_path, steps=int(model.optimizer.iterations.numpy()), **weights, **logs)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} INITIAL_WEIGHTS.npz OUTPUT.npz")
    main(sys.argv[1], sys.argv[2])
    # The results are on disk: skip the interpreter's teardown of the cluster's TensorFlow
    # runtime, which takes longer than the training here (~15 s).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
