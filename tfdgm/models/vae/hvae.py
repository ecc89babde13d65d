"""The two-level hierarchical VAE of the VampPrior paper (Tomczak & Welling 2018, sec. 4 and
appendix).

    generative model   p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2)
    inference model    q(z1, z2 | x) = q(z1 | x, z2) q(z2 | x)

with `z1, z2` both `D`-dimensional. The networks follow the paper's MLP HVAE, all gated dense
layers of `hidden_units` (= `H`, 300 in the paper) units:

    q(z2 | x)        encoder(x) -> posterior head                         (the config's encoder
                                                                          and posterior)
    q(z1 | x, z2)    [G(flatten x), G(z2)] -> G -> posterior head         (a second instance of
                                                                          the config's posterior)
    p(z1 | z2)       z2 -> G -> G -> diagonal Gaussian head
    p(x | z1, z2)    [G(z1), G(z2)] -> decoder -> likelihood              (the config's decoder;
                                                                          the paper's is one
                                                                          gated layer, [300])

where `G` is a gated dense layer and `[a, b]` concatenation. The prior `p(z2)` is the config's
prior (standard normal or VampPrior); the VampPrior's components are `q(z2 | u_k)`, i.e. it uses
`encoder` and `posterior` exactly as in the one-level VAE.

The ELBO and the importance weights treat `(z1, z2)` jointly (`z2 ~ q(z2 | x)`, then
`z1 ~ q(z1 | x, z2)`):

    log w = log p(x | z1, z2) + log p(z1 | z2) + log p(z2) - log q(z1 | x, z2) - log q(z2 | x),

so `log_densities` returns the joint `log q` and `log p(z) = log p(z1 | z2) + log p(z2)`, with
the sample `z = [z1, z2]` (`[S, B, 2D]`), and every estimator of the one-level VAE (ELBO, IWAE,
importance-sampled NLL, ELBO surgery on the joint latent) applies unchanged. The KL is the Monte
Carlo estimate `E_q[log q(z1, z2 | x) - log p(z1, z2)]` (no analytic per-dimension KL, hence no
free bits).

The code of an image is `z = [z1, z2]` (width `latent_dim = 2 D`): `encode` returns
`[E[z1 | x, z2 = E[z2 | x]], E[z2 | x]]` and `decode(z)` the mean of `p(x | z1, z2)`.
`generate(eps [B, P + D])` draws `z2` from the prior with the first `P = prior.noise_dim`
coordinates and `z1 = mu(z2) + sigma(z2) * eps[:, P:]` from `p(z1 | z2)`. The latent diagnostics
(active units, per-dimension KL) read `posterior(encoder(x))`, i.e. the top level `z2`.
"""

import keras
import numpy as np
import tensorflow as tf

from tfdgm.models.vae.posteriors import DiagonalGaussianPosterior, PosteriorSample
from tfdgm.models.vae.posteriors import pairwise_log_prob
from tfdgm.errors import ConfigError
from tfdgm.models.vae.model import VAE
from tfdgm.nn.gated import GatedDense
from tfdgm.registry import MODELS, POSTERIORS

_ZERO_SEED = (0, 0)


def _z1_seed(seed):
    """An independent stateless seed for the z1 noise, derived from the z2 seed."""
    return tf.cast(tf.random.experimental.stateless_fold_in(seed, 1), tf.int64)


