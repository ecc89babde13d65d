"""The partition function of an RBM: annealed importance sampling and exact enumeration.

Annealed importance sampling (Neal 2001), as Salakhutdinov & Murray (2008) run it for RBMs:
`M` independent chains move from a base-rate model `p_A` (an RBM with `W = 0`, `c = 0` and
visible biases `b_A`, usually `log(p_i / (1 - p_i))` of the training data's marginals) to the
target RBM `p_B` through the geometric path on the joint `(v, h)`; with the hidden units summed
out, the unnormalized intermediate marginals are

```none
log f_k(v) = (1 - beta_k) b_A^T v + beta_k b^T v + sum_j softplus(beta_k (c_j + v^T W_j))
log Z_0 = H log 2 + sum_i softplus(b_A_i)           (beta_0 = 0: the base rate model)
log f_K(v) = -F(v)                                  (beta_K = 1: the target)
```

Each chain starts at `v_1 ~ p_A` and alternates `log w += log f_k(v_k) - log f_{k-1}(v_k)` with
one Gibbs sweep `v_{k+1} ~ T_k(. | v_k)` that leaves `p_k` invariant
(`p(h_j = 1 | v) = sigmoid(beta_k (c_j + v^T W_j))`,
`p(v_i = 1 | h) = sigmoid((1 - beta_k) b_A_i + beta_k (b_i + W_i h))`). Then

```none
Z_B / Z_A ~ r = mean_m w_m,       log Z_B ~ log Z_A + logmeanexp_m log w_m
se(log Z_B) ~ std_m(w_m) / (sqrt(M) mean_m w_m)           (delta method)
bounds: log(Z_A (r -+ 3 std_m(w_m) / sqrt(M)))            (Salakhutdinov & Murray 2008, 4.2)
```

Gaussian visibles (`visible_sigma` given; `tfdgm.models.ebm.energy`): the base model is the
factorial Gaussian `N(b_A, sigma_A^2)` fitted to the training data's marginals (mean and
standard deviation per component) with uniform hidden units, and the same geometric path gives

```none
log f_k(v) = -(1 - beta_k) sum_i (v_i - b_A_i)^2 / (2 sigma_A_i^2)
             - beta_k sum_i (v_i - b_i)^2 / (2 sigma_i^2)
             + sum_j softplus(beta_k (c_j + (v / sigma)^T W_j))
log Z_0    = H log 2 + D/2 log(2 pi) + sum_i log sigma_A_i
```

Every intermediate `p_k` is itself a Gaussian-Bernoulli RBM (`gaussian_intermediate`: its
visible precisions `(1 - beta_k) / sigma_A^2 + beta_k / sigma^2`), so its Gibbs sweep is exact,
`Z_0` is a Gaussian integral, and each `log Z_k` is exact by enumeration for small `H`
(`exact_log_partition(..., visible_sigma=...)` sums the Gaussian integrals over all `h`).

The whole run is one compiled `tf.while_loop` over the `K` temperatures with all `M` chains as
a batch; the matrix products run in the parameters' dtype and the weights accumulate in float64.
`exact_log_partition` sums over the smaller layer (the other summed out analytically) for
checking AIS on small RBMs.
"""

import dataclasses
import math
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.models.ebm import energy

PAPER_SCHEDULE: Tuple[Tuple[float, int], ...] = ((0.5, 1000), (0.9, 4000), (1.0, 10000))
"""Salakhutdinov & Murray (2008): 1000 betas uniformly in [0, 0.5], 4000 in [0.5, 0.9] and
10000 in [0.9, 1], `(end beta, number of betas)` per segment."""


