"""Bessel-function quantities of the von Mises-Fisher distribution, stable in `kappa` and `m`.

For the von Mises-Fisher distribution on the sphere `S^{m-1}` (embedded in `R^m`) with
concentration `kappa >= 0`:

```none
log C_m(kappa) = (m/2 - 1) log kappa - (m/2) log(2 pi) - log I_{m/2-1}(kappa)   (log-normalizer)
A_m(kappa)     = I_{m/2}(kappa) / I_{m/2-1}(kappa)                           (mean resultant length)
A_m'(kappa)    = 1 - A_m(kappa)^2 - (m - 1) / kappa A_m(kappa)
log |S^{m-1}|  = log 2 + (m/2) log pi - lgamma(m/2)                           (surface area)
```

`I_v` is the modified Bessel function of the first kind. The values come from TFP 0.25's
`tfp.math.log_bessel_ive` (exponentially scaled, so no overflow for `kappa` up to 1e4 and beyond)
and `tfp.math.bessel_iv_ratio` (continued fractions, relative error ~1e-7 in float32 and ~1e-14 in
float64 for `m` in [3, 256], `kappa` in [1e-3, 1e4], checked against SciPy). Both have TFP
gradients with respect to their argument only (none with respect to the order, which we never
need: `m` is static). We still attach our own gradients because the autodiff ones lose precision:

* `d/dkappa log C_m = -A_m` exactly; autodiff of the formula above subtracts `(m/2 - 1) / kappa`
  from itself (~1e4 at `kappa = 1e-3`): in float32 it returns 0 instead of -6e-5 at
  `kappa = 1e-3`, `m = 16` (measured), and is 6% off at `kappa = 0.1`, `m = 256`.
* `A_m' = 1 - A_m^2 - (m - 1) A_m / kappa` cancels to `~(m - 1) / (2 kappa^2)` for large `kappa`:
  TFP's float32 gradient of `bessel_iv_ratio` is off by a factor up to 6 at `kappa = 1e4`. We
  evaluate it in float64 (a handful of scalars per batch member) and cast back.

For small `kappa` the log-normalizer uses the series `I_v(k) = (k/2)^v / Gamma(v+1) 0F1(; v+1;
k^2/4)`, so that `log C_m + log |S^{m-1}| = -log 0F1(; m/2; kappa^2/4) ~ -kappa^2 / (2m)` keeps its
relative precision (the KL to the uniform distribution is this small difference).
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = [
    "bessel_iv_ratio_value",
    "log_bessel_ive_value",
    "log_sphere_surface_area",
    "mean_resultant_length",
    "mean_resultant_length_derivative",
    "vmf_log_normalizer",
    "vmf_kl_to_uniform",
    "vmf_log_normalizer_plus_kappa",
]

# Terms of the power series of log C_m used for small kappa (see `_series_threshold`).
_SERIES_TERMS = 12


# TFP's Bessel functions are `tf.while_loop` continued fractions and series: run op by op (eager
# mode) one call takes 0.1-0.3 s, as a traced function ~1 ms. We only need their values (every
# gradient here is our own), so we call them through `tf.function`s on flattened inputs, traced
# once per dtype (~2 s each); inside an outer graph they are inlined.
_VALUE_FUNCTIONS = {}


def _value_function(name, dtype):
    """A `tf.function(v [], z [None]) -> [None]` computing TFP's `name` without gradient."""
    key = (name, tf.as_dtype(dtype))
    if key not in _VALUE_FUNCTIONS:
        tfp_fn = {"ratio": tfp.math.bessel_iv_ratio, "log_ive": tfp.math.log_bessel_ive}[name]

        def value(v, z):
            return tf.stop_gradient(tfp_fn(v, z))

        _VALUE_FUNCTIONS[key] = tf.function(
            value, autograph=False,
            input_signature=[tf.TensorSpec([], dtype), tf.TensorSpec([None], dtype)])
    return _VALUE_FUNCTIONS[key]


def _call_flat(name, v, z):
    z = tf.convert_to_tensor(z)
    flat = _value_function(name, z.dtype)(tf.constant(v, z.dtype), tf.reshape(z, [-1]))
    return tf.reshape(flat, tf.shape(z))


def bessel_iv_ratio_value(v, z):
    """`I_v(z) / I_{v-1}(z)` (TFP's continued fractions) for a Python float `v`; no gradient."""
    return _call_flat("ratio", v, z)


