"""The density-flow family: Glow, RealNVP and MAF on dequantized 8-bit images.

    dequantization.py   quantize, uniform and variational (Flow++) dequantization, bits/dim
    options.py          the `model:` and `evaluation:` sections
    model.py            DensityFlow (preprocessing, bound, training, export) and the three flows
    evaluation.py       metrics.json: test bits/dim, importance-weighted estimate, round trip

Importing it registers the model names `glow`, `realnvp` and `maf`. The flow layers themselves
live in `tfdgm.flows` (imported here as `flow_layers`: this package's name shadows it inside
`tfdgm.models`).
"""

from tfdgm.models.flows.dequantization import VariationalDequantizer, bits_per_dim, quantize
from tfdgm.models.flows.model import MAF, DensityFlow, Glow, RealNVP, temperature_name
from tfdgm.models.flows.options import (DensityFlowOptions, FlowEvaluationOptions, GlowOptions,
                                        MAFOptions, RealNVPOptions)

__all__ = ["DensityFlow", "DensityFlowOptions", "FlowEvaluationOptions", "Glow", "GlowOptions",
           "MAF", "MAFOptions", "RealNVP", "RealNVPOptions", "VariationalDequantizer",
           "bits_per_dim", "quantize", "temperature_name"]