def beta_schedule(segments: Sequence[Tuple[float, int]] = PAPER_SCHEDULE,
                  num_betas: Optional[int] = None) -> np.ndarray:
    """The inverse temperatures `0 = beta_0 < beta_1 < ... < beta_K = 1`, `[K + 1]` float64.

    Args:
      segments: `(end beta, count)` pairs, ends increasing to 1: `count` betas spaced
        uniformly up to `end` (the last one equal to `end`).
      num_betas: `K`; None: the sum of the counts; otherwise the counts are scaled to sum to `K`
        (each segment keeps at least one beta).
    """
    ends = [float(end) for end, _ in segments]
    counts = [int(count) for _, count in segments]
    if not segments or any(b <= a for a, b in zip([0.0] + ends, ends)) or ends[-1] != 1.0:
        raise ValueError(f"AIS schedule ends must increase from above 0 to exactly 1, got {ends}")
    if any(count < 1 for count in counts):
        raise ValueError(f"AIS schedule counts must be >= 1, got {counts}")
    if num_betas is not None:
        if num_betas < len(segments):
            raise ValueError(f"num_betas must be at least {len(segments)} (one per segment)")
        total = sum(counts)
        scaled = [max(1, int(round(count * num_betas / total))) for count in counts]
        scaled[-1] = max(1, num_betas - sum(scaled[:-1]))
        counts = scaled
    betas, start = [np.zeros(1)], 0.0
    for end, count in zip(ends, counts):
        betas.append(np.linspace(start, end, count + 1)[1:])
        start = end
    return np.concatenate(betas)


def base_rate_visible_bias(data, epsilon: float = 1e-3, prior_count: float = 0.0) -> np.ndarray:
    """`b_i = log(p_i / (1 - p_i))` of the marginals `p_i` of `data [N, D]`, `p` clipped to
    `[epsilon, 1 - epsilon]` (always-off pixels would otherwise get `-inf`); `prior_count`
    pseudo-counts of 0.5 may be added, as in Salakhutdinov & Murray's code."""
    data = np.asarray(data, np.float64).reshape(len(data), -1)
    p = (data.sum(axis=0) + 0.5 * prior_count) / (len(data) + prior_count)
    p = np.clip(p, epsilon, 1.0 - epsilon)
    return np.log(p) - np.log1p(-p)


@dataclasses.dataclass(frozen=True)
class AISResult:
    """An AIS estimate of `log Z`.

    Attributes:
      log_z: `log Z_A + logmeanexp(log w)`.
      std_error: delta-method standard error of `log_z`.
      log_z_lower, log_z_upper: `log(Z_A (r -+ 3 sigma_r))`; the lower one is `-inf` when
        `r - 3 sigma_r <= 0`.
      log_weights: `[M]` log importance weights.
      log_z_base: `log Z_A`.
      num_betas: `K`.
    """
    log_z: float
    std_error: float
    log_z_lower: float
    log_z_upper: float
    log_weights: np.ndarray
    log_z_base: float
    num_betas: int


def summarize_log_weights(log_weights, log_z_base: float, num_betas: int = 0) -> AISResult:
    """`AISResult` of the log importance weights `[M]` (see the module docstring)."""
    log_w = np.asarray(log_weights, np.float64)
    m = len(log_w)
    shift = np.max(log_w)
    w = np.exp(log_w - shift)                          # r and sigma in units of exp(shift)
    mean, std = w.mean(), w.std(ddof=1) if m > 1 else 0.0
    sigma = std / math.sqrt(m)
    log_z = log_z_base + shift + math.log(mean)
    lower = (log_z_base + shift + math.log(mean - 3 * sigma)) if mean > 3 * sigma else -math.inf
    upper = log_z_base + shift + math.log(mean + 3 * sigma)
    return AISResult(log_z=float(log_z), std_error=float(sigma / mean), log_z_lower=float(lower),
                     log_z_upper=float(upper), log_weights=log_w, log_z_base=float(log_z_base),
                     num_betas=int(num_betas))


