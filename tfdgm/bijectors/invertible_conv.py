"""Invertible 1x1 convolution bijectors (Kingma & Dhariwal, 2018): plain and LU-decomposed."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util

tfb = tfp.bijectors

__all__ = ["InvertibleConv1x1", "LUInvertibleConv1x1"]

_REFERENCE = """
    #### References

    [1]: Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
         Convolutions. In _Neural Information Processing Systems_, 2018.
         https://arxiv.org/abs/1807.03039
"""


def _spatial_size(x):
    return tf.cast(tf.reduce_prod(tf.shape(x)[-3:-1]), x.dtype)


def _mix_channels(x, matrix):
    # y[..., i] = sum_j matrix[i, j] x[..., j]: a (batch-broadcast) matmul, a TFLite builtin.
    return tf.matmul(x, matrix, transpose_b=True)


class _Conv1x1(tfb.Bijector):
    """The map shared by both parameterizations; subclasses give the matrix and its log-det."""

    def __init__(self, inverse_matrix, dtype, validate_args, parameters, name):
        self._inverse_matrix = (None if inverse_matrix is None else tf.convert_to_tensor(
            inverse_matrix, dtype=dtype, name="inverse_matrix"))
        super().__init__(
            forward_min_event_ndims=3,
            validate_args=validate_args,
            dtype=dtype,
            parameters=parameters,
            name=name)

    def _get_parameterization(self):
        # Identity equality: TFP's cache is shared by equal bijectors, and one built afresh over
        # the same Keras variables would return results cached before a weight update or
        # outside the current GradientTape.
        return id(self)

    def matrix(self):
        """The channel-mixing matrix `W` `[C, C]`."""
        raise NotImplementedError

    def inverse_matrix(self):
        """`W^{-1}` `[C, C]`: the precomputed one if given, else computed from the parameters."""
        if self._inverse_matrix is not None:
            return self._inverse_matrix
        return self._compute_inverse_matrix()

    def log_abs_det_matrix(self):
        """`log|det W|`, a scalar."""
        raise NotImplementedError

    def _forward(self, x):
        return _mix_channels(x, self.matrix())

    def _inverse(self, y):
        return _mix_channels(y, self.inverse_matrix())

    def _forward_log_det_jacobian(self, x):
        log_det = _spatial_size(x) * self.log_abs_det_matrix()
        return tf.fill(tf.shape(x)[:-3], log_det)

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(y)


class InvertibleConv1x1(_Conv1x1):
    """Invertible 1x1 convolution with a full matrix: a learned permutation of the channels.

    ```none
    y[..., h, w, :] = W x[..., h, w, :]
    log|det dy/dx| = H * W * log|det W|
    ```

    A 1x1 convolution applies the same `[C, C]` matrix at every pixel, so its Jacobian is block
    diagonal with `H * W` copies of `W` (Kingma & Dhariwal, 2018, section 3.2). The inverse is
    `x = W^{-1} y`. `log|det W|` costs `O(C^3)` per call (`tf.linalg.slogdet`); the LU form
    (`LUInvertibleConv1x1`) makes it `O(C)`.

    Export: the forward and the inverse are one matmul each, a TFLite builtin. `tf.linalg.inv`
    is not: a sampler exported to TFLite should pass the inverse precomputed (e.g. evaluated
    eagerly once training is done) as `inverse_matrix`, which the inverse then uses as is.

    Shapes: `matrix` is `[C, C]`; `x` is `[..., H, W, C]`, `forward_min_event_ndims = 3`; the
    log-det is `[...]`. Instances compare by identity (see `tfdgm.bijectors.ActNorm`).

    #### Example

    ```python
    w = tf.linalg.qr(tf.random.normal([3, 3]))[0]            # a random rotation
    conv = InvertibleConv1x1(w)
    x = tf.random.normal([8, 4, 4, 3])
    y = conv.forward(x)
    fldj = conv.forward_log_det_jacobian(x, event_ndims=3)    # 16 * log|det w| = 0, [8]
    frozen = InvertibleConv1x1(w, inverse_matrix=conv.inverse_matrix().numpy())
    x_back = frozen.inverse(y)                                # matmuls only
    ```
    """ + _REFERENCE

    def __init__(self, matrix, inverse_matrix=None, validate_args=False,
                 name="invertible_conv_1x1"):
        """Creates a 1x1 convolution with matrix `W`.

        Args:
            matrix: float `Tensor` `[C, C]`, invertible.
            inverse_matrix: optional float `Tensor` `[C, C]`, `W^{-1}` precomputed; the inverse
                uses it instead of `tf.linalg.inv(W)` (the caller keeps it in sync with `W`).
            validate_args: Python `bool`, unused.
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([matrix, inverse_matrix], dtype_hint=tf.float32)
            self._matrix = tf.convert_to_tensor(matrix, dtype=dtype, name="matrix")
            super().__init__(inverse_matrix, dtype, validate_args, parameters, name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict(
            matrix=tfp.util.ParameterProperties(event_ndims=2),
            inverse_matrix=tfp.util.ParameterProperties(event_ndims=2))

    def matrix(self):
        return self._matrix

    def _compute_inverse_matrix(self):
        return tf.linalg.inv(self._matrix)

    def log_abs_det_matrix(self):
        return tf.linalg.slogdet(self._matrix)[1]


class LUInvertibleConv1x1(_Conv1x1):
    """Invertible 1x1 convolution in LU-decomposed form (Glow's `O(C)` log-det).

    ```none
    W = P L (U + diag(s))
    y[..., h, w, :] = W x[..., h, w, :]
    log|det dy/dx| = H * W * sum_c log|s_c|
    ```

    `P` is a fixed permutation matrix, `L` is unit lower triangular (the strict lower triangle
    of `lower` plus the identity), `U` is strictly upper triangular (the strict upper triangle of
    `upper`) and `s` is the nonzero diagonal (Kingma & Dhariwal, 2018, section 3.2). The entries
    of `lower` and `upper` outside those triangles are ignored. `W` is built with constant masks,
    matmuls and products only, so the forward exports to TFLite builtins; the inverse uses
    `inverse_matrix` when given (precomputed, for TFLite) and otherwise
    `W^{-1} = (U + diag(s))^{-1} L^{-1} P^T` by two triangular solves.

    Shapes: `permutation`, `lower`, `upper` are `[C, C]` and `diagonal` is `[C]`; `x` is
    `[..., H, W, C]`, `forward_min_event_ndims = 3`; the log-det is `[...]`.

    #### Example

    ```python
    lu, perm = tf.linalg.lu(tf.linalg.qr(tf.random.normal([3, 3]))[0])
    p = tf.gather(tf.eye(3), tf.math.invert_permutation(perm))      # W = P L U
    conv = LUInvertibleConv1x1(p, lu, lu, tf.linalg.diag_part(lu))
    x = tf.random.normal([8, 4, 4, 3])
    fldj = conv.forward_log_det_jacobian(x, event_ndims=3)           # [8]
    ```
    """ + _REFERENCE

    def __init__(self, permutation, lower, upper, diagonal, inverse_matrix=None,
                 validate_args=False, name="lu_invertible_conv_1x1"):
        """Creates a 1x1 convolution with `W = P L (U + diag(s))`.

        Args:
            permutation: float `Tensor` `[C, C]`, a permutation matrix `P`.
            lower: float `Tensor` `[C, C]`; its strict lower triangle is that of `L`.
            upper: float `Tensor` `[C, C]`; its strict upper triangle is `U`.
            diagonal: float `Tensor` `[C]`, the diagonal `s`, nonzero.
            inverse_matrix: optional float `Tensor` `[C, C]`, `W^{-1}` precomputed.
            validate_args: Python `bool`; if `True`, checks that `diagonal` has no zero.
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype(
                [permutation, lower, upper, diagonal, inverse_matrix], dtype_hint=tf.float32)
            self._permutation = tf.convert_to_tensor(permutation, dtype=dtype,
                                                     name="permutation")
            self._lower = tf.convert_to_tensor(lower, dtype=dtype, name="lower")
            self._upper = tf.convert_to_tensor(upper, dtype=dtype, name="upper")
            self._diagonal = tf.convert_to_tensor(diagonal, dtype=dtype, name="diagonal")
            super().__init__(inverse_matrix, dtype, validate_args, parameters, name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict(
            permutation=tfp.util.ParameterProperties(event_ndims=2),
            lower=tfp.util.ParameterProperties(event_ndims=2),
            upper=tfp.util.ParameterProperties(event_ndims=2),
            diagonal=tfp.util.ParameterProperties(event_ndims=1),
            inverse_matrix=tfp.util.ParameterProperties(event_ndims=2))

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args or not is_init:
            return []
        return [tf.debugging.assert_none_equal(
            self._diagonal, tf.zeros([], self.dtype), message="`diagonal` must be nonzero.")]

    def _triangles(self):
        """`(L, U + diag(s))`, built with constant masks (TFLite builtins only)."""
        channels = self._lower.shape[-1]
        strict_lower = tf.constant(np.tril(np.ones([channels, channels]), -1), self.dtype)
        eye = tf.constant(np.eye(channels), self.dtype)
        lower = self._lower * strict_lower + eye
        upper = self._upper * tf.transpose(strict_lower) + eye * self._diagonal
        return lower, upper

    def matrix(self):
        lower, upper = self._triangles()
        return tf.matmul(self._permutation, tf.matmul(lower, upper))

    def _compute_inverse_matrix(self):
        lower, upper = self._triangles()
        # W^{-1} = U^{-1} L^{-1} P^T, and P^{-1} = P^T for a permutation.
        lower_inv_pt = tf.linalg.triangular_solve(lower, tf.transpose(self._permutation),
                                                  lower=True)
        return tf.linalg.triangular_solve(upper, lower_inv_pt, lower=False)

    def log_abs_det_matrix(self):
        return tf.reduce_sum(tf.math.log(tf.abs(self._diagonal)))
