"""The flows compose with TFP: a tfb.Chain of every kind, amortized, with sample dims."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfdgm.bijectors import IAF, Householder, Planar, Radial, Sylvester, orthogonalize
from tfdgm.nn import MADE
from tfdgm.testing import bijector_checks as checks

tfb = tfp.bijectors
B, S, D = 3, 2, 4


def test_chain_log_det_matches_jacobian():
    rng = np.random.default_rng(30)

    def normal(*shape):
        return tf.constant(rng.standard_normal(shape))

    made = MADE(D, [8], input_order="right-to-left", dtype="float64")
    context = normal(B, 5)
    made(tf.zeros([B, D], tf.float64), context)
    checks.randomize_weights(made, seed=4)
    flows = [
        Planar(normal(B, D), normal(B, D), normal(B)),
        Radial(normal(B, D), normal(B), normal(B)),
        Householder(normal(B, 2, D)),
        Sylvester(orthogonalize(normal(B, D, 2), tol=1e-13), normal(B, 2, 2), normal(B, 2, 2),
                  normal(B, 2)),
        IAF(lambda z: made(z, context)),
    ]
    chain = tfb.Chain(list(reversed(flows)))  # Chain applies its last bijector first.
    x = normal(S, B, D)
    fldj, _ = checks.assert_log_det_matches_jacobian(chain, x)
    total = sum(f.forward_log_det_jacobian(z, event_ndims=1).numpy()
                for f, z in zip(flows, _intermediates(flows, x)))
    np.testing.assert_allclose(fldj, total, atol=1e-10)


def _intermediates(flows, x):
    points = [x]
    for flow in flows[:-1]:
        points.append(flow.forward(points[-1]))
    return points
