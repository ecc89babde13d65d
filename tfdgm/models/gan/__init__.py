"""The adversarial family: GANs with the cross-entropy, Wasserstein (clipped or gradient-
penalized) and hinge losses, spectral normalization, and BiGAN.

Importing it registers the model names `gan` and `bigan`.

    losses.py         the losses per example, the gradient penalty
    spectral_norm.py  SpectralNormalization (Miyato et al. 2018), power-iteration state saved
    networks.py       dcgan and mlp generators, discriminators, BiGAN's encoder and joint D
    model.py          GAN: n_critic discriminator updates per generator update
    bigan.py          BiGAN (Donahue et al. 2017)
    options.py        the config sections and each paper's defaults
"""

from tfdgm.models.gan.bigan import BiGAN
from tfdgm.models.gan.model import GAN
from tfdgm.models.gan.options import BiGANOptions, GANEvaluationOptions, GANOptions
from tfdgm.models.gan.spectral_norm import SpectralNormalization

__all__ = ["BiGAN", "BiGANOptions", "GAN", "GANEvaluationOptions", "GANOptions",
           "SpectralNormalization"]
