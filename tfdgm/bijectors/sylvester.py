"""Sylvester normalizing flow bijector (van den Berg et al., 2018) and its `Q` builders."""

import math

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util

from tfdgm.bijectors.householder import householder_product

tfb = tfp.bijectors

__all__ = [
    "Sylvester",
    "constrain_triangular",
    "householder_product",
    "orthogonalize",
    "orthogonalize_unrolled",
    "reversal_permutation",
    "triangular_q",
]


def constrain_triangular(r_raw):
    """Returns the upper-triangular `R` with `diag(R) = tanh(diag(r_raw))`.

    The strict upper triangle of `r_raw` is kept, the strict lower triangle is ignored. With
    both `R1` and `R2` built this way, `|r1_ii r2_ii| < 1`, which makes the Sylvester map
    invertible (van den Berg et al., 2018, section 3 and their code).

    Args:
        r_raw: float `Tensor` `[..., M, M]`.

    Returns:
        `Tensor` `[..., M, M]`, upper triangular.
    """
    strict_upper = tf.linalg.band_part(r_raw, 0, -1) - tf.linalg.band_part(r_raw, 0, 0)
    return tf.linalg.set_diag(strict_upper, tf.tanh(tf.linalg.diag_part(r_raw)))


def orthogonalize(q_raw, num_steps=30, tol=1e-6):
    """Maps `q_raw` to a matrix with orthonormal columns by iterative orthogonalization.

    The O-SNF procedure of van den Berg et al. (2018), after Kovarik (1970) and Bjorck & Bowie
    (1971):

    ```none
    Q_0 = Q / ||Q||_F
    Q_{k+1} = Q_k (I + (I - Q_k^T Q_k) / 2)
    ```

    It stops after `num_steps` steps, or earlier once `||Q_k^T Q_k - I||_F < tol` for every
    matrix of the batch (a `tf.while_loop`, differentiable: gradients flow to `q_raw`). The
    iteration maps each singular value `sigma` to `sigma (3 - sigma^2) / 2`, which converges to 1
    from any `sigma` in `(0, sqrt(3))`; dividing by the Frobenius norm (the norm of the
    flattened matrix, as in the paper's code) bounds every singular value by 1. Small singular
    values grow by about 1.5x per step, so a nearly rank-deficient `q_raw` needs more steps; a
    rank-deficient one never converges. In float32, `tol=1e-6` may not be reachable and the
    loop then runs all `num_steps`.

    Args:
        q_raw: float `Tensor` `[..., D, M]` with `M <= D` (`M < D` is the bottleneck of O-SNF).
        num_steps: Python `int`, maximal number of iterations.
        tol: Python `float`, early-stop threshold on `||Q^T Q - I||_F`.

    Returns:
        q: `Tensor` `[..., D, M]` with `Q^T Q ~= I`.
    """
    q_raw = tf.convert_to_tensor(q_raw, dtype_hint=tf.float32, name="q_raw")
    m = tf.shape(q_raw)[-1]
    eye = tf.eye(m, dtype=q_raw.dtype)
    norm = tf.sqrt(tf.reduce_sum(tf.square(q_raw), axis=[-2, -1], keepdims=True))
    q0 = q_raw / norm

    def defect(q):
        qtq = tf.linalg.matmul(q, q, transpose_a=True)
        return qtq, tf.reduce_max(tf.norm(qtq - eye, ord="fro", axis=[-2, -1]))

    def cond(q, err):
        return err >= tol

    def body(q, err):
        qtq, _ = defect(q)
        q = tf.linalg.matmul(q, eye + 0.5 * (eye - qtq))
        return q, defect(q)[1]

    q, _ = tf.while_loop(cond, body, (q0, defect(q0)[1]), maximum_iterations=num_steps)
    return q


