"""ELBO surgery: the average KL split into mutual information and marginal KL (Hoffman & Johnson
2016, "ELBO surgery: yet another way to carve up the variational evidence lower bound").

For N examples `x_n` with the empirical distribution `p_D(x) = (1/N) sum_n delta(x - x_n)` and the
aggregated posterior `q_agg(z) = (1/N) sum_n q(z | x_n)`,

    (1/N) sum_n KL(q(z | x_n) || p(z))  =  I_q[x, z]  +  KL(q_agg(z) || p(z)),
    I_q[x, z] = (1/N) sum_n KL(q(z | x_n) || q_agg(z))  in [0, log N],

so the ELBO is `E[log p(x | z)] - I_q[x, z] - KL(q_agg || p)`: the prior enters only through the
marginal KL, which is zero iff `p = q_agg` (the optimal prior, which the VampPrior approximates).

Estimates, with `S` samples `z_{n,s} ~ q(z | x_n)` per example:

    average KL          (1/NS) sum_{n,s} log q(z_{n,s} | x_n) - log p(z_{n,s})
    mutual information  (1/NS) sum_{n,s} log q(z_{n,s} | x_n) - log q_agg(z_{n,s})
    marginal KL         (1/NS) sum_{n,s} log q_agg(z_{n,s}) - log p(z_{n,s})
    log q_agg(z) = logsumexp_m log q(z | x_m) - log N

(the identity holds term by term). `log q(z | x_m)` at every sample and every example is the
model's `pairwise_log_q(z [n, Dz], x [m, H, W, C]) -> [n, m]`, which needs a posterior with
`log_prob(z, h)`; for the two-level model `z = (z1, z2)` is the joint latent, so the average KL
is the ELBO's KL term. The quantities are those of the N evaluated examples' empirical
distribution: `I <= log N`, and both parts depend on N (Hoffman & Johnson use the whole training
set).

Cost: `N S x N` posterior log-densities, `O(N^2 S)` time (times the q(z1 | x, z2) network for
the two-level model); memory is bounded by evaluating blocks of at most `max_pairs` (sample,
example) pairs, accumulated by a running logsumexp. On 2 CPU cores, N = 1000 takes seconds for a
one-level VAE with a diagonal Gaussian and about a minute for the two-level model with 300-unit
layers; N = 10000 is 100 times that.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.data.batches import images_of


def _collect_images(dataset, max_examples):
    images, seen = [], 0
    for data in dataset:
        x = np.asarray(images_of(data))
        if max_examples is not None:
            x = x[: max_examples - seen]
        images.append(x)
        seen += len(x)
        if max_examples is not None and seen >= max_examples:
            break
    return np.concatenate(images, axis=0)


def elbo_surgery(model, dataset, max_examples=1000, samples_per_example=1, seed=0,
                 batch_size=250, max_pairs=65536) -> Dict[str, float]:
    """Estimates the ELBO-surgery decomposition on (up to `max_examples` of) `dataset`.

    Args:
      model: a `VAE` or `HierarchicalVAE` with a posterior that has `log_prob(z, h)`.
      dataset: batches of images (as `x`, `(x, ...)` or `{"image": x}`).
      max_examples: N, examples of the empirical distribution (None: all of `dataset`).
      samples_per_example: S, codes drawn per example.
      seed: seed of the posterior samples.
      batch_size: examples per pass when drawing the samples.
      max_pairs: the most (sample, example) pairs evaluated in one block (memory bound).

    Returns:
      `{"mutual_information", "marginal_kl", "average_kl"}` (nats, floats) and `num_examples`.
    """
    images = _collect_images(dataset, max_examples)
    num_examples = len(images)

    @tf.function(reduce_retracing=True)
    def draw(x, step_seed):
        q, _, log_pz = model.log_densities(x, samples_per_example, step_seed)
        width = tf.shape(q.z)[-1]
        return tf.reshape(q.z, [-1, width]), tf.reshape(q.log_q, [-1]), tf.reshape(log_pz, [-1])

    codes, log_q, log_p = [], [], []
    for index, start in enumerate(range(0, num_examples, batch_size)):
        # [S, b, Dz] -> rows s-major within the batch; the owning example is irrelevant below.
        z, lq, lp = draw(tf.constant(images[start:start + batch_size]),
                         tfdgm_random.step_seed(seed, index, stream=2))
        codes.append(z.numpy())
        log_q.append(lq.numpy().astype(np.float64))
        log_p.append(lp.numpy().astype(np.float64))
    codes = np.concatenate(codes)
    log_q, log_p = np.concatenate(log_q), np.concatenate(log_p)
    num_codes, width = codes.shape

    pairwise = tf.function(model.pairwise_log_q, reduce_retracing=True, input_signature=[
        tf.TensorSpec([None, width], tf.float32),
        tf.TensorSpec([None, *images.shape[1:]], tf.float32)])
    example_block = max(1, min(num_examples, max_pairs // max(num_codes, 1)))
    code_block = max(1, min(num_codes, max_pairs // example_block))
    log_q_agg = np.full(num_codes, -np.inf)
    for start in range(0, num_examples, example_block):
        x = tf.constant(images[start:start + example_block])
        for first in range(0, num_codes, code_block):
            block = pairwise(tf.constant(codes[first:first + code_block]), x).numpy()
            block = block.astype(np.float64)
            log_q_agg[first:first + code_block] = np.logaddexp(
                log_q_agg[first:first + code_block],
                np.logaddexp.reduce(block, axis=1))
    log_q_agg -= np.log(num_examples)

    return {"mutual_information": float(np.mean(log_q - log_q_agg)),
            "marginal_kl": float(np.mean(log_q_agg - log_p)),
            "average_kl": float(np.mean(log_q - log_p)),
            "num_examples": int(num_examples)}
