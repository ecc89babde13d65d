"""Benchmark: the library's training epoch vs a bare non-XLA `tf.function` step, for one
configuration of each family other than the VAE (Glow, WGAN-GP, RBM CD-1).

    python bench/bench_steps.py [--family glow|wgan_gp|rbm|all] [--rounds 3] [--set KEY=VALUE ...]

The VAE has its own script (`bench/bench_vae.py`); this one applies the same method to

* `glow`: `configs/flows/glow_fashion_mnist.yaml` reduced to fit a CPU budget, with
  `data.name=mnist5k` (grey 28 x 28 like Fashion-MNIST, and prepared in seconds everywhere),
  `model.num_steps=4`, `model.hidden_channels=64` (two levels as configured) and epochs of
  `training.steps_per_epoch=20` batches of 64;
* `wgan_gp`: `configs/gan/wgan_gp_mnist5k.yaml` as it is (12 steps of 320 examples an epoch,
  each 5 critic updates with the gradient penalty and one generator update);
* `rbm`: `configs/ebm/rbm_cd1.yaml` as it is (500 hidden units, CD-1, SGD with momentum and
  weight decay; 40 steps of 100 dynamically binarized mnist5k digits an epoch).

For each family, one process and the same batches, the paths and the method of
`bench/bench_vae.py`: `library_default` (a run's strategy, model, optimizers and
`tfdgm.training.xla.select` decision for the config's default `training.jit_compile`, trained by
`model.fit` on the run's training stream with the family's callbacks, the NaN guard and the
progress bar), `library_xla` and `library_no_xla` (`training.jit_compile` forced), and `bare` /
`bare_xla`: a step written against the same layers (the family's `train_step` reduced to its
math) in a `tf.function` without / with XLA over the batches held in memory. Every path runs one
untimed epoch first, then `--rounds` alternated rounds (the order rotates each round). Goal of
issue 12: library_default / bare <= 1.0. Prints one JSON line per family (`--out`: also to a
file, one line per family).
"""

import argparse
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench_vae import PHILOX, add_common_arguments, emit, measure  # noqa: E402

FAMILIES = {
    "glow": ("configs/flows/glow_fashion_mnist.yaml",
             ["data.name=mnist5k", "model.num_steps=4", "model.hidden_channels=64",
              "training.steps_per_epoch=20"]),
    "wgan_gp": ("configs/gan/wgan_gp_mnist5k.yaml", []),
    "rbm": ("configs/ebm/rbm_cd1.yaml", []),
}


def _split(seed, n):
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


# Bare steps: each family's train_step reduced to its math, on the library model's layers. -------

def bare_glow_step(model, config, jit_compile=False):
    """Uniform dequantization and the flow's bits/dim (`DensityFlow.train_step` with
    `logit_alpha = 0`):

    x_q = floor(round(255 x) / 2^(8 - n_bits)), y = (x_q + u) / K, u ~ U[0, 1)^D;
    loss = mean_B -(log p_flow(y - 1/2) - D log K) / (D log 2).
    """
    if model.logit_alpha or model.dequantizer is not None:
        raise ValueError("the bare Glow step is written for logit_alpha=0 and uniform noise")
    options = config.optimizer
    optimizer = keras.optimizers.Adam(options.learning_rate, beta_1=options.beta_1,
                                      beta_2=options.beta_2, epsilon=options.epsilon)
    flow, variables = model.flow, model.trainable_variables
    levels, dims = float(2 ** model.n_bits), model.num_dims
    log_volume, nats_per_bit = dims * math.log(levels), dims * math.log(2.)

    @tf.function(jit_compile=jit_compile)
    def step(x, seed):
        x_q = tf.floor(tf.round(x * 255.) / float(2 ** (8 - model.n_bits)))
        y = (x_q + tf.random.stateless_uniform(tf.shape(x_q), seed, alg=PHILOX)) / levels
        with tf.GradientTape() as tape:
            log_p = flow.log_prob(y - 0.5, training=True)
            loss = tf.reduce_mean(-(log_p - log_volume) / nats_per_bit)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return step


