"""Hyperspherical latent spaces: posteriors on the sphere and the uniform prior (the S-VAE).

The latent code is a unit vector `z in S^{D-1} = {z in R^D : |z| = 1}` (`D = model.latent_dim`,
`D >= 2`; the sphere has `D - 1` degrees of freedom). Davidson et al. (2018) pair a von
Mises-Fisher posterior with the uniform prior,

```none
q(z | x) = vMF(z; mu(x), kappa(x)) = C_D(kappa) exp(kappa mu^T z)
p(z)     = U(S^{D-1}) = 1 / |S^{D-1}|,          |S^{D-1}| = 2 pi^{D/2} / Gamma(D/2)
KL(q || p) = kappa A_D(kappa) + log C_D(kappa) + log |S^{D-1}|,  A_D = I_{D/2} / I_{D/2-1}
```

and De Cao & Aziz (2020) replace the vMF by the power spherical distribution,

```none
q(z | x) = PS(z; mu, kappa) = (1 + mu^T z)^kappa / N_D(kappa),
N_D(kappa) = 2^{alpha + beta} pi^beta Gamma(alpha) / Gamma(alpha + beta),
alpha = (D - 1) / 2 + kappa,  beta = (D - 1) / 2
KL(q || p) = log |S^{D-1}| - H[q],
H[q] = log N_D(kappa) - kappa (log 2 + psi(alpha) - psi(alpha + beta))
```

whose sampler needs no rejection step (`mu^T z = 2 t - 1` with `t ~ Beta(alpha, beta)`) and whose
normalizer needs no Bessel function.

Both posteriors have the same heads on the encoder features `h [B, F]` (as in the S-VAE code):

```none
mu    = l2_normalize(Dense(D)(h))          [B, D]   the mean direction (the code `encode` returns)
kappa = softplus(Dense(1)(h)) + 1          [B]      the concentration, >= 1
```

and return `PosteriorSample(z [S, B, D], log_q [S, B], kl_per_dim=None, mean=mu)`. Samples come
from `tfdgm.distributions.VonMisesFisher` (Wood's rejection sampler, implicit reparameterization
gradients in every dimension) or TFP's `tfd.PowerSpherical` (reparameterized through its Beta
draw). Neither can draw the noise of the global batch and slice it per replica, so the seed gets the
replica id folded in (`tfdgm.random.replica_seed`): replicas draw different samples, though one
device and N replicas no longer draw identical ones.

The closed-form KL: `HypersphericalUniformPrior.analytic_kl(posterior, h)` returns
`tfd.kl_divergence(posterior.distribution(h), SphericalUniform(D))` `[B]` whenever a KL is
registered for the pair (vMF: `tfdgm.distributions`, power spherical: TFP), else `None`; the VAE
stores it in `PosteriorSample.kl` and uses it instead of the Monte Carlo estimate
`E_q[log q - log p]` (same expectation, no sampling variance). The hook is generic: any prior with
`analytic_kl` and any posterior with `distribution(h)` take part.

#### References

[1] Tim R. Davidson, Luca Falorsi, Nicola De Cao, Thomas Kipf, Jakub M. Tomczak. Hyperspherical
    Variational Auto-Encoders. UAI 2018. https://arxiv.org/abs/1804.00891
[2] Nicola De Cao, Wilker Aziz. The Power Spherical distribution. ICML 2020 workshop (INNF+).
    https://arxiv.org/abs/2006.04437
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm import random as tfdgm_random
from tfdgm.models.vae.posteriors import Posterior, PosteriorSample
from tfdgm.models.vae.priors import Prior
from tfdgm.distributions import bessel
from tfdgm.distributions.von_mises_fisher import VonMisesFisher
from tfdgm.errors import ConfigError
from tfdgm.registry import POSTERIORS, PRIORS

tfd = tfp.distributions

__all__ = ["HypersphericalUniformPrior", "PowerSphericalPosterior", "SphericalPosterior",
           "VonMisesFisherPosterior", "sampler_seed"]


def _check_sphere_dimension(latent_dim, what):
    if latent_dim < 2:
        raise ConfigError(f"model.latent_dim must be >= 2 for {what} (the sphere S^(D-1) lives "
                          f"in R^D), got {latent_dim}.")


def sampler_seed(seed):
    """An int32 `[2]` stateless seed for TFP samplers, from a `[2]` int32/int64 seed (or `None`:
    `[0, 0]`), with this replica's id folded in (`tfdgm.random.replica_seed`).

    The int64 step seeds of `tfdgm.random.step_seed` are hashed to int32 (casting would wrap).
    """
    seed = tf.constant([0, 0], tf.int64) if seed is None else tf.convert_to_tensor(seed)
    seed = tfdgm_random.replica_seed(seed)
    return tf.random.stateless_uniform([2], seed=seed, minval=None, maxval=None, dtype=tf.int32)


class SphericalPosterior(Posterior):
    """Base class of posteriors on `S^{D-1}`: `mu = l2_normalize(Dense(D)(h))`,
    `kappa = softplus(Dense(1)(h)) + 1` (module docstring); subclasses name the distribution.

    `call(h [B, F], num_samples S, seed [2]) -> PosteriorSample(z [S, B, D] unit vectors,
    log_q [S, B], kl_per_dim=None, mean=mu [B, D])`; `log_prob(z [..., B, D], h) -> [..., B]` at
    any unit `z` (ELBO surgery); `distribution(h)` the TFP distribution with batch shape `[B]`,
    built afresh on every call (never stored on the layer).
    """

    geometry = "sphere"
    factorized = False
    distribution_name = "a spherical posterior"

    def __init__(self, latent_dim, **kwargs):
        _check_sphere_dimension(latent_dim, self.distribution_name)
        super().__init__(latent_dim, **kwargs)
        self.direction_head = keras.layers.Dense(latent_dim, name="direction",
                                                 dtype=self.network_policy)
        self.concentration_head = keras.layers.Dense(1, name="concentration",
                                                     dtype=self.network_policy)

    def direction_and_concentration(self, h):
        """Returns `mu [B, D]` (unit vectors) and `kappa [B]` (>= 1), in the layer's full
        precision (float32 under a mixed policy: the Bessel functions of the vMF need it)."""
        direction, concentration = self.full_precision(self.direction_head(h),
                                                       self.concentration_head(h))
        mean_direction = tf.math.l2_normalize(direction, axis=-1)
        concentration = tf.nn.softplus(concentration)[..., 0] + 1.0
        return mean_direction, concentration

    def make_distribution(self, mean_direction, concentration):
        """The distribution of mean direction `[B, D]` and concentration `[B]`."""
        raise NotImplementedError

    def distribution(self, h):
        """`q(z | x)` as a TFP distribution, batch shape `[B]`, event shape `[D]`."""
        return self.make_distribution(*self.direction_and_concentration(h))

    def log_prob(self, z, h):
        """`log q(z | x)` at unit vectors `z [..., B, D]` (or `[N, 1, D]` against `B` inputs)."""
        return self.distribution(h).log_prob(z)

    def call(self, h, num_samples=1, seed=None):
        mean_direction, concentration = self.direction_and_concentration(h)
        q = self.make_distribution(mean_direction, concentration)
        z = q.sample(num_samples, seed=sampler_seed(seed))
        return PosteriorSample(z=z, log_q=q.log_prob(z), kl_per_dim=None, mean=mean_direction)


@POSTERIORS.register("von_mises_fisher")
@keras.saving.register_keras_serializable("tfdgm")
class VonMisesFisherPosterior(SphericalPosterior):
    """q(z | x) = vMF(z; mu(x), kappa(x)) on `S^{D-1}` (Davidson et al. 2018).

    `log q(z | x) = kappa mu^T z + log C_D(kappa)`; samples by Wood's (1994) rejection scheme and a
    Householder reflection, with implicit reparameterization gradients for `kappa` (see
    `tfdgm.distributions.von_mises_fisher`). Closed-form KL to the uniform prior (module
    docstring). The rejection loop is a `tf.while_loop` (graph-safe, stateless seeds).
    """

    distribution_name = "the von_mises_fisher posterior"

    def make_distribution(self, mean_direction, concentration):
        return VonMisesFisher(mean_direction, concentration)


@POSTERIORS.register("power_spherical")
@keras.saving.register_keras_serializable("tfdgm")
class PowerSphericalPosterior(SphericalPosterior):
    """q(z | x) = PowerSpherical(z; mu(x), kappa(x)) on `S^{D-1}` (De Cao & Aziz 2020).

    `log q(z | x) = kappa log(1 + mu^T z) - log N_D(kappa)`; `mu^T z = 2 t - 1` with
    `t ~ Beta((D - 1)/2 + kappa, (D - 1)/2)` (TFP's `tfd.PowerSpherical`, reparameterized through
    the Beta draw's implicit gradient), then a Householder reflection. No rejection and no Bessel
    functions; the KL to the uniform prior is closed-form (registered in TFP). TFP's Beta sampler
    takes an XLA-compatible path under XLA, so `training.jit_compile: auto` may compile it.
    """

    distribution_name = "the power_spherical posterior"

    def make_distribution(self, mean_direction, concentration):
        return tfd.PowerSpherical(mean_direction, concentration)


@PRIORS.register("hyperspherical_uniform")
@keras.saving.register_keras_serializable("tfdgm")
class HypersphericalUniformPrior(Prior):
    """p(z) = U(S^{D-1}), the uniform distribution on the unit sphere in `R^D`.

    * `log_prob(z [..., D]) = -log |S^{D-1}|`, `[...]` (a constant; `z` is assumed on the sphere);
    * `generate(eps [B, D]) = eps / |eps|`: a standard normal vector's direction is exactly
      uniform on the sphere (the normal density depends on `|eps|` only), so `generate` maps the
      exported signature's Gaussian noise to prior samples deterministically;
    * `analytic_kl(posterior, h)`: the closed-form `KL(q(z | x) || p(z))` `[B]` for posteriors
      whose `distribution(h)` has a KL to `tfd.SphericalUniform` registered, else `None`.
    """

    geometry = "sphere"
    is_standard_normal = False

    def __init__(self, latent_dim, **kwargs):
        _check_sphere_dimension(latent_dim, "the hyperspherical_uniform prior")
        super().__init__(latent_dim, **kwargs)

    def scale_noise(self, eps, temperature):
        """The uniform distribution on the sphere has no temperature: only 1 is accepted."""
        if temperature != 1:
            raise ConfigError(f"temperature {temperature}: the uniform prior on the sphere has "
                              f"no temperature (every direction is equally likely; scaling the "
                              f"noise changes nothing); sample with temperature 1.")
        return eps

    def log_surface_area(self, dtype=tf.float32):
        """`log |S^{D-1}| = log 2 + (D/2) log pi - lgamma(D/2)`, a scalar."""
        return bessel.log_sphere_surface_area(self.latent_dim, dtype)

    def log_prob(self, z):
        z = tf.convert_to_tensor(z)
        return tf.zeros_like(z[..., 0]) - self.log_surface_area(z.dtype)

    def generate(self, eps):
        return tf.math.l2_normalize(eps, axis=-1)

    def distribution(self, dtype=tf.float32):
        """`tfd.SphericalUniform(D)` (built afresh on every call)."""
        return tfd.SphericalUniform(dimension=self.latent_dim, dtype=dtype)

    def analytic_kl(self, posterior, h):
        """`KL(q(z | x) || U(S^{D-1}))` `[B]` in closed form, or `None` where there is none.

        Args:
          posterior: the model's posterior; takes part if it has `distribution(h)`.
          h: `[B, F]` encoder features.
        """
        make_q = getattr(posterior, "distribution", None)
        if not callable(make_q):
            return None
        q = make_q(h)
        try:
            return tfd.kl_divergence(q, self.distribution(q.dtype))
        except NotImplementedError:
            return None
