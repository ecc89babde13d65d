"""Quantization, dequantization and bits per dimension of 8-bit images.

A density flow models a continuous density `p(y)` on `[0, 1]^D`; the data are discrete. With
`K = 2^n_bits` levels, an image `x` (float32 `k / 255`) is first reduced to `n_bits` (Glow,
Kingma & Dhariwal 2018, section 5):

```none
x_q = floor(255 x / 2^(8 - n_bits))  in {0, ..., K - 1}^D
```

and dequantized, `y = (x_q + u) / K` with `u in [0, 1)^D`. For any density `q(u | x)` on the
unit cube, Jensen's inequality gives a lower bound on the discrete log-likelihood
(Theis et al. 2016; Ho et al. 2019, section 3.1):

```none
log P(x_q) = log int_[0,1)^D p((x_q + u) / K) K^-D du
           >= E_{u ~ q(u | x)} [ log p(y) - log q(u | x) ] - D log K
```

* uniform dequantization: `q = U[0, 1)^D`, `log q = 0`;
* variational dequantization (Flow++, Ho et al. 2019): `u = sigmoid(g(eps; x))`,
  `eps ~ N(0, I)`, with `g` a conditional flow whose conditioner sees `x`, and
  `log q(u | x) = log N(eps; 0, I) - log|det dg/deps| - sum [log sigmoid(v) + log sigmoid(-v)]`
  at `v = g(eps; x)` (the sigmoid's log-det enters too).

Bits per dimension of that bound (the `D log K` is the bin width on the `[0, 1]` scale):

```none
bpd = -(log p(y) - log q(u | x) - D log K) / (D log 2)
```

so a density that is exactly uniform on `[0, 1]^D` scores exactly `n_bits` bits/dim.

#### References

[1]: Jonathan Ho, Xi Chen, Aravind Srinivas, Yan Duan and Pieter Abbeel. Flow++: Improving
     Flow-Based Generative Models with Variational Dequantization and Architecture Design. In
     _International Conference on Machine Learning_, 2019. https://arxiv.org/abs/1902.00275

[2]: Lucas Theis, Aaron van den Oord and Matthias Bethge. A note on the evaluation of generative
     models. In _International Conference on Learning Representations_, 2016.
     https://arxiv.org/abs/1511.01844
"""

import keras
import numpy as np
import tensorflow as tf

from tfdgm.flows import CouplingConvNet
from tfdgm.precision import FullPrecision

__all__ = ["VariationalDequantizer", "bits_per_dim", "quantize"]

_HALF_LOG_TWO_PI = 0.5 * np.log(2. * np.pi)


def quantize(x, n_bits=8):
    """`x_q = floor(255 x / 2^(8 - n_bits))`, float `[B, ...]` in `{0, ..., 2^n_bits - 1}`.

    Args:
        x: float `Tensor` of pixels `k / 255`, `k in {0, ..., 255}`.
        n_bits: Python `int` in `1..8`.
    """
    x = tf.convert_to_tensor(x)
    levels = tf.round(x * 255.)
    return tf.floor(levels / float(2 ** (8 - int(n_bits))))


def bits_per_dim(log_likelihood, num_dims):
    """`-log_likelihood / (D log 2)`: nats of a discrete log-likelihood (or bound) to bits/dim."""
    return -log_likelihood / (float(num_dims) * np.log(2.))


def _checkerboard(height, width, parity):
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return ((rows + cols) % 2 == parity).astype(np.float32)[:, :, np.newaxis]


