"""Normalizing-flow posteriors: a diagonal Gaussian pushed through `K` invertible maps.

```none
z_0 ~ q_0(z | x) = N(mu(x), diag sigma(x)^2)
z_k = f_k(z_{k-1}),  k = 1..K
log q(z_K | x) = log q_0(z_0 | x) - sum_k log|det df_k / dz_{k-1}|
```

(Rezende & Mohamed, 2015). Every posterior here is a Keras layer with the contract of
`tfdgm.models.vae.posteriors.Posterior`: `posterior(h [B, F], num_samples=S, seed=[2])` returns
a `PosteriorSample` with `z = z_K [S, B, D]`, `log_q [S, B]` (the base density minus the summed
log-dets), `kl_per_dim = None` (no per-dimension KL once the flow mixes dimensions) and
`mean [B, D]`, the base mean `mu(x)` pushed through the same `K` maps (a deterministic code used
by `encode` and the active-unit statistic; it is not the mean of `q(z_K | x)` for a non-linear
flow).

Registered names (config `model.posterior.name`) and the maps `f_k`:

| name | map `f_k` | paper |
| --- | --- | --- |
| `planar` | `z + u_hat tanh(w^T z + b)` | Rezende & Mohamed 2015 |
| `radial` | `z + beta (z - z_ref) / (alpha + ||z - z_ref||)` | Rezende & Mohamed 2015 |
| `householder` | `H_R ... H_1 z`, volume preserving | Tomczak & Welling 2016 |
| `sylvester_orthogonal` | `z + Q R1 tanh(R2 Q^T z + b)`, `Q [D, M]`, `Q^T Q = I` | v.d. Berg 2018 |
| `sylvester_householder` | the same, `Q` a product of Householder reflections | v.d. Berg 2018 |
| `sylvester_triangular` | the same, `Q` = identity / reversal, alternating | v.d. Berg 2018 |
| `iaf` | `sigma z + (1 - sigma) m`, `(m, s)` from a MADE | Kingma et al. 2016 |

Amortization (`amortized=True`, the default, as in the Sylvester-flow paper): the flow's
parameters are per-example outputs of Dense hyper-network heads on the encoder features `h(x)`,
shaped `[B, K, ...]`; the `k`-th step's bijector gets `[B, ...]` parameters, which broadcast
against `z [S, B, D]`. With `amortized=False` they are global Keras weights `[K, ...]` shared by
all examples (initialized with small random values, so the flow starts near, not at, the
identity and every weight receives a gradient from the first step). IAF is amortized through its
MADE's context input instead (`context=True`: the MADE sees `h(x)`).

Weights: Keras owns all of them. The layer keeps the base Gaussian (a
`DiagonalGaussianPosterior`, whose replica-aware stateless noise it reuses), the hyper-network
heads, global parameter weights and MADEs as attributes, and builds the `tfdgm.bijectors`
afresh inside every call (`bijectors(h)`), never storing one.

Parameter counts for `D = 64`, `K = 16`, `F = 256` (the paper's MNIST setting): the amortized
Sylvester heads output `K (M^2 + 3M)` numbers plus `K D M` (O-SNF, `M = 32`) or `K R D` (H-SNF,
`R = 8`) for `Q`; with `M = D = 64` (H-SNF, T-SNF) the `R` head alone has `256 * 16 * 64^2`
= 16.8M weights, as in the paper's code. As there, one `[M, M]` output per step fills the strict
upper triangle of `R1` (its upper part) and of `R2` (its lower part, transposed); the diagonals
come from separate heads and are squashed by `tanh` in the bijector.

#### References

[1]: Danilo Jimenez Rezende and Shakir Mohamed. Variational Inference with Normalizing Flows.
     In _International Conference on Machine Learning_, 2015. https://arxiv.org/abs/1505.05770

[2]: Jakub M. Tomczak and Max Welling. Improving Variational Auto-Encoders using Householder
     Flow. _arXiv preprint_, 2016. https://arxiv.org/abs/1611.09630

[3]: Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak and Max Welling. Sylvester
     Normalizing Flows for Variational Inference. In _Uncertainty in Artificial Intelligence_,
     2018. https://arxiv.org/abs/1803.05649

[4]: Diederik P. Kingma, Tim Salimans, Rafal Jozefowicz, Xi Chen, Ilya Sutskever and Max
     Welling. Improving Variational Inference with Inverse Autoregressive Flow. In _Neural
     Information Processing Systems_, 2016. https://arxiv.org/abs/1606.04934
"""

