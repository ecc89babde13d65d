"""Affine coupling bijector for images (Dinh et al., 2017; Kingma & Dhariwal, 2018)."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["AffineCoupling", "MASKS", "SCALES", "checkerboard_mask", "channel_split"]

MASKS = ("checkerboard", "channel")
SCALES = ("sigmoid", "tanh", "additive")


def checkerboard_mask(height, width, reverse=False, dtype=np.float32):
    """Returns RealNVP's checkerboard mask `b` `[H, W, 1]`: 1 where `(h + w)` is even.

    `reverse=True` gives `1 - b`. Positions where `b = 1` condition and are left unchanged.
    """
    mask = (np.add.outer(np.arange(height), np.arange(width)) % 2 == int(bool(reverse)))
    return mask.astype(dtype)[:, :, np.newaxis]


def channel_split(channels, reverse=False):
    """Returns `(conditioning, transformed)` channel slices of a channel coupling.

    The split point is `k = ceil(C / 2)`: the first `k` channels condition the last
    `C - k` (Glow's split, and RealNVP's channel mask), or with `reverse=True` the last `C - k`
    condition the first `k`. Odd `C` works; `C >= 2` is needed.
    """
    if channels < 2:
        raise ValueError("A channel coupling needs at least 2 channels, got {}; squeeze first "
                         "or use the checkerboard mask.".format(channels))
    k = (channels + 1) // 2
    first, last = slice(0, k), slice(k, channels)
    return (last, first) if reverse else (first, last)


class AffineCoupling(tfb.Bijector):
    """Affine coupling layer on images, with a checkerboard or a channel mask.

    Split `x [..., H, W, C]` into a conditioning part `x_a` and a transformed part `x_b`:

    ```none
    (t, h) = conditioner(x_a)
    y_a = x_a,    y_b = x_b * exp(l(h)) + t
    log|det dy/dx| = sum over the transformed elements of l(h)
    inverse: x_b = (y_b - t) * exp(-l(h)),   with (t, h) = conditioner(y_a)
    ```

    Both directions take one pass of the conditioner since `y_a = x_a` (Dinh et al., 2017).

    Masks (`mask`, `reverse_mask`):

    * `'checkerboard'` (RealNVP): `b[h, w] = 1` where `h + w` is even (odd with `reverse_mask`).
      The conditioner gets `b * x` `[..., H, W, C]` and returns `t`, `h` of that same shape;
      only the positions with `b = 0` are transformed.
    * `'channel'`: the first `k = ceil(C / 2)` channels condition the other `C - k` (with
      `reverse_mask`, the last `C - k` condition the first `k`). The conditioner gets `x_a`
      `[..., H, W, C_a]` and returns `t`, `h` `[..., H, W, C_b]`. With `reverse_mask=False` this
      is Glow's split ("the first half conditions the second"); alternating `reverse_mask` is
      RealNVP's channel-wise masking, written as a split (the conditioner sees only `x_a`
      instead of `x` times a binary mask: the same function class, half the input).

    Scales (`scale`), all bounded so that a step cannot blow up:

    * `'sigmoid'` (Glow): `exp(l) = sigmoid(h + 2)`, in `(0, 1)`; with `h = 0` it is
      `sigmoid(2) = 0.88`.
    * `'tanh'` (RealNVP): `l = log_scale_factor * tanh(h)`, `|l| <= |log_scale_factor|`
      (a learned per-channel factor in RealNVP).
    * `'additive'` (NICE, Dinh et al., 2015): `l = 0`, volume preserving; the conditioner may
      return `t` alone.

    Keyword arguments given to `forward`, `inverse` and the log-det methods are passed on to the
    conditioner (e.g. a class label). `forward_and_log_det` and `inverse_and_log_det` give the
    map and its log-det from a single conditioner pass (TFP's methods each call it once).

    Shapes: `x` is `[..., H, W, C]` with static `H, W, C` (`forward_min_event_ndims = 3`); the
    log-det is `[...]`. The bijector holds no weights: pass a Keras network as
    `lambda x_a, **kw: net(x_a)`, built inside the owning layer's `call()`
    (`tfdgm.flows.AffineCoupling`).

    #### Example

    ```python
    net = keras.layers.Conv2D(2 * 1, 3, padding="same")      # C = 3: 2 conditioning, 1 out
    def conditioner(x_a):
        out = net(x_a)
        return out[..., :1], out[..., 1:]                       # (t, h)
    coupling = AffineCoupling(conditioner, mask="channel", scale="sigmoid")
    x = tf.random.normal([8, 4, 4, 3])
    y, fldj = coupling.forward_and_log_det(x)                   # [8, 4, 4, 3], [8]
    ```

    #### References

    [1]: Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
         In _International Conference on Learning Representations_, 2017.
         https://arxiv.org/abs/1605.08803

    [2]: Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
         Convolutions. In _Neural Information Processing Systems_, 2018.
         https://arxiv.org/abs/1807.03039

    [3]: Laurent Dinh, David Krueger and Yoshua Bengio. NICE: Non-linear Independent Components
         Estimation. In _International Conference on Learning Representations Workshop_, 2015.
         https://arxiv.org/abs/1410.8516
    """

    def __init__(self, conditioner, mask="channel", reverse_mask=False, scale="sigmoid",
                 log_scale_factor=1., validate_args=False, name="affine_coupling"):
        """Creates an affine coupling.

        Args:
            conditioner: Python `callable`, `conditioner(x_a, **kwargs) -> (t, h)` (or `t` alone
                for `scale='additive'`); shapes as in the class docstring.
            mask: `'checkerboard'` or `'channel'`.
            reverse_mask: Python `bool`, swaps the conditioning and transformed parts.
            scale: `'sigmoid'`, `'tanh'` or `'additive'`.
            log_scale_factor: float `Tensor` broadcastable to `h` (e.g. `[C_b]`), the bound of
                the `'tanh'` log-scale; ignored by the other scales.
            validate_args: Python `bool`, unused.
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        if mask not in MASKS:
            raise ValueError("`mask` must be one of {}, got {!r}.".format(MASKS, mask))
        if scale not in SCALES:
            raise ValueError("`scale` must be one of {}, got {!r}.".format(SCALES, scale))
        if not callable(conditioner):
            raise TypeError("`conditioner` must be callable, got {!r}.".format(conditioner))
        with tf.name_scope(name) as name:
            self._conditioner = conditioner
            self._mask = mask
            self._reverse_mask = bool(reverse_mask)
            self._scale = scale
            self._log_scale_factor = log_scale_factor
            super().__init__(
                forward_min_event_ndims=3,
                validate_args=validate_args,
                parameters=parameters,
                name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict()

    @property
    def conditioner(self):
        return self._conditioner

    @property
    def mask(self):
        return self._mask

    @property
    def reverse_mask(self):
        return self._reverse_mask

    @property
    def scale(self):
        return self._scale

    def _shift_and_log_scale(self, x_a, **kwargs):
        out = self._conditioner(x_a, **kwargs)
        if self._scale == "additive":
            shift = out if tf.is_tensor(out) else out[0]
            return shift, None
        shift, raw = out
        if self._scale == "sigmoid":
            return shift, tf.math.log_sigmoid(raw + tf.constant(2., raw.dtype))
        factor = tf.cast(self._log_scale_factor, raw.dtype)
        return shift, factor * tf.tanh(raw)

    def _checkerboard(self, x):
        height, width = x.shape[-3], x.shape[-2]
        if height is None or width is None:
            raise ValueError("The checkerboard mask needs static H and W; got shape {}."
                             .format(x.shape))
        return tf.constant(checkerboard_mask(height, width, self._reverse_mask), x.dtype)

    def _channels(self, x):
        channels = x.shape[-1]
        if channels is None:
            raise ValueError("A channel coupling needs a static C; got shape {}.".format(x.shape))
        return channel_split(channels, self._reverse_mask)

    def _transform(self, x, direction, **kwargs):
        """Returns `(y, log|det dy/dx|)` (`direction=1`) or `(x, log|det dx/dy|)` (`-1`)."""
        if self._mask == "checkerboard":
            b = self._checkerboard(x)
            shift, log_scale = self._shift_and_log_scale(b * x, **kwargs)
            if direction > 0:
                moved = x * tf.exp(log_scale) + shift if log_scale is not None else x + shift
            else:
                moved = ((x - shift) * tf.exp(-log_scale) if log_scale is not None
                         else x - shift)
            out = b * x + (1. - b) * moved
            log_det = (tf.zeros(tf.shape(x)[:-3], x.dtype) if log_scale is None
                       else direction * tf.reduce_sum((1. - b) * log_scale, axis=[-3, -2, -1]))
            return out, log_det
        cond, moved = self._channels(x)
        x_a, x_b = x[..., cond], x[..., moved]
        shift, log_scale = self._shift_and_log_scale(x_a, **kwargs)
        if log_scale is None:
            y_b = x_b + direction * shift
            log_det = tf.zeros(tf.shape(x)[:-3], x.dtype)
        else:
            y_b = (x_b * tf.exp(log_scale) + shift if direction > 0
                   else (x_b - shift) * tf.exp(-log_scale))
            log_det = direction * tf.reduce_sum(log_scale, axis=[-3, -2, -1])
        parts = (y_b, x_a) if self._reverse_mask else (x_a, y_b)
        return tf.concat(parts, axis=-1), log_det

    def _forward(self, x, **kwargs):
        return self._transform(x, 1, **kwargs)[0]

    def _inverse(self, y, **kwargs):
        return self._transform(y, -1, **kwargs)[0]

    def _forward_log_det_jacobian(self, x, **kwargs):
        return self._transform(x, 1, **kwargs)[1]

    def _inverse_log_det_jacobian(self, y, **kwargs):
        return self._transform(y, -1, **kwargs)[1]

    def forward_and_log_det(self, x, **kwargs):
        """Returns `(y, log|det dy/dx|)` from one conditioner pass: `[..., H, W, C]`, `[...]`."""
        with tf.name_scope(self.name):
            return self._transform(tf.convert_to_tensor(x, dtype_hint=tf.float32, name="x"), 1,
                                   **kwargs)

    def inverse_and_log_det(self, y, **kwargs):
        """Returns `(x, log|det dx/dy|)` from one conditioner pass: `[..., H, W, C]`, `[...]`."""
        with tf.name_scope(self.name):
            return self._transform(tf.convert_to_tensor(y, dtype_hint=tf.float32, name="y"), -1,
                                   **kwargs)
