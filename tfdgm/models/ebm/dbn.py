"""The deep belief net (Hinton, Osindero & Teh 2006), trained greedily one RBM at a time.

A DBN with hidden layers `h_1 .. h_L` is a stack of RBMs `(v, h_1), (h_1, h_2), ..., (h_{L-1},
h_L)`: the top pair is an RBM, the layers below are directed sigmoid belief nets,

```none
p(v, h_1, ..., h_L) = p(v | h_1) ... p(h_{L-2} | h_{L-1}) p(h_{L-1}, h_L)
p(h_{l-1} = 1 | h_l) = sigmoid(b_l + W_l h_l)      (RBM l's visible conditional)
```

Greedy training as phases of one `fit`: a non-trainable variable `layer` (saved in checkpoints)
selects the RBM that trains; `GreedyLayerPhase` sets it to `epoch // epochs_per_layer` at the
start of each epoch, so RBM `l` trains during epochs `[l E, (l + 1) E)` by CD-k or PCD on the
hidden probabilities of the trained layers below (`up_pass`). The train step is a
`tf.switch_case` on `layer` whose branch `l` returns the CD gradients of RBM `l` and zeros for
the others; when the phase changes the callback zeroes the optimizer's slots (momentum), so an
RBM's update never carries its predecessor's momentum and frozen RBMs do not move: each RBM
trains as if by a fresh optimizer. Only the bottom RBM's visible biases start at the data's
log-odds; the upper ones start at 0. The optimizer's learning-rate and momentum schedules
(Hinton 2010's momentum 0.5, then 0.9) restart with each layer too, counted from the phase's
first update (`ScheduledOptimizer.schedule_start`, saved with the optimizer's state).

Generation: `sample_steps` Gibbs sweeps in the top RBM from random states, then a down-pass of
samples through the directed layers (the last step's probabilities are returned).

Evaluation: the variational lower bound (Salakhutdinov & Murray 2008, section 5) with the
factorial up-pass posterior `q(h_1 .. h_{L-1} | v) = prod_l q(h_l | h_{l-1})`,
`q(h_l = 1 | h_{l-1}) = sigmoid(c_l + W_l^T h_{l-1})`:

```none
log p(v) >= E_q[log p(v | h_1) + ... + log p(h_{L-2} | h_{L-1}) - F_L(h_{L-1})
                - log q(h_1 .. h_{L-1} | v)] - log Z_L
```

estimated with `bound_samples` samples of `q` per example, and `log Z_L` of the top RBM by AIS
(base rate: the marginals of the training data's up-pass probabilities). With one hidden layer
it is the RBM's exact `-F(v) - log Z`.
"""

import keras
import numpy as np
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm.data.batches import images_of
from tfdgm.errors import ConfigError
from tfdgm.models.base import GenerativeModel, Signature, check_temperature
from tfdgm.optimizers import restart_schedules
from tfdgm.models.ebm.ais import base_rate_visible_bias
from tfdgm.models.ebm.layer import BernoulliRBM
from tfdgm.models.ebm.options import DBNOptions, EBMEvaluationOptions
from tfdgm.models.ebm.rbm import (assign_replica_rows, check_binary_data, filter_grid_images,
                                  flatten, replica_rows)
from tfdgm.registry import MODELS


class GreedyLayerPhase(keras.callbacks.Callback):
    """Sets the DBN's `layer = min(epoch // epochs_per_layer, L - 1)` at the start of each epoch
    and, when it changes, zeroes the optimizer's slot variables and restarts its learning-rate
    and momentum schedules (`tfdgm.optimizers`; module docstring)."""

    def __init__(self, epochs_per_layer: int):
        super().__init__()
        self.epochs_per_layer = int(epochs_per_layer)

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        layer = min(epoch // self.epochs_per_layer, len(model.rbms) - 1)
        if layer != int(model.layer.numpy()):
            model.layer.assign(layer)
            for variable in model.optimizer.variables:  # slots have the weights' ranks >= 1
                if len(variable.shape) >= 1:
                    variable.assign(tf.zeros(variable.shape, variable.dtype))
            restart_schedules(model.optimizer)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["layer"] = float(self.model.layer.numpy())


def _bernoulli_log_prob(x, logits):
    """`sum_i x_i log sigmoid(a_i) + (1 - x_i) log sigmoid(-a_i)` over the last axis."""
    return -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), -1)


