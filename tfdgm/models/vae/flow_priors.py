"""Flow priors p(z): a learned normalizing flow over the latent space, trained with the VAE.

A flow prior is a standard normal pushed through an invertible map. We write `g` for the
*normalizing* direction, `g: z -> u` (the direction a density needs), so

```none
log p(z) = log N(g(z); 0, I) + log|det dg/dz|          (density: one pass of g)
z = g^{-1}(eps),  eps ~ N(0, I)                          (sampling / `generate`)
```

with `g = g_K o ... o g_1` a stack of `K` layers. Two layer types are registered:

* `maf` (Papamakarios et al., 2017): `g_k` is an affine autoregressive map,
  `u_i = (z_i - m_i(z_{<i})) exp(-s_i(z_{<i}))` with `(m, s)` from a MADE, so `g` (the density)
  takes one MADE pass per layer and `g^{-1}` (sampling) takes `D` sequential passes per layer.
  The ordering is reversed from one layer to the next.
* `realnvp` (Dinh et al., 2017): `g_k` is an affine coupling layer; half of `z` passes
  unchanged and conditions the shift and scale of the other half, so both directions take one
  pass. The halves alternate from one layer to the next.

Why MAF and not IAF for a prior (lecture 7, after Chen et al., 2017): the ELBO evaluates
`log p(z)` at the posterior's samples in every training step, and MAF evaluates its density in
one pass, while an IAF's density at an external point needs `D` sequential passes. MAF pays the
`D` passes at sampling time instead, which a VAE needs only to generate. An IAF *posterior* and
a MAF *prior* cost the same per step; by the KL duality

```none
KL(q(z | x) || p_flow(z)) = KL(g#q || N(0, I)),       (g#q: the density of u = g(z), z ~ q)
```

per sample `log q(z) - log p_flow(z) = log [q(z) / |det dg/dz|] - log N(g(z))`, a flow prior is
a flow posterior `g#q` measured against `N(0, I)` (`tests/test_flow_priors.py` checks it
numerically).

Weights: the conditioners (`MADE`, `CouplingNetwork`) are Keras layers held as attributes, so
Keras tracks and trains them. The TFP objects of `bijector()` and `distribution()` are built
afresh on every call and never stored (see `docs/ARCHITECTURE.md`); the training path
(`log_prob`, `generate`) evaluates the same maps directly with tensors, in one conditioner pass
per layer for the density (TFP's `MaskedAutoregressiveFlow` would run the MADE twice: once for
the inverse and once for its log-det). The tests check the two against each other.

Stability: each layer's log-scale is soft-clamped, `s = c tanh(s_raw / c)` with
`c = log_scale_bound` (3 by default, so one layer scales by at most `e^3`), and the
conditioners' output layers start near zero, so the prior starts at `N(0, I)`. No batch
normalization (its statistics would follow the posterior's samples of the batch).

#### References

[1]: George Papamakarios, Theo Pavlakou and Iain Murray. Masked Autoregressive Flow for Density
     Estimation. In _Neural Information Processing Systems_, 2017.
     https://arxiv.org/abs/1705.07057

[2]: Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP. In
     _International Conference on Learning Representations_, 2017.
     https://arxiv.org/abs/1605.08803

[3]: Xi Chen, Diederik P. Kingma, Tim Salimans, Yan Duan, Prafulla Dhariwal, John Schulman, Ilya
     Sutskever and Pieter Abbeel. Variational Lossy Autoencoder. In _International Conference on
     Learning Representations_, 2017. https://arxiv.org/abs/1611.02731
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm.errors import ConfigError
from tfdgm.models.vae.posteriors import standard_normal_log_prob
from tfdgm.models.vae.priors import Prior
from tfdgm.nn.coupling import CouplingNetwork
from tfdgm.nn.made import MADE
from tfdgm.registry import PRIORS

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["FlowPrior", "MAFPrior", "RealNVPPrior"]


class FlowPrior(Prior):
    """Base class: `p(z) = N(g(z); 0, I) |det dg/dz|` with `g = g_K o ... o g_1`.

    Subclasses own `K` conditioner layers and implement one layer in both directions:
    `_layer_normalize(k, z) -> (u, log|det dg_k/dz|)`, `_layer_generate(k, u) -> g_k^{-1}(u)`,
    and `_layer_bijector(k)`, the TFP bijector whose forward is `g_k^{-1}` (TFP's convention:
    forward is the sampling direction).

    Methods (shapes for `z`, `u`, `eps` `[..., D]`, e.g. `[S, B, D]`):
      normalize(z) -> (u, log_det): `u = g(z)` `[..., D]` and `log|det dg/dz|` `[...]`.
      log_prob(z) -> `[...]`: `log N(g(z)) + log|det dg/dz|`.
      generate(eps [B, D]) -> z [B, D]: `g^{-1}(eps)`, deterministic.
      sample(n, seed) -> [n, D].
      bijector(): a fresh `tfb.Chain` with forward `g^{-1}` (eps -> z), inverse `g` (z -> u).
      distribution(): a fresh `tfd.TransformedDistribution(N(0, I_D), bijector())`.

    Args:
      latent_dim: `D`.
      num_flows: `K`, the number of layers.
      hidden_units: widths of each conditioner's hidden layers.
      activation: the conditioners' hidden activation.
      log_scale_bound: `c` of the soft clamp `c tanh(s / c)` of every log-scale.
    """

    def __init__(self, latent_dim, num_flows=4, hidden_units=(256, 256), activation="elu",
                 log_scale_bound=3.0, **kwargs):
        super().__init__(latent_dim, **kwargs)
        if int(num_flows) < 1:
            raise ConfigError(f"num_flows must be >= 1, got {num_flows!r}.")
        if not float(log_scale_bound) > 0.0:
            raise ConfigError(f"log_scale_bound must be > 0, got {log_scale_bound!r}.")
        self.num_flows = int(num_flows)
        self.hidden_units = [int(units) for units in hidden_units]
        self.activation = activation
        self.log_scale_bound = float(log_scale_bound)

    # Conditioners ------------------------------------------------------------------------------

    def _ensure_built(self):
        # The VAE calls `log_prob`, not `__call__`: build the conditioners on first use.
        if not self.built:
            self.build((None, self.latent_dim))

    def _bounded(self, raw_log_scale):
        """`c tanh(s / c)`: the identity near 0, bounded by `c` in magnitude."""
        bound = tf.cast(self.log_scale_bound, raw_log_scale.dtype)
        return bound * tf.tanh(raw_log_scale / bound)

    # The flow ----------------------------------------------------------------------------------

    def normalize(self, z):
        """`u = g(z)` and `log|det dg/dz|`: one conditioner pass per layer.

        Args:
          z: `[..., D]`.

        Returns:
          `(u [..., D], log_det [...])`.
        """
        self._ensure_built()
        u = tf.cast(z, self.compute_dtype)
        log_det = tf.zeros(tf.shape(u)[:-1], u.dtype)
        for k in range(self.num_flows):
            u, layer_log_det = self._layer_normalize(k, u)
            log_det += layer_log_det
        return u, log_det

    def log_prob(self, z):
        """`log p(z) = log N(g(z); 0, I) + log|det dg/dz|`, `[..., D] -> [...]`."""
        u, log_det = self.normalize(z)
        return standard_normal_log_prob(u) + log_det

    def generate(self, eps):
        """`z = g^{-1}(eps)`, `[B, D] -> [B, D]` (any leading shape), deterministic."""
        self._ensure_built()
        z = tf.cast(eps, self.compute_dtype)
        for k in reversed(range(self.num_flows)):
            z = self._layer_generate(k, z)
        return z

    def bijector(self):
        """A fresh `tfb.Chain` with forward `g^{-1}` (eps -> z) and inverse `g` (z -> u).

        `g_1` is applied first to `z`, so the sampling direction applies `g_K^{-1}` first:
        `Chain([b_1, ..., b_K])` (a chain applies its last bijector first in `forward`).
        Build it where it is used; never store it on a layer.
        """
        self._ensure_built()
        return tfb.Chain([self._layer_bijector(k) for k in range(self.num_flows)],
                         name=f"{self.name}_flow")

    def distribution(self):
        """A fresh `tfd.TransformedDistribution(N(0, I_D), bijector())`: the prior in TFP."""
        base = tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim], self.compute_dtype))
        return tfd.TransformedDistribution(base, self.bijector())

    def get_config(self):
        return {**super().get_config(), "num_flows": self.num_flows,
                "hidden_units": list(self.hidden_units), "activation": self.activation,
                "log_scale_bound": self.log_scale_bound}


@PRIORS.register("maf")
@keras.saving.register_keras_serializable("tfdgm")
class MAFPrior(FlowPrior):
    """Masked autoregressive flow prior (Papamakarios et al., 2017).

    Layer `k` of `g` (normalizing direction), with `(m, s_raw) = MADE_k(z)` autoregressive in
    the ordering of layer `k` and `s = c tanh(s_raw / c)`:

    ```none
    u_i = (z_i - m_i(z_{<i})) exp(-s_i(z_{<i}))        log|det du/dz| = -sum_i s_i
    z_i = u_i exp(s_i(z_{<i})) + m_i(z_{<i})           (inverse: coordinate i needs z_{<i})
    ```

    Orderings alternate `left-to-right`, `right-to-left` from one layer to the next.
    `log_prob` is one MADE pass per layer. `generate` inverts each layer coordinate by
    coordinate in its ordering (`MADE.invert`: a `tf.while_loop` of `D` iterations, TFLite's
    builtin `WHILE`), each updating the first hidden layer by one rank-one term and applying
    only that coordinate's output columns: with one hidden layer the `D` coordinates together
    cost about one MADE pass, where `D` fixed-point passes `z <- u exp(s(z)) + m(z)` from
    `z = 0` (pass `j` makes the `j`-th coordinate exact) cost `D` passes.

    Options: `num_flows` (`K`, default 4), `hidden_units` (default `[256, 256]`; widths of at
    least `D - 1` let every degree appear), `activation`, `log_scale_bound`.
    """

    def __init__(self, latent_dim, num_flows=4, hidden_units=(256, 256), activation="elu",
                 log_scale_bound=3.0, **kwargs):
        super().__init__(latent_dim, num_flows=num_flows, hidden_units=hidden_units,
                         activation=activation, log_scale_bound=log_scale_bound, **kwargs)
        self.mades = [
            MADE(latent_dim, self.hidden_units, activation=activation,
                 input_order="left-to-right" if k % 2 == 0 else "right-to-left",
                 dtype=self.network_policy, name=f"made_{k}")
            for k in range(self.num_flows)]

    def build(self, input_shape=None):
        for made in self.mades:
            if not made.built:
                made.build((None, self.latent_dim))

    def shift_and_log_scale(self, k, z):
        """`(m, s)` of layer `k` at `z [..., D]`, with the log-scale soft-clamped (in the
        prior's full precision, whatever the MADE computes in)."""
        m, s = self.full_precision(*self.mades[k](z))
        return m, self._bounded(s)

    def _layer_normalize(self, k, z):
        m, s = self.shift_and_log_scale(k, z)
        return (z - m) * tf.exp(-s), -tf.reduce_sum(s, axis=-1)

    def _layer_generate(self, k, u):
        def solve(u_i, m_i, s_i):
            m_i, s_i = self.full_precision(m_i, s_i)
            return u_i * tf.exp(self._bounded(s_i)) + m_i

        return self.mades[k].invert(u, solve)

    def _layer_bijector(self, k):
        return tfb.MaskedAutoregressiveFlow(
            shift_and_log_scale_fn=lambda z, **kwargs: self.shift_and_log_scale(k, z),
            name=f"maf_{k}")


@PRIORS.register("realnvp")
@keras.saving.register_keras_serializable("tfdgm")
class RealNVPPrior(FlowPrior):
    """Affine coupling flow prior, RealNVP (Dinh et al., 2017), without batch normalization.

    Layer `k` of `g` (normalizing direction), with `d = D // 2`, the conditioning half `a` and the
    transformed half `b` (`a` = the first `d` units on even layers, the last `d` on odd ones, so
    every unit is transformed by some layer when `K >= 2`), `(t, s_raw) = net_k(z_a)` and
    `s = c tanh(s_raw / c)`:

    ```none
    u_a = z_a,  u_b = (z_b - t(z_a)) exp(-s(z_a))       log|det du/dz| = -sum_j s_j
    z_a = u_a,  z_b = u_b exp(s(u_a)) + t(u_a)          (inverse: one pass too)
    ```

    In TFP terms layer `k` is `tfb.RealNVP(num_masked=d)` on even and `num_masked=-d` on odd
    layers (a negative count masks the last units), with the coupling net as its
    `shift_and_log_scale_fn`. Needs `D >= 2`.

    Options: `num_flows` (`K`, default 4), `hidden_units` (default `[256, 256]`), `activation`,
    `log_scale_bound`.
    """

    def __init__(self, latent_dim, num_flows=4, hidden_units=(256, 256), activation="elu",
                 log_scale_bound=3.0, **kwargs):
        super().__init__(latent_dim, num_flows=num_flows, hidden_units=hidden_units,
                         activation=activation, log_scale_bound=log_scale_bound, **kwargs)
        if int(latent_dim) < 2:
            raise ConfigError(f"the realnvp prior needs latent_dim >= 2, got {latent_dim!r}.")
        self.num_masked = int(latent_dim) // 2
        self.coupling_nets = [
            CouplingNetwork(latent_dim - self.num_masked, self.hidden_units,
                            activation=activation, dtype=self.network_policy,
                            name=f"coupling_{k}")
            for k in range(self.num_flows)]

    def build(self, input_shape=None):
        for net in self.coupling_nets:
            if not net.built:
                net.build((None, self.num_masked))

    def shift_and_log_scale(self, k, z_a):
        """`(t, s)` of layer `k` from its conditioning units `z_a [..., d]`, each
        `[..., D - d]`, with the log-scale soft-clamped (in the prior's full precision)."""
        t, s = self.full_precision(*self.coupling_nets[k](z_a))
        return t, self._bounded(s)

    def _split(self, k, z):
        d = self.num_masked
        if k % 2 == 0:
            return z[..., :d], z[..., d:]
        return z[..., self.latent_dim - d:], z[..., :self.latent_dim - d]

    def _merge(self, k, z_a, z_b):
        return tf.concat([z_a, z_b] if k % 2 == 0 else [z_b, z_a], axis=-1)

    def _layer_normalize(self, k, z):
        z_a, z_b = self._split(k, z)
        t, s = self.shift_and_log_scale(k, z_a)
        return self._merge(k, z_a, (z_b - t) * tf.exp(-s)), -tf.reduce_sum(s, axis=-1)

    def _layer_generate(self, k, u):
        u_a, u_b = self._split(k, u)
        t, s = self.shift_and_log_scale(k, u_a)
        return self._merge(k, u_a, u_b * tf.exp(s) + t)

    def _layer_bijector(self, k):
        return tfb.RealNVP(
            num_masked=self.num_masked if k % 2 == 0 else -self.num_masked,
            shift_and_log_scale_fn=lambda z_a, output_units, **kwargs:
                self.shift_and_log_scale(k, z_a),
            name=f"real_nvp_{k}")
