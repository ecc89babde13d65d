"""Gaussian variational posteriors q(z | x) built on encoder features.

Every posterior is a Keras layer called as `posterior(h, num_samples, seed)` with encoder features
`h [B, F]`; it returns a `PosteriorSample` holding reparameterized samples `z [S, B, D]` and their
log-density `log q(z | x) [S, B]`. Flow posteriors (`tfdgm.models.vae.flow_posteriors`) and the
hyperspherical ones (`tfdgm.models.vae.spherical`) follow the same contract.
"""

import math
from typing import NamedTuple, Optional

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm import random as tfdgm_random
from tfdgm.errors import ConfigError
from tfdgm.precision import FullPrecision
from tfdgm.registry import POSTERIORS

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class PosteriorSample(NamedTuple):
    """Samples of q(z | x) and what the objectives need from them.

    Attributes:
      z: `[S, B, D]` reparameterized samples.
      log_q: `[S, B]` log q(z | x) at those samples (flows: including the summed log-det).
      kl_per_dim: `[B, D]` analytic KL(q(z_d | x) || N(0, 1)) per dimension where q factorizes
        over dimensions (diagonal Gaussian), else `None`.
      mean: `[B, D]` a deterministic code for x (the mean, pushed through any flow) used by
        `encode` and the active-unit statistic.
      kl: `[B]` the closed-form total KL(q(z | x) || p(z)) against the model's prior, or `None`
        (the default). Posteriors leave it `None`; the VAE fills it from the prior's optional
        hook `prior.analytic_kl(posterior, h)` (e.g. vMF or power spherical against the uniform
        prior on the sphere) and then prefers it to the Monte Carlo KL.
    """
    z: tf.Tensor
    log_q: tf.Tensor
    kl_per_dim: Optional[tf.Tensor]
    mean: tf.Tensor
    kl: Optional[tf.Tensor] = None


class Posterior(FullPrecision, keras.layers.Layer):
    """Base class: `call(h [B, F], num_samples, seed [2]) -> PosteriorSample`.

    A density layer (`tfdgm.precision.FullPrecision`): under a mixed-precision policy its heads
    compute in the low precision and everything from their outputs on (samples, `log_q`, KLs)
    in float32.

    Attributes:
      latent_dim: `D`.
      geometry: `"euclidean"` or `"sphere"`; a prior must live on the same manifold.
    """

    geometry = "euclidean"

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


def positive_scale(raw):
    """`softplus(raw) + 1e-5`: a scale bounded away from zero."""
    return tf.nn.softplus(raw) + 1e-5


def standard_normal_log_prob(eps):
    """`sum_d log N(eps_d; 0, 1)` over the last axis."""
    return -0.5 * tf.reduce_sum(tf.square(eps), -1) - eps.shape[-1] * HALF_LOG_TWO_PI


