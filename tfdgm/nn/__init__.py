"""Keras 3 layers: gated units, encoders and decoders, MADE."""

from tfdgm.nn.gated import GatedConv2D, GatedDense
from tfdgm.nn import networks
from tfdgm.nn.made import MADE