def orthogonalize_unrolled(q_raw, num_steps):
    """`orthogonalize`'s iteration, unrolled for a fixed number of steps.

    ```none
    Q_0 = Q_raw / ||Q_raw||_F
    Q_{k+1} = Q_k (I + (I - Q_k^T Q_k) / 2) = Q_k (3 I - Q_k^T Q_k) / 2
    ```

    (Kovarik, 1970; Bjorck & Bowie, 1971; the O-SNF of van den Berg et al., 2018). Unrolled
    instead of `orthogonalize`'s `tf.while_loop` with early stopping because the gradient of that
    loop fails inside a real training step: at the paper's sizes (`[100, 16, 64, 32]`) the
    second `train_on_batch` raises `AlreadyExistsError: Resource __per_step_0/.../while_grad/
    .../AddN_1/tmp_var/...` (TF 2.21, CPU; the grappler memory optimizer's in-place AddN in a
    while-loop gradient, tensorflow#23780, #38906), with or without `parallel_iterations=1`.
    From the Frobenius normalization, singular values below ~1 grow by 1.5x per step and then
    converge quadratically: encoder-amortized `[64, 32]` matrices at initialization reach the
    float32 floor (`||Q^T Q - I||_F ~ 1e-6`) after 12-13 steps; the default of 20 leaves room for
    singular values ~15x smaller.

    Args:
        q_raw: float `Tensor` `[..., D, M]`, `M <= D`, full column rank.
        num_steps: Python `int`, the number of iterations.

    Returns:
        `Tensor` `[..., D, M]` with `Q^T Q ~= I`.
    """
    eye = tf.eye(int(q_raw.shape[-1]), dtype=q_raw.dtype)
    q = q_raw / tf.sqrt(tf.reduce_sum(tf.square(q_raw), axis=[-2, -1], keepdims=True))
    for _ in range(num_steps):
        q = tf.linalg.matmul(q, 1.5 * eye - 0.5 * tf.linalg.matmul(q, q, transpose_a=True))
    return q


def reversal_permutation(d, dtype=tf.float32):
    """Returns the `[d, d]` permutation matrix that reverses the order of a vector.

    Args:
        d: Python `int` or scalar int `Tensor`.
        dtype: the float dtype of the result.

    Returns:
        `Tensor` `[d, d]` with ones on the anti-diagonal: `P z = z[::-1]`.
    """
    return tf.reverse(tf.eye(d, dtype=dtype), axis=[-1])


def triangular_q(d, permute, dtype=tf.float32):
    """Returns the `Q` of the triangular Sylvester flow (T-SNF): `I` or the reversal `P`.

    T-SNF alternates between the two from one flow step to the next (van den Berg et al., 2018),
    like the orderings of IAF and RealNVP, so that consecutive triangular maps act on different
    orderings of the coordinates.

    Args:
        d: Python `int`, the event size `D` (`M = D`).
        permute: Python `bool`: `False` gives `I`, `True` the reversal permutation.
        dtype: the float dtype of the result.

    Returns:
        `Tensor` `[D, D]`, a permutation matrix.
    """
    return reversal_permutation(d, dtype) if permute else tf.eye(d, dtype=dtype)


