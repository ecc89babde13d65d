"""The adversarial losses, per example, as functions of the discriminator's outputs.

`d_real = D(x)` `[B]` and `d_fake = D(G(z))` `[B]` are logits for the two cross-entropy games and
critic values for the others. Each discriminator loss is returned per pair of examples `[B]`
(the models average it over the global batch); `sigmoid(t) = 1 / (1 + e^-t)`,
`softplus(t) = log(1 + e^t)`, so `-log sigmoid(t) = softplus(-t)` and
`-log(1 - sigmoid(t)) = softplus(t)`.

```none
loss             discriminator loss                    generator loss
minimax          softplus(-d_real) + softplus(d_fake)  -softplus(d_fake) = log(1 - D(G(z)))
non_saturating   softplus(-d_real) + softplus(d_fake)  softplus(-d_fake) = -log D(G(z))
wgan, wgan_gp    d_fake - d_real                       -d_fake
hinge            relu(1 - d_real) + relu(1 + d_fake)   -d_fake
```

`minimax` is the game of Goodfellow et al. (2014, Eq. 1); `non_saturating` its variant with the
generator maximizing `log D(G(z))` (same paper, section 3), as in DCGAN (Radford et al. 2016).
`wgan` is the Kantorovich-Rubinstein dual of Arjovsky et al. (2017) with a weight-clipped
critic; `wgan_gp` adds the gradient penalty of Gulrajani et al. (2017) (`gradient_penalty`);
`hinge` is the hinge loss of Lim & Ye (2017) used by Miyato et al. (2018).

#### References

[1]: Ian Goodfellow et al. Generative Adversarial Nets. In _NeurIPS_, 2014.
[2]: Alec Radford, Luke Metz and Soumith Chintala. Unsupervised Representation Learning with
     Deep Convolutional Generative Adversarial Networks. In _ICLR_, 2016.
[3]: Martin Arjovsky, Soumith Chintala and Leon Bottou. Wasserstein Generative Adversarial
     Networks. In _ICML_, 2017.
[4]: Ishaan Gulrajani et al. Improved Training of Wasserstein GANs. In _NeurIPS_, 2017.
[5]: Jae Hyun Lim and Jong Chul Ye. Geometric GAN. arXiv:1705.02894, 2017.
[6]: Takeru Miyato et al. Spectral Normalization for Generative Adversarial Networks. In
     _ICLR_, 2018.
"""

import tensorflow as tf

__all__ = ["LOSSES", "discriminator_loss", "generator_loss", "gradient_penalty",
           "is_wasserstein", "uses_logits"]

LOSSES = ("non_saturating", "minimax", "wgan", "wgan_gp", "hinge")


def uses_logits(loss: str) -> bool:
    """Whether the discriminator's output is a logit (the two cross-entropy games)."""
    return loss in ("non_saturating", "minimax")


def is_wasserstein(loss: str) -> bool:
    """Whether `E D(x) - E D(G(z))` estimates a Wasserstein distance (up to the Lipschitz
    constant): the critic losses `wgan` and `wgan_gp`."""
    return loss in ("wgan", "wgan_gp")


def _check(loss):
    if loss not in LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r}; choose one of {', '.join(LOSSES)}.")


def discriminator_loss(loss: str, d_real, d_fake):
    """The discriminator's (critic's) loss per example `[B]` (without any gradient penalty)."""
    _check(loss)
    if uses_logits(loss):
        return tf.nn.softplus(-d_real) + tf.nn.softplus(d_fake)
    if is_wasserstein(loss):
        return d_fake - d_real
    return tf.nn.relu(1. - d_real) + tf.nn.relu(1. + d_fake)


def generator_loss(loss: str, d_fake):
    """The generator's loss per example `[B]`."""
    _check(loss)
    if loss == "minimax":
        return -tf.nn.softplus(d_fake)
    if loss == "non_saturating":
        return tf.nn.softplus(-d_fake)
    return -d_fake


def gradient_penalty(critic, real, fake, eps):
    """The WGAN-GP penalty per example `[B]` (Gulrajani et al. 2017, Algorithm 1):

    ```none
    x_hat = eps x + (1 - eps) G(z),   eps ~ U[0, 1] per example
    penalty = (||grad_x_hat D(x_hat)||_2 - 1)^2
    ```

    The norm runs over every axis but the first (all pixels of an image). `D` is evaluated on
    each interpolate on its own, so `D` must treat examples independently (no batch norm).

    Args:
      critic: `x [B, ...] -> [B]`.
      real, fake: `[B, ...]`.
      eps: `[B]` in [0, 1].

    Returns:
      `[B]` penalties, differentiable with respect to the critic's weights.
    """
    eps = tf.reshape(tf.cast(eps, real.dtype), [-1] + [1] * (real.shape.rank - 1))
    x_hat = eps * real + (1. - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat)
    gradients = tape.gradient(scores, x_hat)
    axes = list(range(1, real.shape.rank))
    norm = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=axes) + 1e-12)
    return tf.square(norm - 1.)