def log_bessel_ive_value(v, z):
    """`log(I_v(z) e^{-|z|})` (TFP) for a Python float `v`; no gradient."""
    return _call_flat("log_ive", v, z)


def log_sphere_surface_area(m, dtype=tf.float32):
    """`log |S^{m-1}| = log(2 pi^{m/2} / Gamma(m/2))`, the log area of the unit sphere in `R^m`.

    Args:
      m: Python `int`, the dimension of the embedding space (`S^{m-1}` lies in `R^m`).
      dtype: the dtype of the returned scalar.

    Returns:
      A scalar `Tensor` of `dtype`.
    """
    value = math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)
    return tf.constant(value, dtype=dtype)


def _ratio_derivative_float64(m, kappa):
    """`A_m'(kappa)` evaluated in float64 (see the module docstring) and cast to `kappa.dtype`."""
    k64 = tf.cast(kappa, tf.float64)
    safe_k = tf.where(k64 > 0.0, k64, tf.ones_like(k64))
    a64 = bessel_iv_ratio_value(0.5 * m, safe_k)
    derivative = 1.0 - tf.square(a64) - (m - 1.0) / safe_k * a64
    # A_m(kappa) = kappa / m + O(kappa^3), so A_m'(0) = 1 / m.
    derivative = tf.where(k64 > 0.0, derivative, tf.constant(1.0 / m, tf.float64))
    return tf.cast(derivative, kappa.dtype)


def mean_resultant_length_derivative(m, kappa):
    """`A_m'(kappa) = 1 - A_m^2 - (m - 1) A_m / kappa`, computed in float64.

    Args:
      m: Python `int`, the dimension of the embedding space.
      kappa: floating `Tensor` of concentrations `[...]`, `kappa >= 0`.

    Returns:
      `Tensor` `[...]` of `kappa.dtype`, in `(0, 1/m]`.
    """
    kappa = tf.convert_to_tensor(kappa)
    return _ratio_derivative_float64(m, kappa)


def mean_resultant_length(m, kappa):
    """`A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa)`, the length of the vMF mean `E[z]`.

    `A_m` rises from `kappa / m` at small `kappa` to `1 - (m - 1) / (2 kappa)` at large `kappa`.
    Its gradient is `A_m'(kappa)` evaluated in float64 (accurate where the float32 formula
    cancels).

    Args:
      m: Python `int`, the dimension of the embedding space.
      kappa: floating `Tensor` of concentrations `[...]`, `kappa >= 0`.

    Returns:
      `Tensor` `[...]` of `kappa.dtype`.
    """
    kappa = tf.convert_to_tensor(kappa)

    @tf.custom_gradient
    def _ratio(kappa):
        value = bessel_iv_ratio_value(0.5 * m, kappa)

        def grad(upstream):
            return upstream * _ratio_derivative_float64(m, kappa)

        return value, grad

    return _ratio(kappa)


def _log_hypergeometric_0f1(b, x, num_terms=_SERIES_TERMS):
    """`log 0F1(; b; x) = log1p(sum_{j>=1} x^j / (j! (b)_j))` for small `x >= 0`."""
    term = tf.ones_like(x)
    total = tf.zeros_like(x)
    for j in range(1, num_terms + 1):
        term = term * x / (j * (b + j - 1.0))
        total = total + term
    return tf.math.log1p(total)


def _series_threshold(m):
    """`kappa` below which the series is used: there `kappa^2 / (2 m) <= 1/2`, so 12 terms reach
    ~1e-13 relative precision."""
    return max(1.0, math.sqrt(m))


def _log_normalizer_parts(m, kappa):
    """Returns `(small, large, is_small)` for `log C_m(kappa) + log|S^{m-1}|`.

    `small` is the series form `-log 0F1(; m/2; kappa^2/4)`, valid where `is_small`; `large` is
    the Bessel form plus `kappa`, `(m/2-1) log kappa - (m/2) log(2 pi) + log|S^{m-1}| -
    log ive(kappa)`, valid elsewhere. Each is evaluated at a clipped `kappa` so that both stay
    finite.
    """
    dtype = kappa.dtype
    v = 0.5 * m - 1.0
    threshold = _series_threshold(m)
    is_small = kappa < threshold
    k_large = tf.maximum(kappa, threshold)
    large = (v * tf.math.log(k_large) - 0.5 * m * math.log(2.0 * math.pi)
             + log_sphere_surface_area(m, dtype)
             - log_bessel_ive_value(v, k_large))
    k_small = tf.minimum(kappa, threshold)
    small = -_log_hypergeometric_0f1(0.5 * m, 0.25 * tf.square(k_small))
    return small, large, is_small