@POSTERIORS.register("diagonal_gaussian")
@keras.saving.register_keras_serializable("tfdgm")
class DiagonalGaussianPosterior(Posterior):
    """q(z | x) = N(z; mu(x), diag sigma(x)^2) (Kingma & Welling 2014).

    `z = mu + sigma * eps` with `eps ~ N(0, I)`; `log q(z | x) = sum_d log N(eps_d) - log sigma_d`.
    The per-dimension KL to N(0, 1) is `(mu^2 + sigma^2 - 1) / 2 - log sigma`.
    """

    factorized = True

    def __init__(self, latent_dim, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.loc_head = keras.layers.Dense(latent_dim, name="loc", dtype=self.network_policy)
        self.scale_head = keras.layers.Dense(latent_dim, name="scale", dtype=self.network_policy)

    def loc_and_scale(self, h):
        """Returns `mu [B, D]` and `sigma [B, D]`."""
        loc, raw_scale = self.full_precision(self.loc_head(h), self.scale_head(h))
        return loc, positive_scale(raw_scale)

    def log_prob(self, z, h):
        """`log q(z | x)` for any `z [..., B, D]` (used by ELBO surgery)."""
        loc, scale = self.loc_and_scale(h)
        return standard_normal_log_prob((z - loc) / scale) - tf.reduce_sum(tf.math.log(scale), -1)

    def call(self, h, num_samples=1, seed=None):
        loc, scale = self.loc_and_scale(h)
        batch = tf.shape(loc)[0]
        eps = tfdgm_random.normal([num_samples, batch, self.latent_dim], seed, batch_axis=1,
                                  dtype=loc.dtype)
        z = loc + scale * eps
        log_q = standard_normal_log_prob(eps) - tf.reduce_sum(tf.math.log(scale), -1)
        kl_per_dim = 0.5 * (tf.square(loc) + tf.square(scale) - 1.0) - tf.math.log(scale)
        return PosteriorSample(z=z, log_q=log_q, kl_per_dim=kl_per_dim, mean=loc)


@POSTERIORS.register("full_covariance_gaussian")
@keras.saving.register_keras_serializable("tfdgm")
class FullCovarianceGaussianPosterior(Posterior):
    """q(z | x) = N(z; mu(x), L(x) L(x)^T) with a Cholesky factor from the encoder.

    As in Kingma's lecture (and Kingma & Welling 2019, sec. 2.5): `L = L_mask * L' + diag(sigma)`,
    the encoder giving `mu`, `sigma > 0` and the strictly lower-triangular entries of `L'`.
    `z = mu + L eps`; since L is triangular, `log |det L| = sum_d log sigma_d` and
    `log q(z | x) = sum_d log N(eps_d) - log sigma_d`.
    """

    def __init__(self, latent_dim, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.loc_head = keras.layers.Dense(latent_dim, name="loc", dtype=self.network_policy)
        self.scale_head = keras.layers.Dense(latent_dim, name="scale", dtype=self.network_policy)
        self.lower_head = keras.layers.Dense(latent_dim * (latent_dim - 1) // 2, name="lower",
                                             kernel_initializer="zeros",
                                             dtype=self.network_policy)

    def loc_and_cholesky(self, h):
        """Returns `mu [B, D]`, `sigma [B, D]` and the lower-triangular `L [B, D, D]`."""
        loc, raw_scale, lower = self.full_precision(self.loc_head(h), self.scale_head(h),
                                                    self.lower_head(h))
        scale = positive_scale(raw_scale)
        # D(D-1)/2 entries fill a (D-1)x(D-1) lower triangle; padding a zero row on top and a zero
        # column on the right places it strictly below the diagonal of a DxD matrix.
        strictly_lower = tf.pad(tfp.math.fill_triangular(lower), [[0, 0], [1, 0], [0, 1]])
        return loc, scale, tf.linalg.set_diag(strictly_lower, scale)

    def log_prob(self, z, h):
        loc, scale, cholesky = self.loc_and_cholesky(h)
        diff = z - loc
        leading = tf.shape(diff)[:-2]
        chol = tf.broadcast_to(cholesky, tf.concat([leading, tf.shape(cholesky)], 0))
        eps = tf.linalg.triangular_solve(chol, diff[..., None], lower=True)[..., 0]
        return standard_normal_log_prob(eps) - tf.reduce_sum(tf.math.log(scale), -1)

    def call(self, h, num_samples=1, seed=None):
        loc, scale, cholesky = self.loc_and_cholesky(h)
        batch = tf.shape(loc)[0]
        eps = tfdgm_random.normal([num_samples, batch, self.latent_dim], seed, batch_axis=1,
                                  dtype=loc.dtype)
        z = loc + tf.einsum("bij,sbj->sbi", cholesky, eps)
        log_q = standard_normal_log_prob(eps) - tf.reduce_sum(tf.math.log(scale), -1)
        return PosteriorSample(z=z, log_q=log_q, kl_per_dim=None, mean=loc)


# Capabilities of posteriors beyond sampling (VampPrior components, ELBO surgery) ------------

def _density_is(posterior, cls):
    """Whether `posterior`'s density is exactly that of `cls` (a subclass that overrides
    `log_prob`, e.g. a flow built on a Gaussian base, is not)."""
    return isinstance(posterior, cls) and type(posterior).log_prob is cls.log_prob


def has_log_prob(posterior_cls):
    """Whether a posterior class can evaluate `log q(z | x)` at arbitrary `z` (a `log_prob(z, h)`
    method); a class may opt out explicitly with `has_log_prob = False`."""
    return bool(getattr(posterior_cls, "has_log_prob",
                        callable(getattr(posterior_cls, "log_prob", None))))


def diagonal_gaussian_pairwise_log_prob(z, loc, scale):
    """`log N(z_n; loc_m, diag scale_m^2)` for all pairs: `z [N, D]`, `loc, scale [M, D]` ->
    `[N, M]`.

    The quadratic form is expanded, `sum_d (z_d - m_d)^2 / s_d^2 = z^2 . p - 2 z . (m p) + m^2 . p`
    with `p = 1 / s^2`, so it costs two `[N, D] x [D, M]` matrix products and `O(N M)` memory. The
    expansion cancels terms of size `|z|^2 / s^2`, so it is computed in float64 (which also keeps
    GPUs' TF32 matmuls out of it) and cast back.
    """
    dtype = z.dtype
    z64 = tf.cast(z, tf.float64)
    loc64 = tf.cast(loc, tf.float64)
    precision = tf.math.reciprocal(tf.square(tf.cast(scale, tf.float64)))
    quadratic = (tf.matmul(tf.square(z64), precision, transpose_b=True)
                 - 2.0 * tf.matmul(z64, loc64 * precision, transpose_b=True)
                 + tf.reduce_sum(tf.square(loc64) * precision, axis=-1)[None, :])
    quadratic = tf.maximum(quadratic, 0.0)
    log_norm = -tf.reduce_sum(tf.math.log(scale), axis=-1) - loc.shape[-1] * HALF_LOG_TWO_PI
    return tf.cast(-0.5 * quadratic, dtype) + log_norm[None, :]


def pairwise_log_prob(posterior, z, h):
    """`log q(z_n | x_m)` for every pair: codes `z [N, D]`, encoder features `h [M, F]` of the M
    inputs -> `[N, M]`.

    Diagonal Gaussian: `diagonal_gaussian_pairwise_log_prob` (memory `O(N M)`). Any other
    posterior with `log_prob(z, h)`: by broadcasting `z [N, 1, D]` against the M inputs (memory
    `O(N M D)`, `O(N M D^2)` for the full-covariance Gaussian: keep N M moderate).
    """
    if _density_is(posterior, DiagonalGaussianPosterior):
        loc, scale = posterior.loc_and_scale(h)
        return diagonal_gaussian_pairwise_log_prob(z, loc, scale)
    return posterior.log_prob(z[:, None, :], h)


def reparameterize(posterior, h, eps):
    """The sample of `q(z | x)` that standard-normal `eps [B, D]` maps to, `[B, D]`, for features
    `h [B, F]` -- deterministic, no random op. A posterior may provide `reparameterize(h, eps)`;
    the Gaussian posteriors are handled here (`loc + scale * eps`, `loc + L eps`)."""
    if hasattr(posterior, "reparameterize"):
        return posterior.reparameterize(h, eps)
    if _density_is(posterior, FullCovarianceGaussianPosterior):
        loc, _, cholesky = posterior.loc_and_cholesky(h)
        return loc + tf.linalg.matvec(cholesky, eps)
    if _density_is(posterior, DiagonalGaussianPosterior):
        loc, scale = posterior.loc_and_scale(h)
        return loc + scale * eps
    raise ConfigError(
        f"cannot map noise to a sample of posterior '{type(posterior).__name__}' "
        f"(no reparameterize(h, eps)); use diagonal_gaussian or full_covariance_gaussian.")


def can_reparameterize(posterior_cls):
    """Whether `reparameterize` supports instances of `posterior_cls`."""
    return (hasattr(posterior_cls, "reparameterize")
            or any(issubclass(posterior_cls, cls)
                   and getattr(posterior_cls, "log_prob", None) is cls.log_prob
                   for cls in (DiagonalGaussianPosterior, FullCovarianceGaussianPosterior)))
