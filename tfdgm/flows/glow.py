"""Glow: steps of actnorm, invertible 1x1 convolution and affine coupling, multi-scale."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm.flows.actnorm import ActNorm
from tfdgm.flows.base import FlowLayer, Squeeze
from tfdgm.flows.coupling import AffineCoupling
from tfdgm.flows.invertible_conv import InvertibleConv1x1
from tfdgm.flows.multiscale import MultiScaleFlow
from tfdgm.flows.priors import ConditionalGaussianPrior, LearnedGaussianPrior

tfb = tfp.bijectors

__all__ = ["GlowFlow", "GlowStep"]

_REFERENCE = """
    #### References

    [1]: Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
         Convolutions. In _Neural Information Processing Systems_, 2018.
         https://arxiv.org/abs/1807.03039
"""


@keras.saving.register_keras_serializable(package="tfdgm")
class GlowStep(FlowLayer):
    """One step of Glow: actnorm, then an invertible 1x1 convolution, then an affine coupling.

    ```none
    h1 = actnorm(x),  h2 = W h1 (1x1 conv),  y = coupling(h2)   (Glow's channel split)
    log|det dy/dx| = H W sum(log_scale) + H W log|det W| + sum log s(h2_a)
    ```

    The 1x1 convolution replaces RealNVP's fixed channel permutations between couplings
    (Kingma & Dhariwal, 2018, section 3 and figure 2a). Sublayers: `actnorm`, `conv`,
    `coupling`.

    Shapes: `x` is `[B, H, W, C]`, `C >= 2`; returns `(y [B, H, W, C], log_det [B])`.

    #### Example

    ```python
    step = GlowStep(hidden_channels=512)
    y, log_det = step(tf.random.normal([8, 16, 16, 12]), training=True)
    x_back = step.inverse(y)
    ```
    """ + _REFERENCE

    def __init__(self, hidden_channels=512, lu=True, scale="sigmoid", seed=None, **kwargs):
        """Creates a Glow step.

        Args:
            hidden_channels: Python `int`, the coupling conditioner's width.
            lu: Python `bool`, LU-decomposed 1x1 convolution.
            scale: the coupling's scale, `'sigmoid'` (Glow's affine), `'tanh'` or `'additive'`.
            seed: Python `int` seed of the 1x1 convolution's initial rotation, or `None`.
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(**kwargs)
        self.hidden_channels = int(hidden_channels)
        self.lu = bool(lu)
        self.scale = scale
        self.seed = seed
        self.actnorm = ActNorm(dtype=self.network_policy, name="actnorm")
        self.conv = InvertibleConv1x1(lu=lu, seed=seed, dtype=self.network_policy, name="conv")
        self.coupling = AffineCoupling(mask="channel", scale=scale,
                                       hidden_channels=hidden_channels, dtype=self.network_policy,
                                       name="coupling")

    def _parts(self):
        return (self.actnorm, self.conv, self.coupling)

    def build(self, input_shape):
        for layer in self._parts():
            layer.build(tuple(input_shape))

    def call(self, x, training=None):
        log_det = 0.
        for layer in self._parts():
            x, layer_log_det = layer(x, training=training)
            log_det += layer_log_det
        return x, log_det

    def inverse(self, y):
        y = tf.cast(y, self.compute_dtype)
        self._build_from_output(y.shape)
        for layer in reversed(self._parts()):
            y = layer.inverse(y)
        return y

    def bijector(self):
        # tfb.Chain applies its last bijector first.
        return tfb.Chain([layer.bijector() for layer in reversed(self._parts())])

    def freeze_inverse(self):
        self.conv.freeze_inverse()

    def unfreeze_inverse(self):
        self.conv.unfreeze_inverse()

    def get_config(self):
        return {**super().get_config(), "hidden_channels": self.hidden_channels, "lu": self.lu,
                "scale": self.scale, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfdgm")
class GlowFlow(MultiScaleFlow):
    """Glow's multi-scale architecture: `L` levels of squeeze and `K` steps, learned priors.

    ```none
    for l = 1..L:  h <- squeeze(h);  h <- step_K(...step_1(h))
                   if l < L:  (h, z_l) <- split(h),   p(z_l | h) = N(mean_l(h), std_l(h)^2)
    z_L = h,       p(z_L) = N(mean_top, std_top^2)   (learned per channel, or N(0, I))
    ```

    The split priors' `(mean, log std)` come from a zero-initialized 3x3 convolution of the
    kept half (`ConditionalGaussianPrior`), starting at `N(0, exp(split_prior_log_std)^2 I)`;
    the top prior's are learned per channel (`LearnedGaussianPrior`, `learn_top=True`) from
    `N(0, I)` (Kingma & Dhariwal, 2018, section 3 and the reference code's `split2d` and
    `learntop`, where the split priors also start at `N(0, I)`: `split_prior_log_std=0`). For
    `[32, 32, 3]` images the paper uses `L = 3`, `K = 32`, width 512. Temperature sampling (section 5.4) is
    `sample_from_noise(eps, temperature)`.

    The API (`log_prob_parts`, `encode`, `decode`, `encode_to_noise`, `sample_from_noise`,
    `noise_dim`, `latent_shapes`, `freeze_inverses`) is `MultiScaleFlow`'s.

    Shapes: `x` is `[B, H, W, C]` with `H` and `W` divisible by `2^L`; latent `l < L` is
    `[B, H / 2^l, W / 2^l, 2^l C]` and the top one `[B, H / 2^L, W / 2^L, 2^(L+1) C]` (for
    `[32, 32, 3]`, `L = 3`: `[16, 16, 6]`, `[8, 8, 12]`, `[4, 4, 48]`).

    #### Example

    ```python
    flow = GlowFlow((32, 32, 3), num_levels=3, num_steps=32, hidden_channels=512)
    log_prob_latents, log_det = flow(x, training=True)    # x [B, 32, 32, 3], dequantized
    samples = flow.sample_from_noise(tf.random.normal([16, flow.noise_dim]), temperature=0.7)
    ```
    """ + _REFERENCE

    def __init__(self, image_shape, num_levels=3, num_steps=32, hidden_channels=512, lu=True,
                 scale="sigmoid", learn_top=True, learn_split_priors=True,
                 split_prior_log_std=0.0, seed=None, **kwargs):
        """Creates a Glow flow.

        Args:
            image_shape: `(H, W, C)`.
            num_levels: Python `int` `L >= 1`.
            num_steps: Python `int` `K >= 1`, steps per level.
            hidden_channels: Python `int`, the couplings' width.
            lu: Python `bool`, LU-decomposed 1x1 convolutions.
            scale: the couplings' scale: `'sigmoid'` (affine), `'additive'` or `'tanh'`.
            learn_top: Python `bool`, learned top prior (else `N(0, I)`).
            learn_split_priors: Python `bool`, learned conditional split priors (else
                `N(0, I)`).
            split_prior_log_std: Python `float`, the split priors' log-std at initialization.
            seed: Python `int`: the 1x1 convolutions' rotations use `seed + k`; or `None`.
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(image_shape, **kwargs)
        num_levels = int(num_levels)
        self.num_steps = int(num_steps)
        self.hidden_channels = int(hidden_channels)
        self.lu = bool(lu)
        self.scale = scale
        self.learn_top = bool(learn_top)
        self.learn_split_priors = bool(learn_split_priors)
        self.split_prior_log_std = float(split_prior_log_std)
        self.seed = seed
        height, width, channels = self.image_shape
        factor = 2 ** num_levels
        if num_levels < 1 or self.num_steps < 1 or height % factor or width % factor:
            raise ValueError("Glow needs L >= 1, K >= 1 and H, W divisible by 2^L; got L={}, "
                             "K={}, image_shape={}.".format(num_levels, num_steps,
                                                            self.image_shape))
        levels, priors = [], []
        for level in range(num_levels):
            steps = [Squeeze(dtype=self.network_policy, name="squeeze_{}".format(level))]
            for k in range(self.num_steps):
                index = level * self.num_steps + k
                steps.append(GlowStep(
                    hidden_channels, lu=lu, scale=scale,
                    seed=None if seed is None else seed + index, dtype=self.network_policy,
                    name="step_{}_{}".format(level, k)))
            levels.append(steps)
            channels *= 4
            if level < num_levels - 1:
                if self.learn_split_priors:
                    priors.append(ConditionalGaussianPrior(
                        channels // 2, initial_log_std=self.split_prior_log_std,
                        dtype=self.network_policy,
                        name="split_prior_{}".format(level)))
                channels -= channels // 2
        top = (LearnedGaussianPrior(dtype=self.network_policy, name="top_prior") if learn_top
               else None)
        self._set_levels(levels, priors if self.learn_split_priors else None, top)

    def get_config(self):
        return {**super().get_config(), "num_levels": self.num_levels,
                "num_steps": self.num_steps, "hidden_channels": self.hidden_channels,
                "lu": self.lu, "scale": self.scale, "learn_top": self.learn_top,
                "learn_split_priors": self.learn_split_priors,
                "split_prior_log_std": self.split_prior_log_std, "seed": self.seed}
