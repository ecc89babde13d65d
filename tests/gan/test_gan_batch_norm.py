"""The generator's step scores its fakes as the discriminator's step does (batch norm in D)."""

import keras
import numpy as np
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.data import dataset_info
from tfdgm.experiment import build_model, from_dict
from tfdgm.models.gan import losses


def test_generator_step_normalizes_fakes_with_the_real_half_under_batch_norm():
    config = from_dict({"name": "bn", "data": {"name": "mnist5k", "batch_size": 16},
                        "model": {"name": "gan", "loss": "non_saturating", "filters": 8,
                                  "latent_dim": 4}})
    assert config.model.uses_discriminator_batch_norm
    keras.utils.set_random_seed(0)
    model = build_model(config, dataset_info(config.data))
    real = tf.constant(np.random.default_rng(0).uniform(size=(16, 28, 28, 1)), tf.float32)
    step = tf.constant(3, tf.int64)
    g_loss = model.generator_terms(real, step, training=True)["g_loss"]
    z = model.latent_noise(16, tfdgm_random.step_seed(model.seed, step, 2))
    fake = model.generator(z, training=True)
    # The discriminator's update normalizes [real; fake] together (discriminator_terms).
    d_fake = model.discriminator(tf.concat([real, fake], 0), training=True)[16:]
    expected = tf.reduce_mean(losses.generator_loss("non_saturating", d_fake))
    np.testing.assert_allclose(g_loss.numpy(), expected.numpy(), rtol=1e-5)
