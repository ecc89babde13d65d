"""The VampPrior: a mixture of variational posteriors at learned pseudo-inputs.

Tomczak & Welling (2018), "VAE with a VampPrior", AISTATS. ELBO surgery (Hoffman & Johnson 2016)
shows that the prior maximizing the training ELBO is the aggregated posterior
`q_agg(z) = (1/N) sum_n q(z | x_n)`; the VampPrior approximates it with K learned pseudo-inputs
`u_k` in image space:

    p(z) = (1/K) sum_k q(z | u_k),
    log p(z) = logsumexp_k log q(z | u_k) - log K.

`q(z | u)` is the model's own encoder and posterior (for the two-level model: those of the top
latent `z2`), so the prior is coupled to the encoder and trains with it. The pseudo-inputs are a
Keras weight `U [K, H, W, C]`, created when the model attaches itself (`attach`), initialized
from `N(init_mean, init_std^2)` (-0.05, 0.01 in the paper) or from K random training images
(`init="training_images"`, then the trainer calls `initialize_pseudo_inputs`), and optionally
passed through a hard tanh that clips them to the data range [0, 1].

The hard tanh and its gradient. Clipping has zero derivative outside [0, 1], and the paper's
initialization N(-0.05, 0.01) puts every pixel below 0: with the exact derivative no pseudo-input
would ever move. Here the forward value is exactly `clip(U, 0, 1)`, its gradient is passed
straight through, and the weight carries the constraint `U <- clip(U, 0, 1)`, which Keras's
optimizers apply after every update: training is projected gradient descent on the box
[0, 1]^{HWC}, so a pixel at a bound moves only when the step points back inside. The gradient is
linear in the loss (no sign-dependent mask), so N replicas that sum their gradients take the same
step as one device.

`generate(eps)` maps standard-normal noise to a prior sample deterministically (the exported
`generate` signature takes its noise as an input): `noise_dim = D + 1`; the first coordinate
picks the component, `k = floor(Phi(eps_0) K)` (uniform over the K components), computed as the
number of the fixed thresholds `Phi^{-1}(j / K)`, `j = 1 .. K-1`, at or below `eps_0` (no erf in
the graph, so it converts to TFLite with builtin ops); the other D coordinates reparameterize
`q(z | u_k)` (`loc + scale * eps` for the diagonal Gaussian, `loc + L eps` for the full-covariance
one).

`pairwise_log_prob(posterior, z, h)` -- `log q(z_n | x_m)` for every pair of N codes and M inputs
-- is the engine of both this prior (the M inputs are the pseudo-inputs) and of ELBO surgery's
aggregated posterior (the M inputs are data); for the diagonal Gaussian it is two matrix products,
memory `O(N M)` instead of `O(N M D)`.
"""

import math
import statistics

import keras
import numpy as np
import tensorflow as tf

from tfdgm.models.vae.posteriors import pairwise_log_prob, reparameterize
from tfdgm.models.vae.priors import Prior
from tfdgm.errors import ConfigError
from tfdgm.registry import PRIORS

INITS = ("random_normal", "training_images")


def clip_straight_through(u):
    """`clip(u, 0, 1)` in the forward pass, the identity in the backward pass."""
    return u + tf.stop_gradient(tf.clip_by_value(u, 0.0, 1.0) - u)


@keras.saving.register_keras_serializable("tfdgm")
class UnitIntervalConstraint(keras.constraints.Constraint):
    """Projects a weight onto [0, 1] (applied by the optimizer after each update)."""

    def __call__(self, w):
        return keras.ops.clip(w, 0.0, 1.0)