def bare_wgan_gp_step(model, config, jit_compile=False):
    """One round of WGAN-GP's Algorithm 1 (Gulrajani et al. 2017), as `GAN.train_step`: for
    i < n_critic, on the strided minibatch x_i = x[i::n_critic] of m examples and m fresh fakes,

    L_D = mean_m [D(G(z)) - D(x_i) + lambda (||grad D(x_hat)|| - 1)^2],
    x_hat = e x_i + (1 - e) G(z), e ~ U[0, 1];

    then one generator update on m fresh latents, L_G = -mean_m D(G(z)). Adam per player.
    """
    generator, critic = model.generator, model.discriminator
    n_critic, penalty_weight, latent_dim = model.n_critic, model.gradient_penalty, model.latent_dim

    def adam(options):
        return keras.optimizers.Adam(options.learning_rate, beta_1=options.beta_1,
                                     beta_2=options.beta_2, epsilon=options.epsilon)

    g_optimizer, d_optimizer = adam(config.optimizer["generator"]), adam(
        config.optimizer["discriminator"])
    g_variables, d_variables = generator.trainable_variables, critic.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def step(x, seed):
        seeds = _split(seed, 2 * n_critic + 1)
        for i in range(n_critic):
            real = x[i::n_critic]
            m = tf.shape(real)[0]
            z = tf.random.stateless_normal([m, latent_dim], seeds[2 * i], alg=PHILOX)
            fake = tf.stop_gradient(generator(z, training=True))
            e = tf.random.stateless_uniform([m, 1, 1, 1], seeds[2 * i + 1], alg=PHILOX)
            x_hat = e * real + (1. - e) * fake
            with tf.GradientTape() as tape:
                scores = critic(tf.concat([real, fake], 0), training=True)
                d_real, d_fake = scores[:m], scores[m:]
                with tf.GradientTape() as inner:
                    inner.watch(x_hat)
                    hat_scores = critic(x_hat, training=False)
                grad = inner.gradient(hat_scores, x_hat)
                norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-12)
                d_loss = tf.reduce_mean(d_fake - d_real + penalty_weight * tf.square(norm - 1.))
            d_optimizer.apply(tape.gradient(d_loss, d_variables), d_variables)
        m = tf.shape(x[n_critic - 1::n_critic])[0]
        with tf.GradientTape() as tape:
            z = tf.random.stateless_normal([m, latent_dim], seeds[-1], alg=PHILOX)
            g_loss = -tf.reduce_mean(critic(generator(z, training=True), training=True))
        g_optimizer.apply(tape.gradient(g_loss, g_variables), g_variables)
        return g_loss

    return step


def bare_rbm_step(model, config, jit_compile=False):
    """CD-1 for a Bernoulli RBM (`RBM.train_step` with `cd_steps=1`, `persistent=False`):
    h ~ p(h | v), v~ ~ p(v | h) (one Gibbs sweep from the data, uniform noise thresholds), and
    SGD with momentum on L = mean F(v) - mean F(v~) + (lambda / 2) ||W||^2,
    F(v) = -b^T v - sum_j softplus(c_j + v^T W_j).
    """
    if model.persistent or model.cd_steps != 1:
        raise ValueError("the bare RBM step is CD-1")
    options = config.optimizer
    optimizer = keras.optimizers.SGD(options.learning_rate, momentum=options.momentum)
    weights, visible_bias, hidden_bias = model.rbm.kernel, model.rbm.visible_bias, \
        model.rbm.hidden_bias
    variables = [weights, visible_bias, hidden_bias]
    weight_decay = model.weight_decay

    def free_energy(v):
        return -(tf.linalg.matvec(v, visible_bias)
                 + tf.reduce_sum(tf.nn.softplus(tf.matmul(v, weights) + hidden_bias), -1))

    @tf.function(jit_compile=jit_compile)
    def step(x, seed):
        v = tf.reshape(x, [tf.shape(x)[0], -1])
        seed_h, seed_v = _split(seed, 2)
        p_h = tf.sigmoid(tf.matmul(v, weights) + hidden_bias)
        h = tf.cast(tf.random.stateless_uniform(tf.shape(p_h), seed_h, alg=PHILOX) < p_h, v.dtype)
        p_v = tf.sigmoid(tf.matmul(h, weights, transpose_b=True) + visible_bias)
        v_negative = tf.cast(
            tf.random.stateless_uniform(tf.shape(p_v), seed_v, alg=PHILOX) < p_v, v.dtype)
        with tf.GradientTape() as tape:
            loss = (tf.reduce_mean(free_energy(v)) - tf.reduce_mean(free_energy(v_negative))
                    + 0.5 * weight_decay * tf.reduce_sum(tf.square(weights)))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return step


BARE_STEPS = {"glow": bare_glow_step, "wgan_gp": bare_wgan_gp_step, "rbm": bare_rbm_step}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 1)[1])
    parser.add_argument("--family", choices=sorted(FAMILIES) + ["all"], default="all")
    add_common_arguments(parser)
    args = parser.parse_args()

    extra = list(args.set) + ([f"training.steps_per_epoch={args.steps}"] if args.steps else [])
    families = sorted(FAMILIES) if args.family == "all" else [args.family]
    if args.out:
        open(args.out, "w").close()
    for family in families:
        config_path, overrides = FAMILIES[family]
        result = measure(config_path, overrides + extra, BARE_STEPS[family],
                         args.paths.split(","), args.rounds, args.fit_epochs)
        result = {"benchmark": "bench_steps", "family": family, **result,
                  "goal": "library_default / bare <= 1.0"}
        emit(result)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