import math

import keras
import tensorflow as tf

from tfdgm import bijectors as tfdgm_bijectors
from tfdgm.models.vae.posteriors import DiagonalGaussianPosterior, Posterior, PosteriorSample
from tfdgm.errors import ConfigError
from tfdgm.nn.made import MADE
from tfdgm.registry import POSTERIORS

__all__ = [
    "FlowPosterior",
    "HouseholderPosterior",
    "IAFPosterior",
    "PlanarPosterior",
    "RadialPosterior",
    "SylvesterHouseholderPosterior",
    "SylvesterOrthogonalPosterior",
    "SylvesterTriangularPosterior",
    "apply_flow",
]

_GLOBAL_STDDEV = 0.1
"""Standard deviation of the random initial values of global (non-amortized) flow parameters."""


def _is_positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_int(value, what):
    if not _is_positive_int(value):
        raise ConfigError(f"{what} must be a positive integer, got {value!r}.")
    return value


_OPTION_CHECKS = {
    "num_flows": (_is_positive_int, "a positive integer"),
    "num_reflections": (_is_positive_int, "a positive integer"),
    "bottleneck": (lambda v: v is None or _is_positive_int(v), "a positive integer or null"),
    "orthogonalization_steps": (_is_positive_int, "a positive integer"),
    "amortized": (lambda v: isinstance(v, bool), "true or false"),
    "context": (lambda v: isinstance(v, bool), "true or false"),
    "forget_bias": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                    "a number"),
    "hidden_units": (lambda v: isinstance(v, (list, tuple)) and len(v) > 0
                     and all(_is_positive_int(u) for u in v),
                     "a non-empty list of positive integers, e.g. [320, 320]"),
    "activation": (lambda v: isinstance(v, str), "an activation name, e.g. elu"),
}


def apply_flow(steps, z):
    """Pushes `z` through `steps` and sums their log-dets.

    Args:
        steps: sequence of `tfb.Bijector` with `forward_min_event_ndims=1`.
        z: `Tensor` `[..., D]`.

    Returns:
        `(z_K [..., D], sum_k log|det dz_k / dz_{k-1}| [...])`.
    """
    log_det = tf.zeros(tf.shape(z)[:-1], dtype=z.dtype)
    for step in steps:
        if hasattr(step, "forward_and_log_det"):  # IAF: one MADE pass for both
            z, step_log_det = step.forward_and_log_det(z)
        else:
            step_log_det = step.forward_log_det_jacobian(z, event_ndims=1)
            z = step.forward(z)
        log_det = log_det + step_log_det
    return z, log_det


