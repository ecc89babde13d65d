"""Variational bounds on log p(x), computed per example from log-densities at posterior samples.

All functions take `[S, B]` tensors of log-densities at `S` samples `z_s ~ q(z | x_b)` and return
per-example `[B]` tensors; the model averages them over the global batch.
"""

import tensorflow as tf

from tfdgm.replicas import global_mean


def elbo_terms(log_px, log_pz, log_q, kl_per_dim=None, beta=1.0, free_bits=0.0):
    """The ELBO, its parts, and the training loss with KL warm-up and free bits.

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)), estimated with the S samples. When
    `kl_per_dim [B, D]` is given (a factorized posterior against a standard-normal prior) the KL
    is analytic; otherwise it is the Monte Carlo estimate `E_q[log q(z | x) - log p(z)]`.

    The loss is `-(E_q[log p(x | z)] - beta * KL')`, where KL' floors each dimension's KL at
    `free_bits` nats ("free bits", Kingma et al. 2016, eq. 15, per dimension, averaged over the
    GLOBAL batch before the floor so the floor is on the expected KL and one device and N
    replicas take the same step) — warm-up (Bowman et al. 2016, Sonderby et al. 2016) scales it
    by `beta` in [0, 1].

    Returns:
      A dict of `[B]` tensors: `elbo`, `reconstruction`, `kl`, and `loss` (what is minimized).
    """
    reconstruction = tf.reduce_mean(log_px, axis=0)
    if kl_per_dim is not None:
        kl = tf.reduce_sum(kl_per_dim, axis=-1)
    else:
        kl = tf.reduce_mean(log_q - log_pz, axis=0)
    if free_bits > 0.0:
        if kl_per_dim is None:
            raise ValueError("free bits need a per-dimension KL (a diagonal Gaussian posterior "
                             "with a standard-normal prior).")
        batch_kl = global_mean(kl_per_dim, keepdims=True)
        # Dimensions whose batch-averaged KL is under the floor get no KL gradient this step.
        floor = tf.fill(tf.shape(kl_per_dim), tf.cast(free_bits, kl_per_dim.dtype))
        kl_trained = tf.reduce_sum(tf.where(batch_kl < free_bits, floor, kl_per_dim), axis=-1)
    else:
        kl_trained = kl
    return {
        "elbo": reconstruction - kl,
        "reconstruction": reconstruction,
        "kl": kl,
        "loss": -(reconstruction - beta * kl_trained),
    }


def log_importance_weights(log_px, log_pz, log_q):
    """`log w_s = log p(x, z_s) - log q(z_s | x)`, `[S, B]`."""
    return log_px + log_pz - log_q


def iwae_bound(log_weights):
    """The importance-weighted bound (Burda et al. 2016), `[S, B] -> [B]`.

    L_k = E[log (1/k) sum_s w_s] with `k = S`; L_1 is the ELBO, L_k <= L_{k+1} <= log p(x), and
    L_k -> log p(x) as k -> infinity.
    """
    num_samples = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
    return tf.reduce_logsumexp(log_weights, axis=0) - tf.math.log(num_samples)


def linear_warmup(epoch, warmup_epochs):
    """beta = min(1, epoch / warmup_epochs) for 0-based `epoch`; 1 without warm-up."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, epoch / warmup_epochs)