@PRIORS.register("vamp_prior")
@keras.saving.register_keras_serializable("tfdgm")
class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z | u_k) with K learned pseudo-inputs (Tomczak & Welling 2018).

    Args:
      latent_dim: `D` (injected).
      num_components: `K` (500 in the paper).
      init: `"random_normal"` (pseudo-inputs drawn from N(init_mean, init_std^2)) or
        `"training_images"` (K random training images, set by the trainer through
        `initialize_pseudo_inputs` before the first step).
      init_mean, init_std: the normal initialization (the paper: -0.05, 0.01).
      hard_tanh: clip the pseudo-inputs to the data range [0, 1] (the paper's hard tanh).

    The pseudo-inputs weight `[K, H, W, C]` is created by `attach(model)`, which the model calls
    with itself; the prior keeps the model in an untracked reference and uses `model.encoder` and
    `model.posterior` (which must have `log_prob(z, h)`) as `q(z | u)`.

    Cost: every `log_prob` call encodes the K pseudo-inputs (one encoder pass over K images) and
    evaluates K Gaussian densities per code, `O(N K D)` time for N codes.
    """

    needs_posterior_log_prob = True

    def __init__(self, latent_dim, num_components=500, init="random_normal", init_mean=-0.05,
                 init_std=0.01, hard_tanh=True, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.validate_options({"num_components": num_components, "init": init,
                               "init_std": init_std}, "model.prior")
        self.num_components = int(num_components)
        self.init, self.init_mean, self.init_std = init, float(init_mean), float(init_std)
        self.hard_tanh = bool(hard_tanh)
        # Phi^{-1}(j / K), j = 1 .. K-1: eps_0 picks component k = #{j : eps_0 >= threshold_j}.
        normal = statistics.NormalDist()
        self._thresholds = np.array([normal.inv_cdf(j / self.num_components)
                                     for j in range(1, self.num_components)], np.float32)
        self.pseudo_inputs_raw = None

    @staticmethod
    def validate_options(options, where, latent_dim=None):
        """Checks option values before anything is built; raises `ConfigError`."""
        if "num_components" in options and (
                isinstance(options["num_components"], bool)
                or not isinstance(options["num_components"], (int, np.integer))
                or options["num_components"] < 1):
            raise ConfigError(f"{where}.num_components must be an integer >= 1, got "
                              f"{options['num_components']!r}.")
        if "init" in options and options["init"] not in INITS:
            raise ConfigError(f"{where}.init: '{options['init']}' is not one of "
                              f"{', '.join(INITS)}.")
        std = options.get("init_std", 0.0)
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not std >= 0:
            raise ConfigError(f"{where}.init_std must be >= 0, got {options['init_std']!r}.")

    # Contract -------------------------------------------------------------------------------

    @property
    def noise_dim(self):
        """`D + 1`: one coordinate picks the component, D reparameterize it."""
        return self.latent_dim + 1

    @property
    def needs_training_images(self):
        """Whether the trainer must call `initialize_pseudo_inputs` before training."""
        return self.init == "training_images"

    def attach(self, model):
        """Keeps a reference to `model` and creates the pseudo-inputs `[K, *model.image_shape]`.

        The reference lives in a closure: as an attribute (tracked or not) Keras's saving would
        walk from the prior back into the model, its own parent (a cycle)."""
        object.__setattr__(self, "_owner", lambda: model)
        if not self.built:
            self.build(tuple(model.image_shape))
        elif tuple(self.pseudo_inputs_raw.shape[1:]) != tuple(model.image_shape):
            raise ValueError(f"pseudo-inputs of shape {self.pseudo_inputs_raw.shape} do not fit "
                             f"images of shape {model.image_shape}.")

    def build(self, image_shape):
        initializer = (keras.initializers.RandomNormal(self.init_mean, self.init_std)
                       if self.init == "random_normal" else "zeros")
        self.pseudo_inputs_raw = self.add_weight(
            name="pseudo_inputs", shape=(self.num_components, *image_shape),
            initializer=initializer, trainable=True,
            constraint=UnitIntervalConstraint() if self.hard_tanh else None)

    def owner(self):
        """The model that attached itself (its encoder and posterior define q(z | u))."""
        owner = getattr(self, "_owner", None)
        if owner is None:
            raise RuntimeError("the VampPrior is used before a model attached itself "
                               "(prior.attach(model)).")
        return owner()

    def initialize_pseudo_inputs(self, images, seed=0):
        """Sets the pseudo-inputs to K images drawn at random from `images [N, H, W, C]` (without
        replacement when N >= K), as in the paper's `use_training_data_init`."""
        images = np.asarray(images, np.float32)
        shape = tuple(self.pseudo_inputs_raw.shape[1:])
        if images.ndim != 4 or images.shape[1:] != shape:
            raise ValueError(f"expected images [N, {', '.join(map(str, shape))}], "
                             f"got {images.shape}.")
        rng = np.random.default_rng(seed)
        index = rng.choice(len(images), self.num_components,
                           replace=len(images) < self.num_components)
        self.pseudo_inputs_raw.assign(images[index])

    def pseudo_inputs(self, differentiable=False):
        """The pseudo-inputs `[K, H, W, C]` the encoder sees (clipped to [0, 1] with `hard_tanh`).

        `differentiable=True` passes the gradient straight through the clip (for the training
        loss); otherwise a plain clip (for display and the exported generator).
        """
        u = tf.convert_to_tensor(self.pseudo_inputs_raw)
        if not self.hard_tanh:
            return u
        return clip_straight_through(u) if differentiable else tf.clip_by_value(u, 0.0, 1.0)

    def log_prob(self, z):
        """`log p(z) = logsumexp_k log q(z | u_k) - log K` over the last axis:
        `[..., D] -> [...]`."""
        model = self.owner()
        h = model.encoder(self.pseudo_inputs(differentiable=True))       # [K, F]
        leading = tf.shape(z)[:-1]
        flat = tf.reshape(z, [-1, self.latent_dim])                       # [N, D]
        log_q = pairwise_log_prob(model.posterior, flat, h)               # [N, K]
        log_p = tf.reduce_logsumexp(log_q, axis=-1) - math.log(self.num_components)
        return tf.reshape(log_p, leading)

    def scale_noise(self, eps, temperature):
        """Scales the D reparameterization coordinates by `temperature`, not `eps[:, 0]`: that
        coordinate picks the component, uniformly, at every temperature."""
        return tf.concat([eps[:, :1], eps[:, 1:] * temperature], axis=-1)

    def component(self, eps0):
        """The component index `k = floor(Phi(eps_0) K)` `[B]` int32 for `eps0 [B]`."""
        thresholds = tf.constant(self._thresholds, dtype=eps0.dtype)
        return tf.reduce_sum(tf.cast(eps0[:, None] >= thresholds[None, :], tf.int32), axis=-1)

    def generate(self, eps):
        """`eps [B, D + 1] -> z [B, D]`: component `k` from `eps[:, 0]`, then `q(z | u_k)`
        reparameterized with `eps[:, 1:]`."""
        model = self.owner()
        k = self.component(eps[:, 0])
        u = tf.gather(self.pseudo_inputs(), k)                            # [B, H, W, C]
        return reparameterize(model.posterior, model.encoder(u), eps[:, 1:])

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components,
                "init": self.init, "init_mean": self.init_mean, "init_std": self.init_std,
                "hard_tanh": self.hard_tanh}