@MODELS.register("hvae")
@keras.saving.register_keras_serializable("tfdgm")
class HierarchicalVAE(VAE):
    """A VAE with two stochastic levels (see the module docstring).

    Args:
      encoder, posterior: `q(z2 | x)` (encoder features and the posterior head of z2).
      decoder: the top of `p(x | z1, z2)`, applied to `[G(z1), G(z2)]` (`[..., 2H]`).
      prior: `p(z2)`.
      likelihood: `p(x | z1, z2)`'s observation model.
      z1_posterior: the head of `q(z1 | x, z2)`; default: a fresh copy of `posterior`.
      hidden_units: `H`, width of the gated layers; default the encoder's `output_dim` (else 300).
      **kwargs: as for `VAE` (image_shape, objective, num_samples, seed, ...).
    """

    def __init__(self, encoder, decoder, posterior, prior, likelihood, image_shape,
                 z1_posterior=None, hidden_units=None, **kwargs):
        super().__init__(encoder, decoder, posterior, prior, likelihood, image_shape, **kwargs)
        self.level_dim = posterior.latent_dim
        self.latent_dim = 2 * self.level_dim
        if z1_posterior is None:
            z1_posterior = type(posterior).from_config(
                {**posterior.get_config(), "name": "z1_posterior"})
        if z1_posterior.latent_dim != self.level_dim:
            raise ValueError(f"z1_posterior has latent_dim {z1_posterior.latent_dim}, the z2 "
                             f"posterior {self.level_dim}: both levels must be equally wide.")
        self.z1_posterior = z1_posterior
        self.hidden_units = int(hidden_units or getattr(encoder, "output_dim", 300))
        units = self.hidden_units
        self.q_z1_x = GatedDense(units, name="q_z1_x")
        self.q_z1_z2 = GatedDense(units, name="q_z1_z2")
        self.q_z1_joint = GatedDense(units, name="q_z1_joint")
        self.p_z1_hidden = [GatedDense(units, name=f"p_z1_hidden_{i}") for i in range(2)]
        # The conditional prior p(z1 | z2): a diagonal Gaussian whose loc and scale come from
        # features of z2 (the posterior layer's heads and log_prob serve as they are).
        self.p_z1 = DiagonalGaussianPosterior(self.level_dim, name="p_z1")
        self.p_x_z1 = GatedDense(units, name="p_x_z1")
        self.p_x_z2 = GatedDense(units, name="p_x_z2")

    # Networks -----------------------------------------------------------------------------------

    def _x_features(self, x):
        """`G(flatten x)`, `[B, H]`: the x branch of q(z1 | x, z2)."""
        return self.q_z1_x(tf.reshape(x, [-1, int(np.prod(self.image_shape))]))

    def _q_z1_features(self, x_features, z2):
        """Features of q(z1 | x, z2), `[..., H]`, from x features `[..., H]` and `z2 [..., D]`
        whose leading axes broadcast against each other."""
        z2_features = self.q_z1_z2(z2)
        joint = tf.concat([x_features + tf.zeros_like(z2_features),
                           z2_features + tf.zeros_like(x_features)], axis=-1)
        return self.q_z1_joint(joint)

    def _p_z1_features(self, z2):
        h = z2
        for layer in self.p_z1_hidden:
            h = layer(h)
        return h

    def _decoder_params(self, z1, z2):
        """`[..., D]` codes of both levels -> the likelihood's parameters `[..., H, W, C P]`."""
        return self.decoder(tf.concat([self.p_x_z1(z1), self.p_x_z2(z2)], axis=-1))

    def _sample_z1(self, features, seed):
        """`z1 ~ q(z1 | x, z2)` for features `[S, B, H]`: one draw per (sample, example), as
        `(z1 [S, B, D], log q [S, B])`.

        The posterior layer takes `[B', F]` rows; the rows are ordered example-major (`b S + s`),
        so that under `tf.distribute` each replica's rows are its own examples' slice of the
        global batch (see `tfdgm.random.normal`).
        """
        num_samples, batch = tf.shape(features)[0], tf.shape(features)[1]
        rows = tf.reshape(tf.transpose(features, [1, 0, 2]), [-1, self.hidden_units])
        q = self.z1_posterior(rows, num_samples=1, seed=seed)
        z1 = tf.reshape(q.z, [batch, num_samples, self.level_dim])
        log_q = tf.reshape(q.log_q, [batch, num_samples])
        return tf.transpose(z1, [1, 0, 2]), tf.transpose(log_q)

    def _code(self, z2_mean, x_features):
        """`[E[z1 | x, z2 = z2_mean], z2_mean]`, `[B, 2D]`."""
        features = self._q_z1_features(x_features, z2_mean)
        z1_mean = self.z1_posterior(features, num_samples=1,
                                    seed=tf.constant(_ZERO_SEED, tf.int64)).mean
        return tf.concat([z1_mean, z2_mean], axis=-1)

    # Densities ----------------------------------------------------------------------------------

    def log_densities(self, x, num_samples, seed):
        """Samples `z2 ~ q(z2 | x)`, `z1 ~ q(z1 | x, z2)` and evaluates the log-densities.

        Returns:
          `(q, log_px [S, B], log_pz [S, B])` with `q.z = [z1, z2]` `[S, B, 2D]`,
          `q.log_q = log q(z1 | x, z2) + log q(z2 | x)`, `q.kl_per_dim = None` and
          `log_pz = log p(z1 | z2) + log p(z2)`.
        """
        x = self.check_images(x)
        q2 = self.posterior(self.encoder(x), num_samples=num_samples, seed=seed)
        x_features = self._x_features(x)
        z1, log_q1 = self._sample_z1(self._q_z1_features(x_features, q2.z), _z1_seed(seed))
        log_pz1 = self.p_z1.log_prob(z1, self._p_z1_features(q2.z))
        log_pz2 = self.prior.log_prob(q2.z)
        log_px = self.likelihood.log_prob(x, self._decoder_params(z1, q2.z))
        q = PosteriorSample(z=tf.concat([z1, q2.z], axis=-1), log_q=log_q1 + q2.log_q,
                            kl_per_dim=None, mean=self._code(q2.mean, x_features))
        return q, log_px, log_pz1 + log_pz2

    def pairwise_log_q(self, z, x):
        """`log q(z1_n, z2_n | x_m) = log q(z2_n | x_m) + log q(z1_n | x_m, z2_n)` for codes
        `z = [z1, z2]` `[N, 2D]` and images `x [M, H, W, C]`, `[N, M]`.

        The q(z1 | x, z2) network runs on all N M pairs (memory `O(N M H)`).
        """
        dim = self.level_dim
        z1, z2 = z[:, :dim], z[:, dim:]
        log_q2 = pairwise_log_prob(self.posterior, z2, self.encoder(x))                # [N, M]
        features = self._q_z1_features(self._x_features(x)[None], z2[:, None])          # [N, M, H]
        pairs = tf.shape(features)[:2]
        z1_rows = tf.reshape(tf.broadcast_to(z1[:, None, :], tf.concat([pairs, [dim]], 0)),
                             [-1, dim])
        log_q1 = self.z1_posterior.log_prob(z1_rows, tf.reshape(features, [-1, self.hidden_units]))
        return log_q2 + tf.reshape(log_q1, pairs)

    # Deterministic maps -------------------------------------------------------------------------

    def encode(self, x):
        """`x [B, H, W, C] -> z [B, 2D]`: `[E[z1 | x, E[z2 | x]], E[z2 | x]]`."""
        x = self.check_images(x)
        q2 = self.posterior(self.encoder(x), num_samples=1, seed=tf.constant(_ZERO_SEED, tf.int64))
        return self._code(q2.mean, self._x_features(x))

    def decode(self, z):
        """`z = [z1, z2]` `[..., 2D] -> [..., H, W, C]`: the mean of p(x | z1, z2)."""
        dim = self.level_dim
        return self.likelihood.mean(self._decoder_params(z[..., :dim], z[..., dim:]))

    @property
    def noise_dim(self):
        """`P + D`: the prior's noise for z2, then D coordinates for z1."""
        return self.prior.noise_dim + self.level_dim

    def generate(self, eps):
        """`eps [B, P + D] ~ N(0, I) -> x [B, H, W, C]`: `z2 = prior.generate(eps[:, :P])`,
        `z1 = mu(z2) + sigma(z2) * eps[:, P:]`, then the mean of p(x | z1, z2)."""
        width = self.prior.noise_dim
        z2 = self.prior.generate(eps[:, :width])
        loc, scale = self.p_z1.loc_and_scale(self._p_z1_features(z2))
        z1 = loc + scale * eps[:, width:]
        return self.decode(tf.concat([z1, z2], axis=-1))

    def scale_noise(self, eps, temperature):
        """The prior's noise scaled by its `scale_noise`, the z1 noise by `temperature`."""
        width = self.prior.noise_dim
        return tf.concat([self.prior.scale_noise(eps[:, :width], temperature),
                          eps[:, width:] * temperature], axis=-1)

    # Configuration ------------------------------------------------------------------------------

    @classmethod
    def check_config(cls, config, info):
        """The HVAE's constraints on an experiment config; raises `ConfigError`."""
        super().check_config(config, info)
        posterior = POSTERIORS.get(config.model.posterior["name"], "model.posterior")
        if getattr(posterior, "geometry", "euclidean") != "euclidean":
            raise ConfigError(
                f"model.posterior: the hvae's p(z1 | z2) is a Gaussian on R^D, so both levels "
                f"need a Euclidean posterior; '{config.model.posterior['name']}' lives on the "
                f"{posterior.geometry}. Use model.name=vae for it.")
        if config.model.objective.free_bits > 0:
            raise ConfigError("model.objective.free_bits: the hvae's KL is a Monte Carlo "
                              "estimate over (z1, z2) with no per-dimension terms; set "
                              "model.objective.free_bits=0.")

    @classmethod
    def from_experiment(cls, config, info, **kwargs):
        z1_posterior = POSTERIORS.build(config.model.posterior, "model.posterior",
                                        latent_dim=config.model.latent_dim)
        return super().from_experiment(config, info, z1_posterior=z1_posterior, **kwargs)

    def get_config(self):
        return {**super().get_config(),
                "z1_posterior": keras.saving.serialize_keras_object(self.z1_posterior),
                "hidden_units": self.hidden_units}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["z1_posterior"] = keras.saving.deserialize_keras_object(config["z1_posterior"])
        return super().from_config(config)