@keras.saving.register_keras_serializable(package="tfdgm")
class VariationalDequantizer(FullPrecision, keras.layers.Layer):
    """Flow++'s variational dequantization noise `u ~ q(u | x)` on `[0, 1)^D` with its density.

    ```none
    c    = relu(conv3x3(x_q / K - 1/2))                     context, [B, H, W, F]
    v_0  = eps ~ N(0, I)
    v_k  = m_k v_{k-1} + (1 - m_k) [v_{k-1} exp(s_k) + t_k]    m_k checkerboard, alternating
           (t_k, s_raw) = net_k(m_k v_{k-1}, c),  s_k = c_s tanh(s_raw / c_s)
    u    = sigmoid(v_K)
    log q(u | x) = log N(eps) - sum_k sum (1 - m_k) s_k
                   - sum [log sigmoid(v_K) + log sigmoid(-v_K)]
    ```

    `g` is a stack of `num_steps` conditional affine couplings (Ho et al. 2019, section 3.1, with
    `CouplingConvNet` conditioners instead of the paper's attention blocks); each conditioner
    sees the untouched half of `v` and the context `c` of the image. The conditioners' last
    layers start at zero, so `q` starts as a logit-normal `u = sigmoid(eps)`.

    Shapes: `x_q` `[B, H, W, C]` (levels), `eps` `[B, H, W, C]`; returns
    `(u [B, H, W, C], log_q [B])`.

    #### Example

    ```python
    dequantizer = VariationalDequantizer(num_steps=4, hidden_channels=32)
    x_q = quantize(images, n_bits=8)                              # [B, 28, 28, 1]
    u, log_q = dequantizer(x_q, tf.random.normal(tf.shape(x_q)), levels=256)
    y = (x_q + u) / 256.
    ```

    #### References

    [1]: Jonathan Ho, Xi Chen, Aravind Srinivas, Yan Duan and Pieter Abbeel. Flow++: Improving
         Flow-Based Generative Models with Variational Dequantization and Architecture Design.
         In _International Conference on Machine Learning_, 2019.
         https://arxiv.org/abs/1902.00275
    """

    def __init__(self, num_steps=4, hidden_channels=32, log_scale_bound=3., **kwargs):
        """Creates the dequantizer.

        Args:
            num_steps: Python `int >= 1`, conditional couplings.
            hidden_channels: Python `int`, width of the context net and the conditioners.
            log_scale_bound: Python `float` `c_s` of the soft clamp of every log-scale.
            **kwargs: passed to `keras.layers.Layer`.
        """
        super().__init__(**kwargs)
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps!r}.")
        self.num_steps = int(num_steps)
        self.hidden_channels = int(hidden_channels)
        self.log_scale_bound = float(log_scale_bound)
        self.context = keras.layers.Conv2D(self.hidden_channels, 3, padding="same",
                                           activation="relu", dtype=self.network_policy,
                                           name="context")
        self.conditioners = []

    def build(self, input_shape):
        *_, height, width, channels = input_shape
        self.context.build(tuple(input_shape))
        self.conditioners = [
            CouplingConvNet(2 * channels, self.hidden_channels, dtype=self.network_policy,
                            name=f"conditioner_{k}") for k in range(self.num_steps)]
        for net in self.conditioners:
            net.build((None, height, width, channels + self.hidden_channels))
        self._masks = [_checkerboard(height, width, k % 2) for k in range(self.num_steps)]

    def call(self, x_q, eps, levels):
        """Returns `(u, log q(u | x))` for the levels `x_q` and the noise `eps`."""
        x_q = tf.convert_to_tensor(x_q, self.compute_dtype)
        if not self.built:
            self.build(x_q.shape)
        eps = tf.cast(eps, self.compute_dtype)
        # The context (a network output, in the run's compute dtype) only feeds the
        # conditioners; their outputs are cast back to full precision for the couplings.
        context = self.context(x_q / float(levels) - 0.5)
        channels = x_q.shape[-1]
        bound = self.log_scale_bound
        v = eps
        log_q = tf.reduce_sum(-0.5 * tf.square(eps) - _HALF_LOG_TWO_PI, axis=[1, 2, 3])
        for mask, net in zip(self._masks, self.conditioners):
            mask = tf.constant(mask, v.dtype)
            out = self.full_precision(net(tf.concat([tf.cast(v * mask, context.dtype), context],
                                                    axis=-1)))
            shift, raw = out[..., :channels], out[..., channels:]
            log_scale = (1. - mask) * bound * tf.tanh(raw / bound)
            v = v * tf.exp(log_scale) + (1. - mask) * shift
            log_q -= tf.reduce_sum(log_scale, axis=[1, 2, 3])
        log_q -= tf.reduce_sum(tf.math.log_sigmoid(v) + tf.math.log_sigmoid(-v), axis=[1, 2, 3])
        return tf.sigmoid(v), log_q

    def get_config(self):
        return {**super().get_config(), "num_steps": self.num_steps,
                "hidden_channels": self.hidden_channels,
                "log_scale_bound": self.log_scale_bound}