@tf.function(reduce_retracing=True)
def _ais_loop(weights, visible_bias, hidden_bias, base_bias, betas, num_chains, seed,
              sigma=None, base_sigma=None):
    """The compiled AIS run: `[M]` float64 log weights (module docstring); Gaussian visibles
    when `sigma` (and `base_sigma`) are given."""
    dtype = weights.dtype
    num_visible = tf.shape(weights)[0]
    num_hidden = tf.shape(weights)[1]
    gaussian = sigma is not None
    seeds = tf.random.experimental.stateless_split(seed, 2)
    if gaussian:
        v = base_bias + base_sigma * tfdgm_random.stateless_normal([num_chains, num_visible],
                                                                   seeds[0], dtype=dtype)
        scale = 1.0 / sigma
    else:
        v = energy.bernoulli_from_uniform(
            tf.broadcast_to(tf.sigmoid(base_bias), [num_chains, num_visible]),
            tfdgm_random.stateless_uniform([num_chains, num_visible], seeds[0], dtype=dtype))
        scale = tf.ones([num_visible], dtype)

    def f64(x):
        return tf.cast(x, tf.float64)

    def log_f(v, pre, beta):
        """`log f_beta(v)` in float64 from `pre = (v / sigma) W + c` (the parameters' dtype)."""
        beta = f64(beta)
        if gaussian:
            base = -tf.reduce_sum(f64(tf.square(v - base_bias) / (2 * tf.square(base_sigma))), -1)
            target = -tf.reduce_sum(f64(tf.square(v - visible_bias) / (2 * tf.square(sigma))), -1)
        else:
            base = f64(tf.linalg.matvec(v, base_bias))
            target = f64(tf.linalg.matvec(v, visible_bias))
        return (1.0 - beta) * base + beta * target + tf.reduce_sum(
            tf.math.softplus(beta * f64(pre)), -1)

    def step(k, v, log_w):
        beta_prev, beta = betas[k - 1], betas[k]
        pre = tf.matmul(v * scale, weights) + hidden_bias
        log_w += log_f(v, pre, beta) - log_f(v, pre, beta_prev)
        step_seeds = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(seeds[1], tf.cast(k, tf.int64)), 2)
        beta_t = tf.cast(beta, dtype)
        h = energy.bernoulli_from_uniform(
            tf.sigmoid(beta_t * pre),
            tfdgm_random.stateless_uniform([num_chains, num_hidden], step_seeds[0], dtype=dtype))
        if gaussian:
            w_k, b_k, _, sigma_k, _ = gaussian_intermediate(
                beta_t, weights, visible_bias, hidden_bias, sigma, base_bias, base_sigma)
            noise = tfdgm_random.stateless_normal([num_chains, num_visible], step_seeds[1],
                                                  dtype=dtype)
            v = energy.gaussian_visible_mean(h, w_k, b_k, sigma_k) + sigma_k * noise
        else:
            logits = (1 - beta_t) * base_bias + beta_t * (
                tf.matmul(h, weights, transpose_b=True) + visible_bias)
            v = energy.bernoulli_from_uniform(
                tf.sigmoid(logits),
                tfdgm_random.stateless_uniform([num_chains, num_visible], step_seeds[1],
                                               dtype=dtype))
        return k + 1, v, log_w

    num_steps = tf.shape(betas)[0]
    _, _, log_w = tf.while_loop(lambda k, *_: k < num_steps, step,
                                (tf.constant(1), v, tf.zeros([num_chains], tf.float64)))
    return log_w