def vmf_log_normalizer_plus_kappa(m, kappa):
    """`log C_m(kappa) + kappa`, finite and precise for all `kappa >= 0` and `m >= 2`.

    `log C_m(kappa) ~ -kappa` for large `kappa`, so adding `kappa` back keeps the result moderate:
    `(m/2 - 1) log kappa - (m/2) log(2 pi) - log(I_{m/2-1}(kappa) e^{-kappa})`. Its gradient
    `1 - A_m(kappa)` is attached as a custom gradient.

    Args:
      m: Python `int`, the dimension of the embedding space.
      kappa: floating `Tensor` of concentrations `[...]`, `kappa >= 0`.

    Returns:
      `Tensor` `[...]` of `kappa.dtype`.
    """
    kappa = tf.convert_to_tensor(kappa)

    @tf.custom_gradient
    def _log_normalizer_plus_kappa(kappa):
        small, large, is_small = _log_normalizer_parts(m, kappa)
        value = (tf.where(is_small, small + kappa, large)
                 - log_sphere_surface_area(m, kappa.dtype))

        def grad(upstream):
            return upstream * (1.0 - mean_resultant_length(m, kappa))

        return value, grad

    return _log_normalizer_plus_kappa(kappa)


def vmf_log_normalizer(m, kappa):
    """`log C_m(kappa)`, the log-normalizer of the vMF density on `S^{m-1}`.

    ```none
    log C_m(kappa) = (m/2 - 1) log kappa - (m/2) log(2 pi) - log I_{m/2-1}(kappa)
    ```

    with `log C_m(0) = -log |S^{m-1}|` (the uniform distribution). Its gradient `-A_m(kappa)` is
    attached as a custom gradient.

    Args:
      m: Python `int`, the dimension of the embedding space.
      kappa: floating `Tensor` of concentrations `[...]`, `kappa >= 0`.

    Returns:
      `Tensor` `[...]` of `kappa.dtype`.
    """
    kappa = tf.convert_to_tensor(kappa)

    @tf.custom_gradient
    def _log_normalizer(kappa):
        small, large, is_small = _log_normalizer_parts(m, kappa)
        value = (tf.where(is_small, small, large - kappa)
                 - log_sphere_surface_area(m, kappa.dtype))

        def grad(upstream):
            return -upstream * mean_resultant_length(m, kappa)

        return value, grad

    return _log_normalizer(kappa)


def vmf_kl_to_uniform(m, kappa):
    """`KL(vMF(mu, kappa) || U(S^{m-1}))`, which does not depend on `mu`.

    ```none
    KL = kappa A_m(kappa) + log C_m(kappa) + log |S^{m-1}|
       = -H[vMF] + log |S^{m-1}|
    ```

    (Davidson et al., 2018, in the lecture's form). Evaluated as `kappa A_m -
    log 0F1(; m/2; kappa^2/4)` for small `kappa` (`~ kappa^2 / (2m)`, kept to relative
    precision) and as `[log C_m + log|S| + kappa] - kappa (1 - A_m)` otherwise. Its gradient
    `kappa A_m'(kappa) >= 0` is attached as a custom gradient.

    Args:
      m: Python `int`, the dimension of the embedding space.
      kappa: floating `Tensor` of concentrations `[...]`, `kappa >= 0`.

    Returns:
      `Tensor` `[...]` of `kappa.dtype`, `>= 0`.
    """
    kappa = tf.convert_to_tensor(kappa)

    @tf.custom_gradient
    def _kl(kappa):
        small, large, is_small = _log_normalizer_parts(m, kappa)
        ratio = bessel_iv_ratio_value(0.5 * m, kappa)
        kl_small = small + kappa * ratio
        kl_large = large - kappa * (1.0 - ratio)
        value = tf.maximum(tf.where(is_small, kl_small, kl_large), 0.0)

        def grad(upstream):
            return upstream * kappa * _ratio_derivative_float64(m, kappa)

        return value, grad

    return _kl(kappa)
