"""The multi-scale flow API shared by RealNVP and Glow (Dinh et al., 2017)."""

import keras
import numpy as np
import tensorflow as tf

from tfdgm.flows.base import gaussian_log_prob
from tfdgm.precision import FullPrecision

__all__ = ["MultiScaleFlow"]


class MultiScaleFlow(FullPrecision, keras.layers.Layer):
    """A multi-scale normalizing flow on images: levels of `FlowLayer`s with factored-out halves.

    ```none
    level l = 1..L:   h <- f_l(h)                       (a list of FlowLayers, e.g. squeeze, steps)
                      if l < L:  h, z_l <- h[..., :C - C//2], h[..., C - C//2:]   (factor out)
    top:              z_L = h
    log p(x) = sum_l log p(z_l | h_l) + log p(z_L) + sum log|det df/dh|
    ```

    Each factored-out `z_l` has a Gaussian prior `N(mean_l, diag(std_l)^2)`: standard normal
    (RealNVP), or with `(mean_l, log std_l)` from the kept half `h_l` (Glow's learned split
    prior); the top `z_L` likewise (standard or learned). Factoring out halves the work of each
    deeper level (Dinh et al., 2017, section 3.6).

    API (all tensors `[B, ...]`; `x` is `[B, H, W, C]` of `image_shape`, float of the layer's
    dtype; nothing random happens inside, so every method can be exported):

    * `flow(x, training=None)` = `log_prob_parts(x, training)`: `(log_prob_latents [B],
      log_det [B])`, `log p(x) = log_prob_latents + log_det` (nats, density of `x` itself:
      preprocessing such as dequantization or `tfdgm.bijectors.Logit` is the caller's).
      `training=True` lets ActNorm layers initialize from this batch.
    * `log_prob(x, training=None) -> [B]`.
    * `encode(x) -> [z_1, ..., z_L]`, the raw latents, `z_l` `[B, *latent_shapes[l]]`;
      `decode(zs) -> x` is its exact inverse.
    * `encode_to_noise(x) -> eps [B, noise_dim]`: the latents standardized by their priors,
      `eps_l = (z_l - mean_l) / std_l`, flattened (row-major) and concatenated in the order of
      `encode`; `sample_from_noise(eps, temperature=1.) -> x` is its inverse at `T = 1`.
    * `sample_from_noise(eps, temperature)`: `eps [B, noise_dim]` standard-normal noise; each
      latent is drawn as `z_l = mean_l + std_l * T * eps_l` (reduced-temperature sampling: the
      noise is `N(0, T^2 I)`), top first, then the split priors level by level, then `x`.
    * `noise_dim` (`H * W * C`), `latent_shapes` (list of `(h, w, c)`, `encode`'s order).
    * `freeze_inverses()` / `unfreeze_inverses()`: see `tfdgm.flows.InvertibleConv1x1`; call
      `freeze_inverses()` before tracing a TFLite sampler so that it needs builtins only.

    Subclasses create their layers in `__init__` (with `dtype=self.network_policy`) and call
    `_set_levels`. A density layer (`tfdgm.precision.FullPrecision`): under a mixed-precision
    policy the latents, priors and log-dets are float32, the conditioners compute in the low
    precision.
    """

    def __init__(self, image_shape, **kwargs):
        """Creates the flow.

        Args:
            image_shape: `(H, W, C)` of the images.
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError("`image_shape` must be (H, W, C), got {!r}.".format(image_shape))

    def _set_levels(self, levels, split_priors, top_prior):
        """Sets the architecture.

        Args:
            levels: list of `L` lists of `FlowLayer`s.
            split_priors: list of `L - 1` layers `kept -> (mean, log_std)`, or `None` for
                standard-normal factored-out latents.
            top_prior: a layer `z -> (mean, log_std)`, or `None` for a standard normal.
        """
        self.flow_layers = [layer for level in levels for layer in level]
        self._level_sizes = [len(level) for level in levels]
        self.split_priors = list(split_priors) if split_priors is not None else []
        if self.split_priors and len(self.split_priors) != len(levels) - 1:
            raise ValueError("Need one split prior per level but the last.")
        self.top_prior = top_prior
        shape = (None, *self.image_shape)
        self._kept_shapes, self._latent_shapes = [], []
        for i, level in enumerate(levels):
            for layer in level:
                shape = layer.compute_output_shape(shape)
            if i < len(levels) - 1:
                channels = shape[-1]
                if channels < 2:
                    raise ValueError("Level {} ends with {} channel(s): nothing to factor out."
                                     .format(i, channels))
                kept = channels - channels // 2
                self._latent_shapes.append((shape[1], shape[2], channels // 2))
                shape = (*shape[:-1], kept)
                self._kept_shapes.append(shape)
        self._latent_shapes.append(tuple(shape[1:]))

    @property
    def num_levels(self):
        return len(self._level_sizes)

    @property
    def latent_shapes(self):
        """The shapes `(h, w, c)` of the latents, in the order of `encode`."""
        return list(self._latent_shapes)

    @property
    def noise_dim(self):
        """`H * W * C`, the size of the flat noise `sample_from_noise` takes."""
        return int(np.prod(self.image_shape))

    def _levels(self):
        start = 0
        for size in self._level_sizes:
            yield self.flow_layers[start:start + size]
            start += size

    def build(self, input_shape=None):
        if input_shape is not None and tuple(input_shape[1:]) != self.image_shape:
            raise ValueError("{} was created for images of shape {}, got input shape {}."
                             .format(self.name, self.image_shape, tuple(input_shape)))
        shape = (None, *self.image_shape)
        for i, level in enumerate(self._levels()):
            for layer in level:
                if not layer.built:
                    layer.build(shape)
                shape = layer.compute_output_shape(shape)
            if i < self.num_levels - 1:
                shape = self._kept_shapes[i]
                if self.split_priors:
                    self.split_priors[i].build(shape)
        if self.top_prior is not None:
            self.top_prior.build(shape)

    def _ensure_built(self):
        if not self.built:
            self.build((None, *self.image_shape))

    def _split_params(self, i, kept):
        if self.split_priors:
            return self.split_priors[i](kept)
        zero = tf.zeros([], kept.dtype)
        return zero, zero

    def _top_params(self, z):
        if self.top_prior is not None:
            return self.top_prior(z)
        zero = tf.zeros([], z.dtype)
        return zero, zero

    def _encode(self, x, training=None):
        """Returns `(zs, eps, log_prob_latents, log_det)` in one pass."""
        self._ensure_built()
        h = tf.cast(x, self.compute_dtype)
        log_det = tf.zeros(tf.shape(h)[:1], h.dtype)
        log_prior = tf.zeros(tf.shape(h)[:1], h.dtype)
        zs, eps = [], []

        def factor(z, mean, log_std):
            e = (z - mean) * tf.exp(-log_std)
            zs.append(z)
            eps.append(e)
            return gaussian_log_prob(e, log_std)

        for i, level in enumerate(self._levels()):
            for layer in level:
                h, layer_log_det = layer(h, training=training)
                log_det += layer_log_det
            if i < self.num_levels - 1:
                kept_channels = self._kept_shapes[i][-1]
                h, z = h[..., :kept_channels], h[..., kept_channels:]
                log_prior += factor(z, *self._split_params(i, h))
        log_prior += factor(h, *self._top_params(h))
        return zs, eps, log_prior, log_det

    def call(self, x, training=None):
        return self.log_prob_parts(x, training=training)

    def log_prob_parts(self, x, training=None):
        """Returns `(log_prob_latents [B], log_det [B])`; their sum is `log p(x)`."""
        _, _, log_prior, log_det = self._encode(x, training)
        return log_prior, log_det

    def log_prob(self, x, training=None):
        """Returns `log p(x)` `[B]` in nats."""
        log_prior, log_det = self.log_prob_parts(x, training)
        return log_prior + log_det

    def encode(self, x):
        """Returns the raw latents `[z_1, ..., z_L]`, `z_l` `[B, *latent_shapes[l]]`."""
        return self._encode(x)[0]

    def encode_to_noise(self, x):
        """Returns the standardized latents, flattened and concatenated: `[B, noise_dim]`."""
        eps = self._encode(x)[1]
        return tf.concat([tf.reshape(e, [tf.shape(e)[0], -1]) for e in eps], axis=-1)

    def _decode(self, pieces, from_noise, temperature=1.):
        self._ensure_built()
        pieces = [tf.cast(p, self.compute_dtype) for p in pieces]
        if len(pieces) != self.num_levels:
            raise ValueError("Expected {} latents, got {}.".format(self.num_levels, len(pieces)))
        temperature = tf.cast(temperature, self.compute_dtype)

        def draw(noise, mean, log_std):
            return mean + tf.exp(log_std) * (temperature * noise)

        h = pieces[-1]
        if from_noise:
            h = draw(h, *self._top_params(h))
        levels = list(self._levels())
        for i in reversed(range(self.num_levels)):
            if i < self.num_levels - 1:
                z = pieces[i]
                if from_noise:
                    z = draw(z, *self._split_params(i, h))
                h = tf.concat([h, z], axis=-1)
            for layer in reversed(levels[i]):
                h = layer.inverse(h)
        return h

    def decode(self, zs):
        """Returns `x` `[B, H, W, C]` from the raw latents of `encode`."""
        return self._decode(list(zs), from_noise=False)

    def sample_from_noise(self, eps, temperature=1.):
        """Returns samples `x` `[B, H, W, C]` from standard-normal noise `eps [B, noise_dim]`.

        Args:
            eps: float `Tensor` `[B, noise_dim]`, e.g. `tf.random.normal`.
            temperature: float scalar `T`: every latent is drawn as `mean + std * T * eps`.
        """
        eps = tf.cast(eps, self.compute_dtype)
        pieces, start = [], 0
        for shape in self._latent_shapes:
            size = int(np.prod(shape))
            pieces.append(tf.reshape(eps[:, start:start + size], [-1, *shape]))
            start += size
        return self._decode(pieces, from_noise=True, temperature=temperature)

    def freeze_inverses(self):
        """Makes every `inverse` use TFLite builtins only (constants of the current weights)."""
        self._ensure_built()
        for layer in self.flow_layers:
            layer.freeze_inverse()

    def unfreeze_inverses(self):
        """Undoes `freeze_inverses` (do it before training again)."""
        for layer in self.flow_layers:
            layer.unfreeze_inverse()

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape)}