class FlowPosterior(Posterior):
    """Base class: a diagonal Gaussian `q_0(z | x)` followed by `num_flows` bijectors.

    ```none
    (z_0, log q_0) = base(h)                       z_0 [S, B, D], log q_0 [S, B]
    z_K = f_K o ... o f_1 (z_0)
    log q(z_K | x) = log q_0(z_0 | x) - sum_k log|det df_k/dz_{k-1}|
    mean = f_K o ... o f_1 (mu(x))                 [B, D]
    ```

    Subclasses declare their flow parameters in `__init__` with `add_flow_parameter(name,
    shape)` (a Dense hyper-network head on `h` if `amortized`, else a global weight) and
    implement `make_bijectors(params, h)`, which receives `{name: [B, K, *shape] or [K,
    *shape]}` (and the features `h [B, F]`, for conditioners such as IAF's MADEs) and returns the
    `K` bijectors, built afresh (take the `k`-th step's values with `self.step(params[name], k)`).

    Args:
        latent_dim: `D`.
        num_flows: `K >= 1`.
        amortized: per-example flow parameters from hyper-network heads on `h(x)` (True) or
            global weights shared by all examples (False).
        **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`).
    """

    factorized = False
    has_log_prob = False  # no inverse in general (Sylvester): log q only at its own samples

    def __init__(self, latent_dim, num_flows=4, amortized=True, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_flows = _positive_int(num_flows, "num_flows")
        self.amortized = bool(amortized)
        self.base = DiagonalGaussianPosterior(latent_dim, name="base", dtype=self.network_policy)
        self._flow_parameter_shapes = []

    @classmethod
    def validate_options(cls, options, where, latent_dim=None):
        """Checks a config's option values before anything is built; raises `ConfigError`.

        Args:
            options: the config's options (without `name`), already checked against the
                constructor's signature.
            where: the config path, e.g. `"model.posterior"`.
            latent_dim: `D` where known: then `bottleneck <= D` is checked too (otherwise the
                constructor checks it when the model is built).
        """
        for key, value in options.items():
            if key in _OPTION_CHECKS:
                valid, expected = _OPTION_CHECKS[key]
                if not valid(value):
                    raise ConfigError(f"{where}.{key}: expected {expected}, got {value!r}.")
        bottleneck = options.get("bottleneck")
        if latent_dim is not None and bottleneck is not None and bottleneck > latent_dim:
            raise ConfigError(f"{where}.bottleneck: {bottleneck} exceeds model.latent_dim "
                              f"({latent_dim}); the bottleneck M must be <= D.")

    # Parameters ---------------------------------------------------------------------------------

    def add_flow_parameter(self, name, shape, initializer=None):
        """Declares a flow parameter of `shape` per step.

        Amortized: a Dense head `h [B, F] -> [B, K * prod(shape)]` (Glorot-initialized kernel,
        zero bias) named `<name>_head`, reshaped to `[B, K, *shape]`. Global: a weight
        `[K, *shape]` named `<name>`, initialized by `initializer` (default N(0, 0.1^2)).
        """
        shape = tuple(int(d) for d in shape)
        if self.amortized:
            size = self.num_flows * math.prod(shape)
            source = keras.layers.Dense(size, name=f"{name}_head", dtype=self.network_policy)
        else:
            initializer = initializer or keras.initializers.RandomNormal(stddev=_GLOBAL_STDDEV)
            source = self.add_weight(shape=(self.num_flows,) + shape, initializer=initializer,
                                     name=name)
        setattr(self, f"_{name}_source", source)
        self._flow_parameter_shapes.append((name, shape))

    def flow_parameters(self, h):
        """`{name: [B, K, *shape]}` (amortized) or `{name: [K, *shape]}` (global), in the
        layer's full precision (the heads' outputs are cast)."""
        params = {}
        for name, shape in self._flow_parameter_shapes:
            source = getattr(self, f"_{name}_source")
            if self.amortized:
                params[name] = tf.reshape(self.full_precision(source(h)),
                                          [-1, self.num_flows, *shape])
            else:
                params[name] = tf.convert_to_tensor(source)
        return params

    def step(self, value, k):
        """The `k`-th step's slice of a parameter: `[B, *shape]` or `[*shape]`."""
        return value[:, k] if self.amortized else value[k]

    # The flow -----------------------------------------------------------------------------------

    def make_bijectors(self, params, h):
        """Returns the `K` bijectors for the parameters of `flow_parameters(h)`."""
        raise NotImplementedError

    def bijectors(self, h):
        """The `K` `tfdgm.bijectors` of this batch, built afresh from `h [B, F]`."""
        return self.make_bijectors(self.flow_parameters(h), h)

    def transform(self, z0, h):
        """`(z_K [..., B, D], sum of log-dets [..., B])` for base samples `z0 [..., B, D]`."""
        return apply_flow(self.bijectors(h), z0)

    def call(self, h, num_samples=1, seed=None):
        q0 = self.base(h, num_samples=num_samples, seed=seed)
        steps = self.bijectors(h)
        z, log_det = apply_flow(steps, q0.z)
        mean, _ = apply_flow(steps, q0.mean)
        return PosteriorSample(z=z, log_q=q0.log_q - log_det, kl_per_dim=None, mean=mean)

    def get_config(self):
        return {**super().get_config(), "num_flows": self.num_flows, "amortized": self.amortized}


@POSTERIORS.register("planar")
@keras.saving.register_keras_serializable("tfdgm")
class PlanarPosterior(FlowPosterior):
    """Planar flows (Rezende & Mohamed, 2015): `z_k = z + u_hat tanh(w^T z + b)`.

    Per step: `u`, `w` `[D]`, `b` `[]` (amortized: `[B, D]`, `[B]`); `u_hat` is constrained in
    `tfdgm.bijectors.Planar` so that `w^T u_hat > -1` (invertible), and
    `log|det| = log|1 + (1 - tanh^2(w^T z + b)) w^T u_hat|`.

    Args:
        latent_dim: `D`.
        num_flows: `K` (default 4; 16 in the Sylvester-flow paper's comparison).
        amortized: parameters from hyper-network heads on `h(x)` (default) or global.
    """

    def __init__(self, latent_dim, num_flows=4, amortized=True, **kwargs):
        super().__init__(latent_dim, num_flows, amortized, **kwargs)
        self.add_flow_parameter("u", [latent_dim])
        self.add_flow_parameter("w", [latent_dim])
        self.add_flow_parameter("b", [], initializer="zeros")

    def make_bijectors(self, params, h):
        return [tfdgm_bijectors.Planar(self.step(params["u"], k), self.step(params["w"], k),
                                       self.step(params["b"], k))
                for k in range(self.num_flows)]


@POSTERIORS.register("radial")
@keras.saving.register_keras_serializable("tfdgm")
class RadialPosterior(FlowPosterior):
    """Radial flows (Rezende & Mohamed, 2015): `z_k = z + beta (z - z_ref) / (alpha + r)`.

    Per step: the reference point `z_ref [D]`, `alpha = softplus(alpha_raw) > 0` and
    `beta = -alpha + softplus(beta_raw) >= -alpha` (invertible), `r = ||z - z_ref||`;
    `log|det| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h' r)`, `h = 1 / (alpha + r)`.

    Args:
        latent_dim: `D`.
        num_flows: `K` (default 4).
        amortized: parameters from hyper-network heads on `h(x)` (default) or global.
    """

    def __init__(self, latent_dim, num_flows=4, amortized=True, **kwargs):
        super().__init__(latent_dim, num_flows, amortized, **kwargs)
        self.add_flow_parameter("z_ref", [latent_dim])
        self.add_flow_parameter("alpha", [])
        self.add_flow_parameter("beta", [])

    def make_bijectors(self, params, h):
        return [tfdgm_bijectors.Radial(self.step(params["z_ref"], k),
                                       self.step(params["alpha"], k),
                                       self.step(params["beta"], k))
                for k in range(self.num_flows)]


@POSTERIORS.register("householder")
@keras.saving.register_keras_serializable("tfdgm")
class HouseholderPosterior(FlowPosterior):
    """Householder flow (Tomczak & Welling, 2016): `z_K = H_{KR} ... H_1 z_0`, log-det 0.

    `H = I - 2 v v^T / ||v||^2`. Each of the `num_flows` steps is one `tfdgm.bijectors.
    Householder` of `num_reflections` reflections, so the flow applies `K R` reflections in all
    (the paper's "T"; it used 1 to 10, and 1 reflection per step is its formulation). The map is
    orthogonal: `q(z_K | x)` is a full-covariance Gaussian `N(Q mu, Q diag(sigma^2) Q^T)`.
    Amortized, the vectors come from heads on `h(x)` (the paper computes `v_1` from the encoder
    and `v_{t+1}` from `v_t`; heads on `h` span the same family).

    Args:
        latent_dim: `D`.
        num_flows: `K` (default 4).
        num_reflections: `R` reflections per step (default 1).
        amortized: vectors from hyper-network heads on `h(x)` (default) or global.
    """

    def __init__(self, latent_dim, num_flows=4, num_reflections=1, amortized=True, **kwargs):
        super().__init__(latent_dim, num_flows, amortized, **kwargs)
        self.num_reflections = _positive_int(num_reflections, "num_reflections")
        self.add_flow_parameter("v", [self.num_reflections, latent_dim],
                                initializer=keras.initializers.RandomNormal(stddev=1.0))

    def make_bijectors(self, params, h):
        return [tfdgm_bijectors.Householder(self.step(params["v"], k))
                for k in range(self.num_flows)]

    def get_config(self):
        return {**super().get_config(), "num_reflections": self.num_reflections}


class SylvesterPosterior(FlowPosterior):
    """Sylvester flows (van den Berg et al., 2018): `z_k = z + Q R1 tanh(R2 Q^T z + b)`.

    ```none
    Q [D, M], Q^T Q = I;  R1, R2 [M, M] upper triangular, diag tanh-squashed;  b [M]
    log|det| = sum_i log|1 + r1_ii r2_ii (1 - tanh^2((R2 Q^T z + b)_i))|
    ```

    Per step, the parameters `r [M, M]` (strict upper triangle -> `R1`, strict lower triangle
    transposed -> `R2`, as in the paper's code), `diag1 [M]`, `diag2 [M]` and `b [M]`, plus what
    the subclass needs for `Q` (`q_matrices`).
    """

    def __init__(self, latent_dim, bottleneck, num_flows=16, amortized=True, **kwargs):
        super().__init__(latent_dim, num_flows, amortized, **kwargs)
        self.bottleneck = _positive_int(bottleneck, "bottleneck")
        if self.bottleneck > latent_dim:
            raise ConfigError(f"bottleneck={self.bottleneck} must be <= latent_dim={latent_dim} "
                             f"(Q is [D, M] with orthonormal columns).")
        m = self.bottleneck
        self.add_flow_parameter("r", [m, m])
        self.add_flow_parameter("diag1", [m])
        self.add_flow_parameter("diag2", [m])
        self.add_flow_parameter("b", [m], initializer="zeros")

    def q_matrices(self, params):
        """`Q` of every step: `[B, K, D, M]` (amortized) or `[K, D, M]` / `[D, M]`, indexable by
        `self.step(q, k)`, or a list of `K` matrices."""
        raise NotImplementedError

    def make_bijectors(self, params, h):
        q = self.q_matrices(params)
        steps = []
        for k in range(self.num_flows):
            r = self.step(params["r"], k)
            r1 = tf.linalg.set_diag(r, self.step(params["diag1"], k))
            r2 = tf.linalg.set_diag(tf.linalg.matrix_transpose(r), self.step(params["diag2"], k))
            q_k = q[k] if isinstance(q, list) else self.step(q, k)
            steps.append(tfdgm_bijectors.Sylvester(q_k, r1, r2,
                                                   self.step(params["b"], k)))
        return steps


@POSTERIORS.register("sylvester_orthogonal")
@keras.saving.register_keras_serializable("tfdgm")
class SylvesterOrthogonalPosterior(SylvesterPosterior):
    """Orthogonal Sylvester flows (O-SNF): `Q [D, M]` by iterative orthogonalization.

    Per step, an unconstrained `Q_raw [D, M]` is mapped to orthonormal columns by the iterative
    orthogonalization of `tfdgm.bijectors.orthogonalize` (`Q <- Q (I + (I - Q^T Q) / 2)` after
    Frobenius normalization, differentiable), unrolled for `orthogonalization_steps` steps and
    batched over examples and steps (see `orthogonalize_unrolled` for why not the while loop).
    `M < D` is the bottleneck (the paper: `M = 32` for `D = 64`).

    Args:
        latent_dim: `D`.
        num_flows: `K` (default 16, the paper's).
        bottleneck: `M <= D` (default `min(32, D)`; the paper's 32).
        amortized: parameters (`Q_raw` included) from hyper-network heads on `h(x)` (default,
            the paper's) or global.
        orthogonalization_steps: the number of orthogonalization iterations (default 20; the
            log-det assumes `Q^T Q = I`, so raise it if `Q_raw` becomes ill-conditioned).
    """

    def __init__(self, latent_dim, num_flows=16, bottleneck=None, amortized=True,
                 orthogonalization_steps=20, **kwargs):
        bottleneck = min(32, latent_dim) if bottleneck is None else bottleneck
        super().__init__(latent_dim, bottleneck, num_flows, amortized, **kwargs)
        self.orthogonalization_steps = _positive_int(orthogonalization_steps,
                                                     "orthogonalization_steps")
        self.add_flow_parameter("q", [latent_dim, self.bottleneck],
                                initializer=keras.initializers.RandomNormal(stddev=1.0))

    def q_matrices(self, params):
        # One batched orthogonalization of [B, K, D, M] (or [K, D, M]) for all K steps.
        return tfdgm_bijectors.orthogonalize_unrolled(params["q"], self.orthogonalization_steps)

    def get_config(self):
        return {**super().get_config(), "bottleneck": self.bottleneck,
                "orthogonalization_steps": self.orthogonalization_steps}


@POSTERIORS.register("sylvester_householder")
@keras.saving.register_keras_serializable("tfdgm")
class SylvesterHouseholderPosterior(SylvesterPosterior):
    """Householder Sylvester flows (H-SNF): `Q = H_R ... H_1` `[D, D]`, `M = D`.

    Per step, `R` reflection vectors `[R, D]` give `Q` by `tfdgm.bijectors.householder_product`
    (the paper: `R = 8`); no bottleneck.

    Args:
        latent_dim: `D`.
        num_flows: `K` (default 16, the paper's).
        num_reflections: `R` (default 8, the paper's).
        amortized: parameters from hyper-network heads on `h(x)` (default, the paper's) or global.
    """

    def __init__(self, latent_dim, num_flows=16, num_reflections=8, amortized=True, **kwargs):
        super().__init__(latent_dim, latent_dim, num_flows, amortized, **kwargs)
        self.num_reflections = _positive_int(num_reflections, "num_reflections")
        self.add_flow_parameter("v", [self.num_reflections, latent_dim],
                                initializer=keras.initializers.RandomNormal(stddev=1.0))

    def q_matrices(self, params):
        return tfdgm_bijectors.householder_product(params["v"])  # [B, K, D, D] or [K, D, D]

    def get_config(self):
        return {**super().get_config(), "num_reflections": self.num_reflections}


@POSTERIORS.register("sylvester_triangular")
@keras.saving.register_keras_serializable("tfdgm")
class SylvesterTriangularPosterior(SylvesterPosterior):
    """Triangular Sylvester flows (T-SNF): `Q` = `I` on even steps, the reversal `P` on odd ones.

    `M = D` and `Q` is a fixed permutation, so consecutive triangular maps see the coordinates in
    opposite orders (`tfdgm.bijectors.triangular_q`), as the orderings of IAF alternate.

    Args:
        latent_dim: `D`.
        num_flows: `K` (default 16, the paper's).
        amortized: `R1`, `R2`, `b` from hyper-network heads on `h(x)` (default, the paper's) or
            global.
    """

    def __init__(self, latent_dim, num_flows=16, amortized=True, **kwargs):
        super().__init__(latent_dim, latent_dim, num_flows, amortized, **kwargs)

    def q_matrices(self, params):
        return [tfdgm_bijectors.triangular_q(self.latent_dim, permute=bool(k % 2),
                                             dtype=params["b"].dtype)
                for k in range(self.num_flows)]


@POSTERIORS.register("iaf")
@keras.saving.register_keras_serializable("tfdgm")
class IAFPosterior(FlowPosterior):
    """Inverse autoregressive flow (Kingma et al., 2016), in the gated form.

    ```none
    (m, s) = MADE_k(z, h(x))
    sigma = sigmoid(s + forget_bias)
    z_k = sigma * z + (1 - sigma) * m,      log|det| = sum_i log sigma_i
    ```

    One `tfdgm.nn.MADE` per step (its own weights), orderings alternating left-to-right and
    right-to-left. With `context=True` each MADE also sees the encoder features `h(x)` through an
    unmasked projection into its first hidden layer (the paper's `h` input; the Sylvester-flow
    paper's IAF baseline: 16 steps, a 1280-wide MADE, context, no hyper-networks). `context`
    is IAF's amortization switch: with `False` the flow is shared by all examples (only the base
    Gaussian depends on `x`), so there is no `amortized` option.

    Args:
        latent_dim: `D`.
        num_flows: `K` (default 4).
        hidden_units: the MADE's hidden widths (default `[320, 320]`; `[1280, 1280]` in the
            Sylvester-flow paper's comparison).
        context: condition every MADE on `h(x)` (default True).
        forget_bias: added to `s` before the sigmoid (default 1.0: each step starts close to
            `z_k = sigmoid(1) z`).
        activation: the MADE's hidden activation (default `'elu'`, as in the paper's code).
    """

    def __init__(self, latent_dim, num_flows=4, hidden_units=(320, 320), context=True,
                 forget_bias=1.0, activation="elu", **kwargs):
        super().__init__(latent_dim, num_flows, amortized=bool(context), **kwargs)
        self.hidden_units = [int(units) for units in hidden_units]
        self.context = bool(context)
        self.forget_bias = float(forget_bias)
        self.activation = activation
        self.mades = [MADE(latent_dim, self.hidden_units, activation=activation,
                           input_order="left-to-right" if k % 2 == 0 else "right-to-left",
                           name=f"made_{k}", dtype=self.network_policy)
                      for k in range(self.num_flows)]

    def make_bijectors(self, params, h):
        # The MADEs compute in the run's policy; the bijectors get (m, s) in full precision.
        if self.context:
            made_fns = [lambda z, *args, made=made, **kw: self.full_precision(*made(z, h))
                        for made in self.mades]
        else:
            made_fns = [lambda z, *args, made=made, **kw: self.full_precision(*made(z))
                        for made in self.mades]
        return [tfdgm_bijectors.IAF(made_fn, forget_bias=self.forget_bias)
                for made_fn in made_fns]

    def get_config(self):
        config = super().get_config()
        del config["amortized"]
        return {**config, "hidden_units": list(self.hidden_units), "context": self.context,
                "forget_bias": self.forget_bias, "activation": self.activation}
