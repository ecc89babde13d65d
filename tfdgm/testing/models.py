"""Small real models and data for tests (no downloads)."""

import keras
import numpy as np

from tfdgm import models  # noqa: F401  (registers every family and component)
from tfdgm.models.vae.model import VAE
from tfdgm.registry import DECODERS, ENCODERS, LIKELIHOODS, POSTERIORS, PRIORS


def small_vae(posterior="diagonal_gaussian", likelihood="bernoulli", encoder="mlp",
              decoder="mlp", prior="standard_normal", latent_dim=4, image_shape=(28, 28, 1),
              hidden_units=(32,), objective="elbo", num_samples=1, free_bits=0.0, seed=0,
              posterior_options=None, prior_options=None):
    """A built VAE with small networks; components given by their registered names."""
    def network_spec(name):
        return {"name": name, "hidden_units": list(hidden_units)} if "mlp" in name else {"name": name}

    likelihood_layer = LIKELIHOODS.build({"name": likelihood}, "likelihood")
    model = VAE(
        encoder=ENCODERS.build(network_spec(encoder), "encoder", event_shape=image_shape),
        decoder=DECODERS.build(network_spec(decoder), "decoder", event_shape=image_shape,
                               params_per_pixel=likelihood_layer.params_per_pixel),
        posterior=POSTERIORS.build({"name": posterior, **(posterior_options or {})}, "posterior",
                                   latent_dim=latent_dim),
        prior=PRIORS.build({"name": prior, **(prior_options or {})}, "prior",
                           latent_dim=latent_dim),
        likelihood=likelihood_layer, image_shape=image_shape, objective=objective,
        num_samples=num_samples, free_bits=free_bits, seed=seed)
    model.build()
    return model


def random_images(n, image_shape=(28, 28, 1), kind="binary", seed=0):
    """`[n, H, W, C]` float32 images: binary {0, 1} or grey levels k / 255."""
    rng = np.random.default_rng(seed)
    if kind == "binary":
        return (rng.random((n,) + tuple(image_shape)) < 0.3).astype(np.float32)
    return (rng.integers(0, 256, (n,) + tuple(image_shape)) / 255.0).astype(np.float32)


def train_briefly(model, images, steps=20, learning_rate=1e-3, batch_size=32):
    """A few Adam steps so the weights are non-trivial."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    model.fit(images, batch_size=batch_size, epochs=1, steps_per_epoch=steps, verbose=0)
    return model