class Sylvester(tfb.Bijector):
    """Sylvester normalizing flow: a residual map with an `M`-unit bottleneck.

    ```none
    y = z + Q R1 tanh(R2 Q^T z + b)
    log|det dy/dz| = sum_i log(1 + r1_ii r2_ii h'(a_i)),    a = R2 Q^T z + b,  h' = 1 - tanh^2
    ```

    Note that `h'` is taken at the full pre-activation `a_i = (R2 Q^T z)_i + b_i`, which involves
    the whole `i`-th row of `R2`, not only `r2_ii (Q^T z)_i`.

    `Q` `[D, M]` has orthonormal columns (`Q^T Q = I`, `M <= D`) and `R1`, `R2` are `M x M`
    upper triangular. By Sylvester's determinant identity
    `det(I_D + Q R1 diag(h') R2 Q^T) = det(I_M + diag(h') R2 R1)`, and `R2 R1` is upper
    triangular with diagonal `r1_ii r2_ii`, hence the log-det above (computed in O(M)).

    `R1` and `R2` are built from unconstrained `r1`, `r2` by `constrain_triangular`: the strict
    upper triangle is kept and the diagonal is `tanh(diag)`, as in the paper. Then
    `|r1_ii r2_ii| < 1` and, with `0 < h' <= 1`, every factor `1 + r1_ii r2_ii h'` lies in
    `(0, 2)`: the map is invertible. There is no closed-form inverse and none is implemented.

    `tanh` rounds to exactly +-1 beyond |x| ~ 19 in float64 (~9 in float32), where
    `1 + r1_ii r2_ii h'` computed naively can reach 0 and the log-det -inf. The log-det is
    therefore computed as `log(tanh(a_i)^2 + (1 - tanh(a_i)^2) (1 + r1_ii r2_ii))` with
    `log(1 + tanh(x1) tanh(x2)) = log cosh(x1 + x2) - log cosh(x1) - log cosh(x2)` from the raw
    diagonals: finite for all finite parameters.

    The log-det formula assumes `Q^T Q = I`; the bijector does not enforce it. Build `Q` with
    one of:

    * `orthogonalize(q_raw)` (O-SNF): iterative orthogonalization, `M <= D`;
    * `householder_product(v)` (H-SNF): a product of reflections, `M = D`;
    * `triangular_q(D, permute)` (T-SNF): `I` or the reversal permutation, `M = D`.

    Shapes: `q` `[..., D, M]`, `r1`, `r2` `[..., M, M]`, `b` `[..., M]`, where each `...` is
    empty (global) or a batch shape such as `[B]` (amortized, as in the paper where an encoder
    hyper-network produces them); they broadcast (e.g. a global T-SNF `q` `[D, D]` with
    amortized `r1` `[B, D, D]`). `z` is `[..., D]` broadcasting against the parameters (e.g.
    `[S, B, D]` with `[B, ...]` parameters); the log-det is `[S, B]`.

    #### References

    [1]: Rianne van den Berg, Leonard Hasenclever, Jakub M. Tomczak and Max Welling. Sylvester
         Normalizing Flows for Variational Inference. In _Uncertainty in Artificial
         Intelligence_, 2018. https://arxiv.org/abs/1803.05649
    """

    def __init__(self, q, r1, r2, b, validate_args=False, name="sylvester"):
        """Creates a Sylvester flow.

        Args:
            q: float `Tensor` `[..., D, M]` with orthonormal columns.
            r1: float `Tensor` `[..., M, M]`, unconstrained (see `constrain_triangular`).
            r2: float `Tensor` `[..., M, M]`, unconstrained (see `constrain_triangular`).
            b: float `Tensor` `[..., M]`.
            validate_args: Python `bool`; if `True`, checks that `M <= D`.
            name: Python `str` name prefixed to ops created by this class.
        """
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([q, r1, r2, b], dtype_hint=tf.float32)
            self._q = tf.convert_to_tensor(q, dtype=dtype, name="q")
            self._r1_raw = tf.convert_to_tensor(r1, dtype=dtype, name="r1")
            self._r2_raw = tf.convert_to_tensor(r2, dtype=dtype, name="r2")
            self._b = tf.convert_to_tensor(b, dtype=dtype, name="b")
            super().__init__(
                forward_min_event_ndims=1,
                validate_args=validate_args,
                dtype=dtype,
                parameters=parameters,
                name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return dict(
            q=tfp.util.ParameterProperties(event_ndims=2),
            r1=tfp.util.ParameterProperties(event_ndims=2),
            r2=tfp.util.ParameterProperties(event_ndims=2),
            b=tfp.util.ParameterProperties(event_ndims=1))

    @property
    def q(self):
        return self._q

    @property
    def r1(self):
        """The constrained upper-triangular `R1` `[..., M, M]`."""
        return constrain_triangular(self._r1_raw)

    @property
    def r2(self):
        """The constrained upper-triangular `R2` `[..., M, M]`."""
        return constrain_triangular(self._r2_raw)

    @property
    def b(self):
        return self._b

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args or not is_init:
            return []
        shape = tf.shape(self._q)
        return [tf.debugging.assert_less_equal(
            shape[-1], shape[-2], message="`q` must be [..., D, M] with M <= D.")]

    def _pre_activation(self, z):
        qtz = tf.linalg.matvec(self._q, z, transpose_a=True)  # [..., M]
        return tf.linalg.matvec(self.r2, qtz) + self._b

    def _forward(self, x):
        h = tf.tanh(self._pre_activation(x))
        return x + tf.linalg.matvec(self._q, tf.linalg.matvec(self.r1, h))

    def _forward_log_det_jacobian(self, x):
        tanh_sq = tf.square(tf.tanh(self._pre_activation(x)))
        # 1 + d h' = tanh^2 + (1 - tanh^2) (1 + d) with d = tanh(x1) tanh(x2), and
        # log(1 + tanh(x1) tanh(x2)) = log cosh(x1 + x2) - log cosh(x1) - log cosh(x2):
        # every term is positive, even where tanh rounds to +-1 and 1 + d to 0.
        x1 = tf.linalg.diag_part(self._r1_raw)
        x2 = tf.linalg.diag_part(self._r2_raw)
        one_plus_d = tf.exp(_log_cosh(x1 + x2) - _log_cosh(x1) - _log_cosh(x2))
        return tf.reduce_sum(tf.math.log(tanh_sq + (1. - tanh_sq) * one_plus_d), axis=-1)


def _log_cosh(x):
    x = tf.abs(x)
    return x + tf.math.softplus(-2. * x) - math.log(2.0)
