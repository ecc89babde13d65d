"""Invertible 1x1 convolution as a Keras layer (plain or LU), with a freezable inverse."""

import keras
import numpy as np

from tfdgm import bijectors
from tfdgm.flows.base import FlowLayer

__all__ = ["InvertibleConv1x1", "lu_decompose", "random_rotation"]


def random_rotation(channels, rng):
    """Returns a random rotation `[C, C]` (orthogonal, determinant +1), float64 numpy."""
    q, r = np.linalg.qr(rng.standard_normal((channels, channels)))
    q = q * np.sign(np.diag(r))  # Haar-distributed
    if np.linalg.det(q) < 0.:
        q[:, 0] = -q[:, 0]
    return q


def lu_decompose(matrix):
    """Returns `(P, L, U)` with `matrix = P L U` (partial pivoting), float64 numpy.

    `P` is a permutation matrix, `L` unit lower triangular, `U` upper triangular.
    """
    u = np.array(matrix, dtype=np.float64)
    n = u.shape[0]
    lower = np.eye(n)
    rows = np.arange(n)
    for k in range(n - 1):
        pivot = k + int(np.argmax(np.abs(u[k:, k])))
        u[[k, pivot], k:] = u[[pivot, k], k:]
        lower[[k, pivot], :k] = lower[[pivot, k], :k]
        rows[[k, pivot]] = rows[[pivot, k]]
        factors = u[k + 1:, k] / u[k, k]
        lower[k + 1:, k] = factors
        u[k + 1:, k:] -= factors[:, np.newaxis] * u[k, k:]
        u[k + 1:, k] = 0.
    permutation = np.eye(n)[:, rows]  # P^T matrix = matrix[rows]
    return permutation, lower, u


def _constant(value):
    return lambda shape, dtype=None: keras.ops.convert_to_tensor(value, dtype=dtype)


@keras.saving.register_keras_serializable(package="tfdgm")
class InvertibleConv1x1(FlowLayer):
    """Glow's invertible 1x1 convolution, `y = W x` at every pixel, initialized to a rotation.

    ```none
    plain:  W (a [C, C] weight)                  log|det dy/dx| = H * W * log|det W|
    LU:     W = P L (U + diag(sign * exp(log_abs_s)))
                                                 log|det dy/dx| = H * W * sum(log_abs_s)
    ```

    Weights (Kingma & Dhariwal, 2018, section 3.2): plain, `kernel` `[C, C]`, a random rotation
    at initialization. LU (`lu=True`), from the LU decomposition `P L U` of a random rotation:
    `permutation` `P` `[C, C]` and `sign` `[C]` (fixed, non-trainable), `lower` `[C, C]` (its
    strict lower triangle is used), `upper` `[C, C]` (its strict upper triangle is used) and
    `log_abs_s` `[C]` (trainable). The entries outside the used triangles get zero gradients.

    Export: the inverse uses `W^{-1}` from `tf.linalg.inv` (plain) or triangular solves (LU),
    which are not TFLite builtins. `freeze_inverse()` computes `W^{-1}` once from the current
    weights and makes `inverse` a single matmul with that constant; call it after training and
    before tracing an exported sampler, and `unfreeze_inverse()` before training again (a frozen
    inverse does not follow weight updates).

    Shapes: `x` is `[B, H, W, C]`; returns `(y [B, H, W, C], log_det [B])`.

    #### Example

    ```python
    conv = InvertibleConv1x1(lu=True, seed=0)
    y, log_det = conv(tf.random.normal([8, 4, 4, 12]))     # log_det = 0 at initialization
    conv.freeze_inverse()
    x_back = conv.inverse(y)                                # one matmul
    ```

    #### References

    [1]: Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
         Convolutions. In _Neural Information Processing Systems_, 2018.
         https://arxiv.org/abs/1807.03039
    """

    def __init__(self, lu=True, seed=None, **kwargs):
        """Creates a 1x1 convolution layer.

        Args:
            lu: Python `bool`, the LU parameterization (`O(C)` log-det) or a full matrix.
            seed: Python `int` seed of the initial rotation; `None` draws from numpy's global
                generator (which `keras.utils.set_random_seed` seeds).
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(**kwargs)
        self.lu = bool(lu)
        self.seed = seed
        self._frozen_inverse = None

    def build(self, input_shape):
        channels = input_shape[-1]
        rng = np.random.default_rng(self.seed) if self.seed is not None else np.random
        rotation = random_rotation(channels, rng)
        if not self.lu:
            self.kernel = self.add_weight(shape=(channels, channels),
                                          initializer=_constant(rotation), name="kernel")
            return
        permutation, lower, upper = lu_decompose(rotation)
        diagonal = np.diag(upper)
        square = (channels, channels)
        self.permutation = self.add_weight(shape=square, initializer=_constant(permutation),
                                           trainable=False, name="permutation")
        self.sign = self.add_weight(shape=(channels,), initializer=_constant(np.sign(diagonal)),
                                    trainable=False, name="sign")
        self.lower = self.add_weight(shape=square, initializer=_constant(np.tril(lower, -1)),
                                     name="lower")
        self.upper = self.add_weight(shape=square, initializer=_constant(np.triu(upper, 1)),
                                     name="upper")
        self.log_abs_s = self.add_weight(shape=(channels,),
                                         initializer=_constant(np.log(np.abs(diagonal))),
                                         name="log_abs_s")

    def bijector(self):
        if not self.lu:
            return bijectors.InvertibleConv1x1(self.kernel, inverse_matrix=self._frozen_inverse)
        return bijectors.LUInvertibleConv1x1(
            self.permutation, self.lower, self.upper,
            self.sign * keras.ops.exp(self.log_abs_s), inverse_matrix=self._frozen_inverse)

    def freeze_inverse(self):
        """Fixes `inverse` to a matmul with `W^{-1}` of the current weights (for export)."""
        self._frozen_inverse = None
        self._frozen_inverse = np.array(self.bijector().inverse_matrix())

    def unfreeze_inverse(self):
        """Makes `inverse` compute `W^{-1}` from the weights again."""
        self._frozen_inverse = None

    @property
    def inverse_frozen(self):
        return self._frozen_inverse is not None

    def get_config(self):
        return {**super().get_config(), "lu": self.lu, "seed": self.seed}