def ais_log_partition(weights, visible_bias, hidden_bias, base_visible_bias,
                      betas=None, num_chains: int = 100, seed: int = 0, visible_sigma=None,
                      base_sigma=None) -> AISResult:
    """AIS estimate of `log Z` of the RBM `(W [D, H], b [D], c [H])`.

    Args:
      weights, visible_bias, hidden_bias: the target RBM (tensors or arrays; their dtype is
        the dtype of the Gibbs sweeps).
      base_visible_bias: `b_A [D]` of the base-rate model (`base_rate_visible_bias`); for
        Gaussian visibles the base model's mean.
      betas: `[K + 1]` from 0 to 1 (`beta_schedule`; default the paper's 15000).
      num_chains: `M`.
      seed: seed of the run (the same seed, the same estimate).
      visible_sigma: `sigma [D]` of a Gaussian-Bernoulli RBM (None: Bernoulli visibles).
      base_sigma: `sigma_A [D]` of the Gaussian base model (with `visible_sigma`;
        `gaussian_base_model` fits both to data).

    Example:

    ```python
    result = ais_log_partition(rbm.kernel, rbm.visible_bias, rbm.hidden_bias,
                               base_rate_visible_bias(train_images), beta_schedule())
    result.log_z, result.std_error
    ```
    """
    weights = tf.convert_to_tensor(weights)
    dtype = weights.dtype
    visible_bias = tf.cast(visible_bias, dtype)
    hidden_bias = tf.cast(hidden_bias, dtype)
    base = tf.cast(base_visible_bias, dtype)
    if (visible_sigma is None) != (base_sigma is None):
        raise ValueError("Gaussian visibles need both visible_sigma and base_sigma")
    betas = beta_schedule() if betas is None else np.asarray(betas, np.float64)
    if betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) <= 0):
        raise ValueError("betas must increase from exactly 0 to exactly 1")
    gaussian = {}
    log_z_base = weights.shape[1] * math.log(2.0)
    if visible_sigma is not None:
        gaussian = dict(sigma=tf.cast(visible_sigma, dtype), base_sigma=tf.cast(base_sigma, dtype))
        log_z_base += (0.5 * weights.shape[0] * math.log(2 * math.pi)
                       + float(np.sum(np.log(np.asarray(base_sigma, np.float64)))))
    else:
        log_z_base += float(tf.reduce_sum(tf.math.softplus(tf.cast(base, tf.float64))))
    log_w = _ais_loop(weights, visible_bias, hidden_bias, base, tf.constant(betas, tf.float64),
                      tf.constant(int(num_chains)), tf.constant([seed, 1], tf.int64), **gaussian)
    return summarize_log_weights(log_w.numpy(), log_z_base, len(betas) - 1)


def gaussian_intermediate(beta, weights, visible_bias, hidden_bias, sigma, base_mean, base_sigma):
    """The AIS intermediate `p_beta ∝ p_A^(1 - beta) p_B^beta` of a Gaussian-Bernoulli RBM `p_B`
    and the Gaussian base model `p_A = N(b_A, sigma_A^2)` (uniform hidden units), which is
    itself a Gaussian-Bernoulli RBM:

    ```none
    1 / sigma_k^2 = (1 - beta) / sigma_A^2 + beta / sigma^2
    b_k = sigma_k^2 ((1 - beta) b_A / sigma_A^2 + beta b / sigma^2)
    W_k = beta (sigma_k / sigma) W,     c_k = beta c
    log f_beta(v) = log sum_h exp(-E_k(v, h)) + log_shift,
    log_shift = sum_i [b_k_i^2 / (2 sigma_k_i^2) - (1 - beta) b_A_i^2 / (2 sigma_A_i^2)
                       - beta b_i^2 / (2 sigma_i^2)]
    ```

    so its Gibbs sweep is the RBM's (`energy.gaussian_gibbs_step`) and its partition function
    `log Z_beta = exact_log_partition(W_k, b_k, c_k, visible_sigma=sigma_k) + log_shift` is
    exact for small `H`.

    Returns:
      `(W_k, b_k, c_k, sigma_k, log_shift)`.
    """
    precision = (1 - beta) / tf.square(base_sigma) + beta / tf.square(sigma)
    variance = 1.0 / precision
    mean = variance * ((1 - beta) * base_mean / tf.square(base_sigma)
                       + beta * visible_bias / tf.square(sigma))
    sigma_k = tf.sqrt(variance)
    log_shift = tf.reduce_sum(tf.square(mean) / (2 * variance)
                              - (1 - beta) * tf.square(base_mean) / (2 * tf.square(base_sigma))
                              - beta * tf.square(visible_bias) / (2 * tf.square(sigma)))
    return (beta * (sigma_k / sigma)[:, None] * weights, mean, beta * hidden_bias, sigma_k,
            log_shift)


def gaussian_base_model(data, min_std: float = 1e-3):
    """`(b_A, sigma_A)`, `[D]` each: the means and standard deviations (at least `min_std`) of
    `data [N, D]`, the factorial Gaussian base model of AIS for Gaussian visibles."""
    data = np.asarray(data, np.float64).reshape(len(data), -1)
    return data.mean(axis=0), np.maximum(data.std(axis=0), min_std)


