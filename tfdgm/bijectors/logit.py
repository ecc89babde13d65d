"""Logit preprocessing of images in [0, 1] (Dinh et al., 2017)."""

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["Logit"]


class Logit(tfb.Bijector):
    """Maps pixels in `[0, 1]` to the real line: `y = logit(alpha + (1 - 2 alpha) x)`.

    ```none
    p = alpha + (1 - 2 alpha) x,          y = log p - log(1 - p)
    log|det dy/dx| = sum over the event of [log(1 - 2 alpha) - log p - log(1 - p)]
    inverse: x = (sigmoid(y) - alpha) / (1 - 2 alpha)
    log|det dx/dy| = sum [log sigmoid(y) + log sigmoid(-y) - log(1 - 2 alpha)]
    ```

    The margin `alpha` keeps `p` away from 0 and 1, where the logit is infinite: RealNVP uses
    `alpha = 0.05` on natural images and `1e-6` on MNIST (Dinh et al., 2017, section 4.1). A
    density flow on `y` gives the density of dequantized pixels `x` by adding this log-det (the
    term that enters bits per dimension). The inverse is sigmoid-based (TFLite `LOGISTIC`).

    Shapes: `x` is `[..., H, W, C]` (or any event of `event_ndims` dims), the log-det is summed
    over the last `event_ndims` (default 3) dims: `[...]`.

    #### Example

    ```python
    logit = Logit(alpha=0.05)
    x = tf.random.uniform([8, 4, 4, 3])
    y = logit.forward(x)
    fldj = logit.forward_log_det_jacobian(x, event_ndims=3)   # [8]
    ```

    #### References

    [1]: Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
         In _International Conference on Learning Representations_, 2017.
         https://arxiv.org/abs/1605.08803
    """

    def __init__(self, alpha=0.05, event_ndims=3, validate_args=False, name="logit"):
        """Creates the logit preprocessing map.

        Args:
            alpha: Python `float` in `[0, 0.5)`, the margin.
            event_ndims: Python `int`, the number of trailing dims that make an event (3 for
                images `[H, W, C]`); `forward_min_event_ndims`.
            validate_args: Python `bool`, unused.
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        if not 0. <= float(alpha) < 0.5:
            raise ValueError("`alpha` must be in [0, 0.5), got {!r}.".format(alpha))
        with tf.name_scope(name) as name:
            self._alpha = float(alpha)
            self._event_ndims = int(event_ndims)
            super().__init__(
                forward_min_event_ndims=self._event_ndims,
                validate_args=validate_args,
                parameters=parameters,
                name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict()

    @property
    def alpha(self):
        return self._alpha

    def _event_sum(self, t):
        return tf.reduce_sum(t, axis=list(range(-self._event_ndims, 0)))

    def _p(self, x):
        return self._alpha + (1. - 2. * self._alpha) * x

    def _forward(self, x):
        p = self._p(x)
        return tf.math.log(p) - tf.math.log1p(-p)

    def _inverse(self, y):
        return (tf.sigmoid(y) - self._alpha) / (1. - 2. * self._alpha)

    def _forward_log_det_jacobian(self, x):
        p = self._p(x)
        log_margin = tf.math.log(tf.constant(1. - 2. * self._alpha, x.dtype))
        return self._event_sum(log_margin - tf.math.log(p) - tf.math.log1p(-p))

    def _inverse_log_det_jacobian(self, y):
        log_margin = tf.math.log(tf.constant(1. - 2. * self._alpha, y.dtype))
        return self._event_sum(tf.math.log_sigmoid(y) + tf.math.log_sigmoid(-y) - log_margin)