@MODELS.register("dbn")
@keras.saving.register_keras_serializable("tfdgm")
class DBN(GenerativeModel):
    """A deep belief net of stacked `BernoulliRBM`s over flattened binary images.

    Args:
      image_shape: `(H, W, C)`.
      hidden_units: sizes of `h_1 .. h_L`.
      epochs_per_layer: `E`, epochs of each greedy phase.
      cd_steps, persistent, num_chains, weight_decay, init_stddev, sample_steps: as for
        `tfdgm.models.ebm.RBM`, for every layer.
      seed: seeds the weights and the Gibbs noise.

    Example:

    ```python
    dbn = DBN((28, 28, 1), hidden_units=[500, 2000], epochs_per_layer=10)
    dbn.build()
    x = dbn.sample(16, seed=0)                                   # [16, 28, 28, 1]
    bound = dbn.log_likelihood_bound(x, 10, tf.constant([0, 0], tf.int64))  # [16], + log Z_L
    ```
    """

    Options = DBNOptions
    EvaluationOptions = EBMEvaluationOptions
    default_optimizers = {"model": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}}
    data_kinds = ("binary",)
    serving_default = "features"
    tflite_signatures = ("features",)
    key_metrics = ("test_log_likelihood_bound",)

    def __init__(self, image_shape, hidden_units=(500, 2000), epochs_per_layer=10, cd_steps=1,
                 persistent=False, num_chains=100, weight_decay=0.0, init_stddev=0.01,
                 sample_steps=1000, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(image_shape)
        self.visible_units = int(np.prod(self.image_shape))
        self.hidden_units = [int(units) for units in hidden_units]
        self.epochs_per_layer, self.cd_steps = int(epochs_per_layer), int(cd_steps)
        self.persistent, self.num_chains = bool(persistent), int(num_chains)
        self.weight_decay, self.init_stddev = float(weight_decay), float(init_stddev)
        self.sample_steps, self.seed = int(sample_steps), int(seed)
        sizes = [self.visible_units] + self.hidden_units
        self.rbms = [BernoulliRBM(sizes[l], sizes[l + 1], self.init_stddev, seed=self.seed + l,
                                  dtype=kwargs.get("dtype"), name=f"rbm_{l}")
                     for l in range(len(self.hidden_units))]
        state = dict(trainable=False, aggregation="only_first_replica")
        self.layer = self.add_weight(name="layer", shape=(), dtype="int32",
                                     initializer="zeros", **state)
        self.chains = [self.add_weight(name=f"chains_{l}", shape=(self.num_chains, sizes[l]),
                                       initializer="zeros", **state)
                       for l in range(len(self.rbms))] if self.persistent else []
        self.trackers = {name: keras.metrics.Mean(name=name) for name in (
            "loss", "free_energy", "reconstruction_error")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build(self, input_shape=None):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if self.persistent and self.num_chains % replicas:
            raise ConfigError(f"model.num_chains: {self.num_chains} persistent chains cannot be "
                              f"split evenly over {replicas} replicas.")
        super().build((None,) + self.image_shape)

    # Maps ----------------------------------------------------------------------------------------

    def up_pass(self, v, num_layers):
        """Hidden probabilities after `num_layers` RBMs (deterministic), `[B, H_l]`."""
        for rbm in self.rbms[:num_layers]:
            v = rbm.hidden_probabilities(v)
        return v

    def features(self, x):
        """`p(h_L = 1 | ...)` of the full up-pass of images `x`, `[B, H_L]`."""
        return self.up_pass(flatten(x), len(self.rbms))

    def call(self, x, training=False):
        return self.features(x)

    def log_likelihood_bound(self, x, num_samples, seed):
        """The variational bound on `log p(v) + log Z_L` (module docstring), `[B]`: the mean
        over `num_samples` samples of the up-pass posterior."""
        v = flatten(x)
        batch = tf.shape(v)[0]
        state = tf.reshape(tf.tile(v[None], [num_samples, 1, 1]), [num_samples * batch, -1])
        total = tf.zeros([num_samples * batch], v.dtype)
        for l, rbm in enumerate(self.rbms[:-1]):
            q = rbm.hidden_probabilities(state)
            h = tf.cast(tfdgm_random.stateless_uniform(
                tf.shape(q), tf.random.experimental.stateless_fold_in(seed, l), dtype=q.dtype)
                < q, v.dtype)
            logits_up = tf.matmul(state, rbm.kernel) + rbm.hidden_bias
            logits_down = tf.matmul(h, rbm.kernel, transpose_b=True) + rbm.visible_bias
            total += _bernoulli_log_prob(state, logits_down) - _bernoulli_log_prob(h, logits_up)
            state = h
        total -= self.rbms[-1].free_energy(state)
        return tf.reduce_mean(tf.reshape(total, [num_samples, batch]), axis=0)

    # Construction and the contract ------------------------------------------------------------

    @classmethod
    def check_config(cls, config, info):
        check_binary_data(config, info)
        needed = len(config.model.hidden_units) * config.model.epochs_per_layer
        if config.training.epochs < needed:
            raise ConfigError(
                f"training.epochs: {config.training.epochs} epochs leave some of the "
                f"{len(config.model.hidden_units)} layers untrained (model.epochs_per_layer = "
                f"{config.model.epochs_per_layer} each); set training.epochs >= {needed}.")

    @classmethod
    def from_experiment(cls, config, info):
        options = config.model
        return cls(image_shape=info.image_shape, hidden_units=options.hidden_units,
                   epochs_per_layer=options.epochs_per_layer, cd_steps=options.cd_steps,
                   persistent=options.persistent,
                   num_chains=options.num_chains or config.data.batch_size,
                   weight_decay=options.weight_decay, init_stddev=options.init_stddev,
                   sample_steps=options.sample_steps, seed=config.seed, name=options.name)

    @property
    def monitor(self):
        """None: the phases' validation figures (each RBM's own) are not comparable, so the
        last checkpoint, with every layer trained, is the model."""
        return None

    def training_callbacks(self, config):
        return [GreedyLayerPhase(self.epochs_per_layer)]

    @property
    def watched_terms(self):
        return ("loss", "free_energy")

    def prepare_training(self, datasets, config):
        """The bottom RBM's visible biases from the data's log-odds; PCD chains of every layer
        from the up-pass of training examples."""
        from tfdgm.data import load_images

        images = load_images(config.data, "train").reshape(-1, self.visible_units)
        self.rbms[0].visible_bias.assign(base_rate_visible_bias(images).astype(np.float32))
        if self.persistent:
            rng = np.random.default_rng(config.seed)
            start = images[rng.choice(len(images), self.num_chains,
                                      replace=len(images) < self.num_chains)]
            for l, chains in enumerate(self.chains):
                probabilities = self.up_pass(tf.constant(start), l)
                chains.assign(tf.cast(probabilities > 0.5, tf.float32))

    def epoch_summaries(self, images):
        l = int(self.layer.numpy())
        x = self.up_pass(flatten(images), l)
        return {"layer": float(l),
                "free_energy/validation": float(tf.reduce_mean(self.rbms[l].free_energy(x))),
                "hidden_activation": tf.reduce_mean(
                    self.rbms[l].hidden_probabilities(x), axis=0).numpy()}

    def image_grids(self, images, seed=0):
        from tfdgm.evaluation.images import tile

        return {"filters": tile(filter_grid_images(self.rbms[0].kernel.numpy(),
                                                   self.image_shape)),
                "samples": tile(self.sample(64, seed=seed))}

    def evaluate_test(self, datasets, config):
        from tfdgm.models.ebm.evaluation import evaluate_dbn

        return evaluate_dbn(self, datasets, config)

    def signatures(self):
        """`features(v)`: the up-pass probabilities of the top hidden layer."""
        image = tf.TensorSpec([None, *self.image_shape], tf.float32, name="v")

        def binary(rng, batch_size):
            return {"v": rng.integers(0, 2, (batch_size, *self.image_shape)).astype(np.float32)}

        return {"features": Signature(lambda v: {"features": self.features(v)}, [image], binary,
                                      weight_layers=list(self.rbms))}

    def sample(self, num, temperature=1.0, seed=0):
        """`p(v = 1 | h_1)` after `sample_steps` Gibbs sweeps in the top RBM (energies divided
        by `temperature`, as for `RBM.sample`) and a down-pass of samples, `[num, H, W, C]`."""
        from tfdgm.models.ebm.rbm import run_chains

        temperature = check_temperature(temperature)
        seeds = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), 3)
        top = self.rbms[-1]
        h = tf.cast(tfdgm_random.stateless_uniform([num, top.visible_units], seeds[0]) < 0.5,
                    tf.float32)
        h, probabilities = run_chains(top, h, tf.constant(self.sample_steps), seeds[1],
                                      tf.constant(1.0 / temperature))
        for l, rbm in reversed(list(enumerate(self.rbms[:-1]))):
            probabilities = rbm.visible_probabilities(h, 1.0 / temperature)
            noise = tfdgm_random.stateless_uniform(
                tf.shape(probabilities), tf.random.experimental.stateless_fold_in(seeds[2], l))
            h = tf.cast(noise < probabilities, tf.float32)
        return probabilities.numpy().reshape((num,) + self.image_shape)

    # Training -----------------------------------------------------------------------------------

    def _replica_chains(self):
        """`(begin, [this replica's rows of chains_l for every layer l])`."""
        begin, count = replica_rows(self.num_chains)
        return begin, [tf.slice(tf.convert_to_tensor(chains), [begin, 0],
                                [count, chains.shape[1]]) for chains in self.chains]

    def _layer_gradients(self, l, v, seed, replicas):
        """Branch `l` of the train step: `(gradients of every RBM's variables, loss, free
        energy, reconstruction error, this replica's new chain rows of every layer)` (the
        chains of the other layers unchanged; `[]` without PCD)."""
        rbm = self.rbms[l]
        x = tf.stop_gradient(self.up_pass(v, l))
        rows = []
        if self.persistent:
            _, rows = self._replica_chains()
            start = rows[l]
        else:
            start = x
        negative, _ = rbm.gibbs_chain(start, self.cd_steps, seed)
        if self.persistent:
            rows = rows[:l] + [negative] + rows[l + 1:]
        with tf.GradientTape() as tape:
            loss = rbm.contrastive_divergence_loss(x, negative)
            if self.weight_decay:
                loss += 0.5 * self.weight_decay * tf.reduce_sum(tf.square(rbm.kernel))
            scaled_loss = self.optimizer.scale_loss(loss / replicas)
        grads = dict(zip([id(w) for w in rbm.trainable_variables],
                         tape.gradient(scaled_loss, rbm.trainable_variables)))
        all_grads = [grads.get(id(w), tf.zeros_like(w)) for w in self.trainable_variables]
        return all_grads, loss, tf.reduce_mean(rbm.free_energy(x)), tf.reduce_mean(
            rbm.reconstruction_error(x)), rows

    def train_step(self, data):
        v = flatten(images_of(data))
        seed = tfdgm_random.step_seed(self.seed, self.optimizer.iterations)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        branches = [lambda l=l: self._layer_gradients(l, v, seed, replicas)
                    for l in range(len(self.rbms))]
        grads, loss, free_energy, error, rows = tf.switch_case(
            tf.convert_to_tensor(self.layer), branches)
        # The chains' all-reduce stays outside the switch: a collective inside a branch of a
        # replica function fails under tf.distribute.
        if self.persistent:
            begin, _ = replica_rows(self.num_chains)
            for chains, new_rows in zip(self.chains, rows):
                assign_replica_rows(chains, new_rows, begin)
        self.optimizer.apply(grads, self.trainable_variables)
        for name, value in (("loss", loss), ("free_energy", free_energy),
                            ("reconstruction_error", error)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        v = flatten(images_of(data))
        l = tf.convert_to_tensor(self.layer)
        branches = [lambda l=l: (tf.reduce_mean(self.rbms[l].free_energy(self.up_pass(v, l))),
                                 tf.reduce_mean(self.rbms[l].reconstruction_error(
                                     self.up_pass(v, l)))) for l in range(len(self.rbms))]
        free_energy, error = tf.switch_case(l, branches)
        self.trackers["free_energy"].update_state(free_energy)
        self.trackers["reconstruction_error"].update_state(error)
        return {name: self.trackers[name].result()
                for name in ("free_energy", "reconstruction_error")}

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape,
                "hidden_units": self.hidden_units, "epochs_per_layer": self.epochs_per_layer,
                "cd_steps": self.cd_steps, "persistent": self.persistent,
                "num_chains": self.num_chains, "weight_decay": self.weight_decay,
                "init_stddev": self.init_stddev, "sample_steps": self.sample_steps,
                "seed": self.seed}


__all__ = ["DBN", "GreedyLayerPhase"]