def _configurations(units: int, start: int, stop: int) -> np.ndarray:
    """Binary configurations `start .. stop - 1` of `units` bits, `[stop - start, units]`."""
    codes = np.arange(start, stop, dtype=np.int64)[:, None]
    return ((codes >> np.arange(units, dtype=np.int64)) & 1).astype(np.float64)


def exact_log_partition(weights, visible_bias, hidden_bias, max_units: int = 20,
                        chunk: int = 4096, visible_sigma=None) -> float:
    """`log Z` by enumerating the smaller layer, in float64, `chunk` configurations at a time.

    Summing over `h` with `v` summed out analytically:
    `log Z = logsumexp_h [c^T h + sum_i softplus(b_i + W_i h)]` (and symmetrically over `v`,
    `logsumexp_v [-F(v)]`, when `D < H`). With `visible_sigma` (Gaussian visibles) the sum is
    over `h` of Gaussian integrals (`energy.gaussian_log_partition_terms`), whatever `D`.

    Raises:
      ValueError: the enumerated layer has more than `max_units` units.
    """
    w = tf.cast(weights, tf.float64)
    b = tf.cast(visible_bias, tf.float64)
    c = tf.cast(hidden_bias, tf.float64)
    num_visible, num_hidden = w.shape
    if visible_sigma is not None:
        sigma = tf.cast(visible_sigma, tf.float64)
        if num_hidden > max_units:
            raise ValueError(f"exact log Z of a Gaussian-Bernoulli RBM enumerates 2^{num_hidden} "
                             f"hidden configurations; at most {max_units} hidden units")
        total = 2 ** num_hidden
        parts = [tf.reduce_logsumexp(energy.gaussian_log_partition_terms(
            tf.constant(_configurations(num_hidden, start, min(total, start + chunk))),
            w, b, c, sigma)) for start in range(0, total, chunk)]
        return float(tf.reduce_logsumexp(tf.stack(parts)) + 0.5 * num_visible * math.log(
            2 * math.pi) + tf.reduce_sum(tf.math.log(sigma)))
    if min(num_visible, num_hidden) > max_units:
        raise ValueError(f"exact log Z enumerates 2^{min(num_visible, num_hidden)} "
                         f"configurations; at most {max_units} units on the smaller side")
    if num_hidden <= num_visible:  # the RBM with v and h exchanged has the same Z
        units, w, b, c = num_hidden, tf.transpose(w), c, b
    else:
        units = num_visible
    # -F(x) of the RBM whose "visible" layer is the enumerated one: (w [units, other], b, c).
    total = 2 ** units
    parts = []
    for start in range(0, total, chunk):
        x = tf.constant(_configurations(units, start, min(total, start + chunk)))
        parts.append(tf.reduce_logsumexp(-energy.free_energy(x, w, b, c)))
    return float(tf.reduce_logsumexp(tf.stack(parts)))


def brute_force_log_partition(weights, visible_bias, hidden_bias) -> float:
    """`log sum_{v, h} exp(-E(v, h))` over every joint configuration (tiny RBMs; tests)."""
    w = np.asarray(weights, np.float64)
    num_visible, num_hidden = w.shape
    v = _configurations(num_visible, 0, 2 ** num_visible)
    h = _configurations(num_hidden, 0, 2 ** num_hidden)
    joint_v = np.repeat(v, len(h), axis=0)
    joint_h = np.tile(h, (len(v), 1))
    e = energy.energy(tf.constant(joint_v), tf.constant(joint_h), tf.constant(w),
                      tf.constant(np.asarray(visible_bias, np.float64)),
                      tf.constant(np.asarray(hidden_bias, np.float64)))
    return float(tf.reduce_logsumexp(-e))


__all__ = ["AISResult", "PAPER_SCHEDULE", "ais_log_partition", "base_rate_visible_bias",
           "beta_schedule", "brute_force_log_partition", "exact_log_partition",
           "gaussian_base_model", "gaussian_intermediate", "summarize_log_weights"]
