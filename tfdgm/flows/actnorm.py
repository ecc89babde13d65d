"""ActNorm as a Keras layer with distribution-safe data-dependent initialization."""

import keras
import tensorflow as tf

from tfdgm import bijectors
from tfdgm.flows.base import FlowLayer

__all__ = ["ActNorm"]


@keras.saving.register_keras_serializable(package="tfdgm")
class ActNorm(FlowLayer):
    """Activation normalization (Glow) whose first training batch sets its parameters.

    ```none
    y = (x + shift) * exp(log_scale)          per channel, normalizing direction
    log|det dy/dx| = H * W * sum(log_scale)
    ```

    Weights: `shift` `[C]` and `log_scale` `[C]` (trainable, zero-initialized: the identity),
    and `initialized`, a non-trainable boolean scalar. On the first call with `training=True`
    while `initialized` is false, the layer sets `shift = -mean`, `log_scale = -log(std + eps)`
    from that batch (`tfdgm.bijectors.actnorm_initial_parameters`, Kingma & Dhariwal, 2018,
    section 3.1), so its outputs have zero mean and unit variance per channel, then sets
    `initialized`. The flag is saved by `save_weights` / checkpoints, so a reloaded model never
    initializes again; calls with `training=False` (or `None`) never initialize.

    Under `tf.distribute`, the statistics are those of the global batch: each replica sums
    `x`, `x^2` and its count, the sums are all-reduced in the replica context, and every replica
    assigns the same values (the variables are created with
    `aggregation='only_first_replica'`), so N replicas initialize exactly like one device on the
    same global batch. A collective cannot sit inside a `tf.cond` in a replica function, so the
    all-reduce (of `2C + 1` numbers) and the assignments run on every training call; once
    initialized, the local sums are skipped (`tf.cond`) and the assignments keep the current
    values.

    Shapes: `x` is `[B, H, W, C]`; returns `(y [B, H, W, C], log_det [B])`.

    #### Example

    ```python
    actnorm = ActNorm()
    x = tf.random.normal([16, 8, 8, 3], mean=2., stddev=3.)
    y, log_det = actnorm(x, training=True)     # initializes: y has per-channel mean 0, var 1
    x_back = actnorm.inverse(y)
    ```

    #### References

    [1]: Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
         Convolutions. In _Neural Information Processing Systems_, 2018.
         https://arxiv.org/abs/1807.03039
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        """Creates an ActNorm layer.

        Args:
            epsilon: Python `float` added to the standard deviation at initialization.
            **kwargs: passed to `keras.layers.Layer` (`name`, `dtype`, ...).
        """
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.shift = self.add_weight(shape=(channels,), initializer="zeros", name="shift",
                                     aggregation="only_first_replica")
        self.log_scale = self.add_weight(shape=(channels,), initializer="zeros",
                                         name="log_scale", aggregation="only_first_replica")
        self.initialized = self.add_weight(shape=(), initializer="zeros", dtype="bool",
                                           trainable=False, name="initialized",
                                           aggregation="only_first_replica")

    def bijector(self):
        return bijectors.ActNorm(self.shift, self.log_scale)

    def call(self, x, training=None):
        if training:
            self._initialize(x)
        return super().call(x)

    def _initialize(self, x):
        """Sets the parameters from the global batch `x` unless `initialized` (see class)."""
        channels = x.shape[-1]
        dtype = self.variable_dtype  # float32 statistics under a mixed-precision policy
        x = tf.cast(x, dtype)

        def local_sums():
            axes = list(range(len(x.shape) - 1))
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), dtype)
            return (tf.reduce_sum(x, axis=axes), tf.reduce_sum(tf.square(x), axis=axes), count)

        def skip():
            return tf.zeros([channels], dtype), tf.ones([channels], dtype), tf.ones([], dtype)

        initialized = tf.convert_to_tensor(self.initialized)
        sums = tf.cond(initialized, skip, local_sums)
        context = tf.distribute.get_replica_context()
        if context is not None:  # None in a cross-replica context: x is the global batch
            sums = context.all_reduce(tf.distribute.ReduceOp.SUM, list(sums))
        shift, log_scale = bijectors.actnorm_parameters_from_sums(*sums, epsilon=self.epsilon)
        self.shift.assign(tf.where(initialized, tf.cast(self.shift, dtype), shift))
        self.log_scale.assign(tf.where(initialized, tf.cast(self.log_scale, dtype), log_scale))
        self.initialized.assign(True)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
