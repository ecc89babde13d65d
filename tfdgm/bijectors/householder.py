"""Householder flow bijector (Tomczak & Welling, 2016) and the matrix it applies."""

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util

tfb = tfp.bijectors

__all__ = ["Householder", "householder_product", "reflect"]


def reflect(v, z):
    """Applies the Householder reflection `H = I - 2 v v^T / ||v||^2` to `z`.

    Args:
        v: float `Tensor` `[..., D]`, nonzero.
        z: float `Tensor` `[..., D]`, broadcastable with `v`.

    Returns:
        `H z = z - 2 v (v^T z) / ||v||^2`, the broadcast shape of `v` and `z`.
    """
    vz = tf.reduce_sum(v * z, axis=-1, keepdims=True)
    vv = tf.reduce_sum(tf.square(v), axis=-1, keepdims=True)
    return z - (2. * vz / vv) * v


def _num_reflections(v):
    num = tf.compat.dimension_value(v.shape[-2])
    if num is None:
        raise ValueError("The number of reflections, `v.shape[-2]`, must be known statically; "
                         "got shape {}.".format(v.shape))
    return num


def householder_product(v):
    """Returns the orthogonal matrix `Q = H_K ... H_2 H_1`, `H_k = I - 2 v_k v_k^T / ||v_k||^2`.

    `Q z` equals `Householder(v).forward(z)`: `H_1` is applied first. This is the `Q` of the
    Householder Sylvester flow (H-SNF, van den Berg et al., 2018).

    Args:
        v: float `Tensor` `[..., K, D]`, `K` nonzero reflection vectors (`K` static).

    Returns:
        q: `Tensor` `[..., D, D]`, orthogonal.
    """
    v = tf.convert_to_tensor(v, dtype_hint=tf.float32, name="v")
    d = tf.shape(v)[-1]
    batch_shape = tf.shape(v)[:-2]
    q = tf.eye(d, batch_shape=batch_shape, dtype=v.dtype)
    for k in range(_num_reflections(v)):
        v_k = v[..., k, :]
        # H_k Q = Q - 2 v_k (v_k^T Q) / ||v_k||^2, acting on the columns of Q.
        vq = tf.linalg.matvec(q, v_k, transpose_a=True)  # [..., D]: v_k^T Q
        vv = tf.reduce_sum(tf.square(v_k), axis=-1)[..., tf.newaxis, tf.newaxis]
        q = q - 2. * v_k[..., :, tf.newaxis] * vq[..., tf.newaxis, :] / vv
    return q


class Householder(tfb.Bijector):
    """Householder flow: a product of `K` reflections, volume preserving.

    ```none
    y = H_K ... H_2 H_1 z,    H_k = I - 2 v_k v_k^T / ||v_k||^2
    z = H_1 H_2 ... H_K y     (each reflection is its own inverse)
    log|det dy/dz| = 0
    ```

    Each reflection is orthogonal with determinant -1, so the flow is volume preserving and the
    log-det is zero; it is returned with the broadcast batch shape of `z` and `v`.

    Shapes: `v` is `[..., K, D]` with `K` known statically, where `...` is empty (global) or a
    batch shape such as `[B]` (amortized: the encoder produces `v` per example, as in the paper).
    `z` is `[..., D]` broadcasting against `v[..., 0, :]` (e.g. `[S, B, D]` with `v` `[B, K, D]`).

    #### References

    [1]: Jakub M. Tomczak and Max Welling. Improving Variational Auto-Encoders using Householder
         Flow. _arXiv preprint_, 2016. https://arxiv.org/abs/1611.09630
    """

    def __init__(self, v, validate_args=False, name="householder"):
        """Creates a Householder flow.

        Args:
            v: float `Tensor` `[..., K, D]`, the `K` reflection vectors (nonzero).
            validate_args: Python `bool`; if `True`, checks that every `v_k` is nonzero.
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([v], dtype_hint=tf.float32)
            self._v = tf.convert_to_tensor(v, dtype=dtype, name="v")
            _num_reflections(self._v)
            super().__init__(
                forward_min_event_ndims=1,
                is_constant_jacobian=True,
                validate_args=validate_args,
                dtype=dtype,
                parameters=parameters,
                name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict(v=tfp.util.ParameterProperties(event_ndims=2))

    @property
    def v(self):
        return self._v

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args or not is_init:
            return []
        return [tf.debugging.assert_positive(
            tf.reduce_sum(tf.square(self._v), axis=-1), message="`v` must be nonzero.")]

    def _forward(self, x):
        for k in range(_num_reflections(self._v)):
            x = reflect(self._v[..., k, :], x)
        return x

    def _inverse(self, y):
        for k in reversed(range(_num_reflections(self._v))):
            y = reflect(self._v[..., k, :], y)
        return y

    def _log_det_shape(self, t):
        return tf.broadcast_dynamic_shape(tf.shape(t)[:-1], tf.shape(self._v)[:-2])

    def _forward_log_det_jacobian(self, x):
        return tf.zeros(self._log_det_shape(x), dtype=x.dtype)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros(self._log_det_shape(y), dtype=y.dtype)
