"""RealNVP's multi-scale architecture (Dinh et al., 2017)."""

import keras

from tfdgm.flows.actnorm import ActNorm
from tfdgm.flows.base import Squeeze
from tfdgm.flows.coupling import AffineCoupling
from tfdgm.flows.multiscale import MultiScaleFlow

__all__ = ["RealNVPFlow"]


@keras.saving.register_keras_serializable(package="tfdgm")
class RealNVPFlow(MultiScaleFlow):
    """RealNVP: checkerboard couplings, squeeze, channel couplings, factor out half, per scale.

    ```none
    for scale s = 1..S-1:
        h <- 3 checkerboard couplings (masks alternating)
        h <- squeeze(h)                                   [H, W, C] -> [H/2, W/2, 4C]
        h <- 3 channel couplings (masks alternating)
        (h, z_s) <- split(h)                              factor out half the channels
    last scale:  h <- num_final_couplings checkerboard couplings (alternating);  z_S = h
    every z ~ N(0, I)
    ```

    (Dinh et al., 2017, section 3.6.) Couplings use RealNVP's bounded scale
    `log_scale_factor * tanh(h)` by default and the small `CouplingConvNet` conditioner instead
    of the paper's residual networks; there is no batch normalization (its statistics would
    make the density depend on the batch). `actnorm=True` puts an `ActNorm` before every
    coupling instead, a batch-independent normalization with data-dependent initialization.

    The API (`log_prob_parts`, `encode`, `decode`, `encode_to_noise`, `sample_from_noise`,
    `noise_dim`, `latent_shapes`) is `MultiScaleFlow`'s; the temperature scales every latent's
    standard-normal noise.

    Shapes: `x` is `[B, H, W, C]` with `H`, `W` divisible by `2^(S-1)`; for `[32, 32, 3]`,
    `S = 3`: latents `[16, 16, 6]`, `[8, 8, 12]`, `[8, 8, 12]`.

    #### Example

    ```python
    flow = RealNVPFlow((28, 28, 1), num_scales=3, hidden_channels=64)
    y = tfdgm.bijectors.Logit(1e-6).forward(x)            # x: dequantized pixels in [0, 1]
    log_prob_latents, log_det = flow(y, training=True)
    ```

    #### References

    [1]: Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
         In _International Conference on Learning Representations_, 2017.
         https://arxiv.org/abs/1605.08803
    """

    def __init__(self, image_shape, num_scales=2, hidden_channels=64, num_final_couplings=4,
                 scale="tanh", actnorm=False, **kwargs):
        """Creates a RealNVP flow.

        Args:
            image_shape: `(H, W, C)`.
            num_scales: Python `int` `S >= 1`.
            hidden_channels: Python `int`, the couplings' width.
            num_final_couplings: Python `int`, checkerboard couplings of the last scale.
            scale: the couplings' scale: `'tanh'` (RealNVP), `'sigmoid'` or `'additive'`.
            actnorm: Python `bool`, an `ActNorm` before every coupling.
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(image_shape, **kwargs)
        self.num_scales = int(num_scales)
        self.hidden_channels = int(hidden_channels)
        self.num_final_couplings = int(num_final_couplings)
        self.scale = scale
        self.actnorm = bool(actnorm)
        height, width, _ = self.image_shape
        factor = 2 ** (self.num_scales - 1)
        if self.num_scales < 1 or height % factor or width % factor:
            raise ValueError("RealNVP needs S >= 1 and H, W divisible by 2^(S-1); got S={}, "
                             "image_shape={}.".format(num_scales, self.image_shape))
        levels = []
        for s in range(self.num_scales):
            last = s == self.num_scales - 1
            layers = []
            for k in range(self.num_final_couplings if last else 3):
                layers += self._coupling("checkerboard", k % 2 == 1, "scale_{}_cb_{}".format(s, k))
            if not last:
                layers.append(Squeeze(dtype=self.network_policy, name="squeeze_{}".format(s)))
                for k in range(3):
                    layers += self._coupling("channel", k % 2 == 1, "scale_{}_ch_{}".format(s, k))
            levels.append(layers)
        self._set_levels(levels, None, None)

    def _coupling(self, mask, reverse, name):
        layers = ([ActNorm(dtype=self.network_policy, name=name + "_actnorm")] if self.actnorm
                  else [])
        return layers + [AffineCoupling(mask=mask, reverse_mask=reverse, scale=self.scale,
                                        hidden_channels=self.hidden_channels,
                                        dtype=self.network_policy, name=name)]

    def get_config(self):
        return {**super().get_config(), "num_scales": self.num_scales,
                "hidden_channels": self.hidden_channels,
                "num_final_couplings": self.num_final_couplings, "scale": self.scale,
                "actnorm": self.actnorm}
