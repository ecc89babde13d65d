"""The restricted Boltzmann machine as a generative model of binary or grey images.

`RBM` trains one `BernoulliRBM` (`E(v, h) = -b^T v - c^T h - v^T W h`, binary images) or one
`GaussianBernoulliRBM` (`model.visible: gaussian`, grey images; Hinton 2010, section 13.2) by
CD-k (Hinton 2002) or persistent CD (Tieleman 2008) with the practice of Hinton's guide (2010):
SGD with momentum (the config's `optimizer:`, with its learning-rate and momentum schedules),
optional L2 weight decay on `W`, `W ~ N(0, 0.01^2)`, and visible biases started at the data's
log-odds `b_i = log(p_i / (1 - p_i))` (Bernoulli) or mean (Gaussian).

Gaussian visibles model the pixels standardized per component, `v = (x - m) / s` with the
training split's means `m` and standard deviations `s` (at least `pixel_scale_floor`), with unit
variances `sigma = 1` by default (the guide's advice; `learn_sigma` learns them as Cho, Ilin &
Raiko 2011). Its log-likelihood is a continuous density: `log p(v)` in nats on the standardized
space, and `log p(v) - sum_i log s_i` the density of the pixel values `x` themselves; neither is
comparable with a binary RBM's log-probabilities (or a dequantized flow's bits/dim).

The update is the CD estimate, obtained by autodiff of the surrogate loss
`mean_data F(v) - mean_neg F(stop_gradient(v~))` (`BernoulliRBM.contrastive_divergence_loss`),
divided by the number of replicas so that the summed replica gradients average the global batch.

Persistent chains under `tf.distribute`: the fantasy particles are one non-trainable Keras
variable `chains [C, D]` (mirrored, `aggregation="only_first_replica"`, saved in checkpoints)
holding the chains of the *global* batch. Replica `r` of `N` advances rows `[r C / N,
(r + 1) C / N)` with the noise one device would draw for those rows (`tfdgm.random.uniform`),
and the replicas rebuild the whole updated variable with one all-reduce (each contributes its
rows, zero elsewhere) before every replica assigns the same value. One device and N replicas therefore run
the same chains and take the same steps; `C` must be divisible by `N`.
"""

import keras
import numpy as np
import tensorflow as tf

from tfdgm import random as tfdgm_random
from tfdgm import replicas as tfdgm_replicas
from tfdgm.data.batches import images_of
from tfdgm.errors import ConfigError
from tfdgm.models.base import GenerativeModel, Monitor, Signature, check_temperature
from tfdgm.models.ebm.ais import base_rate_visible_bias, gaussian_base_model
from tfdgm.models.ebm.layer import BernoulliRBM, GaussianBernoulliRBM
from tfdgm.models.ebm.options import EBMEvaluationOptions, RBMOptions
from tfdgm.registry import MODELS

PROBE_EXAMPLES = 100
"""Training examples kept in the model (`train_probe`) for the free-energy gap monitor."""


def check_grey_data(config, info):
    """Raises `ConfigError` unless `info` describes grey images (the Gaussian-Bernoulli RBM)."""
    if info.kind == "grey" and len(info.image_shape) == 3:
        return
    fix = ("set data.binarize=none (Gaussian visibles model the grey levels; binary data "
           "wants model.visible=bernoulli)" if info.kind == "binary"
           else "choose an image dataset (e.g. data.name=fashion_mnist)")
    raise ConfigError(f"model.visible: gaussian models grey images, but dataset '{info.name}' "
                      f"is {info.kind}: {fix}.")


def check_binary_data(config, info):
    """Raises `ConfigError` unless `info` describes binary data (RBMs here are Bernoulli)."""
    if info.kind == "binary":
        return
    fix = ("set data.binarize=dynamic (a fresh Bernoulli draw of the grey levels every epoch) "
           "or data.binarize=threshold" if info.kind == "grey"
           else "choose an image dataset (e.g. data.name=mnist5k with data.binarize=dynamic)")
    if info.kind == "grey" and getattr(config.model, "visible", None) == "bernoulli":
        fix += ", or model.visible=gaussian (a Gaussian-Bernoulli RBM of the grey levels)"
    raise ConfigError(f"model.name: '{config.model.name}' is a Bernoulli-Bernoulli RBM and "
                      f"models binary data, but dataset '{info.name}' is {info.kind}: {fix}.")


def flatten(images):
    """`[B, H, W, C] -> [B, H W C]`."""
    images = tf.convert_to_tensor(images)
    return tf.reshape(images, [tf.shape(images)[0], -1])


def replica_rows(num_rows):
    """`(begin, count)` of this replica's rows of a global set of `num_rows` rows."""
    replica_id, num_replicas = tfdgm_random.replica_position()
    count = num_rows // num_replicas
    return replica_id * count, count


def assign_replica_rows(variable, rows, begin):
    """Writes this replica's `rows [n, ...]` at `begin` into the global `variable [N n, ...]`:
    every replica contributes its rows (zeros elsewhere) to one all-reduced sum, and assigns
    the same whole value (a mirrored variable must not differ between replicas)."""
    _, num_replicas = tfdgm_random.replica_position()
    if num_replicas == 1:
        variable.assign(rows)
        return
    total = variable.shape[0]
    after = total - begin - tf.shape(rows)[0]
    padding = tf.concat([[[begin, after]], tf.zeros([rows.shape.rank - 1, 2], tf.int32)], 0)
    variable.assign(tfdgm_replicas.global_sum(tf.pad(rows, padding)))


@tf.function(reduce_retracing=True)
def run_chains(layer, v, steps, seed, inverse_temperature):
    """`layer.gibbs_chain` compiled (sampling and image grids run it outside `fit`)."""
    return layer.gibbs_chain(v, steps, seed, inverse_temperature)


def filter_grid_images(kernel, image_shape, max_filters=100):
    """The first `max_filters` columns of `W [D, H]` as images `[n, *image_shape]`, each
    scaled to [0, 1] by its own range (what Hinton's guide calls looking at the filters)."""
    w = np.asarray(kernel)[:, :max_filters].T
    low, high = w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)
    return ((w - low) / np.maximum(high - low, 1e-12)).reshape((-1,) + tuple(image_shape))


@MODELS.register("rbm")
@keras.saving.register_keras_serializable("tfdgm")
class RBM(GenerativeModel):
    """An RBM over flattened images, binary (Bernoulli visibles) or grey (Gaussian visibles on
    standardized pixels), trained by CD-k or PCD.

    Args:
      image_shape: `(H, W, C)`; the RBM has `D = H W C` visible units.
      hidden_units: `H`, the number of hidden units.
      visible: `"bernoulli"` or `"gaussian"`.
      learn_sigma: Gaussian visibles: learn the standard deviations (else `sigma = 1`).
      pixel_scale_floor: Gaussian visibles: the least standardization scale `s_i`.
      cd_steps: `k`, Gibbs sweeps per negative sample.
      persistent: negative samples from persistent chains (PCD) instead of the data (CD-k).
      num_chains: `C`, the persistent chains of the global batch.
      weight_decay: L2 coefficient `lambda` (the loss gets `lambda / 2 ||W||^2`).
      init_stddev: `W ~ N(0, init_stddev^2)`.
      sample_steps: Gibbs sweeps of `sample`.
      pseudo_likelihood_coordinates: coordinates per example of the validation
        pseudo-log-likelihood (None: all).
      seed: seeds the weights and the stateless Gibbs noise.

    Non-trainable state (saved in checkpoints): `chains [C, D]` (PCD only), `base_rate [D]`
    (the AIS base model: the data's clipped log-odds, or for Gaussian visibles the means of the
    standardized data, with their standard deviations `base_scale [D]`), `pixel_mean [D]` and
    `pixel_scale [D]` (Gaussian: the standardization), `train_probe [100, D]` (training
    examples, as visible states, for the free-energy gap), `eval_step`.

    Example:

    ```python
    from tfdgm.experiment import build_model, from_dict
    from tfdgm.data import dataset_info

    config = from_dict({"data": {"name": "mnist5k", "binarize": "dynamic"},
                        "model": {"name": "rbm", "hidden_units": 64, "persistent": True}})
    rbm = build_model(config, dataset_info(config.data))
    f = rbm.free_energy(tf.zeros([8, 28, 28, 1]))                  # [8]
    x = rbm.sample(16, temperature=1.0, seed=0)                     # [16, 28, 28, 1]

    grey = from_dict({"data": {"name": "mnist5k"},
                      "model": {"name": "rbm", "visible": "gaussian", "hidden_units": 64}})
    grbm = build_model(grey, dataset_info(grey.data))               # a Gaussian-Bernoulli RBM
    ```
    """

    Options = RBMOptions
    EvaluationOptions = EBMEvaluationOptions
    default_optimizers = {"model": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}}
    data_kinds = ("binary", "grey")
    serving_default = "hidden_probabilities"
    tflite_signatures = ("hidden_probabilities",)
    key_metrics = ("test_log_likelihood", "test_log_z")

    def __init__(self, image_shape, hidden_units=500, cd_steps=1, persistent=False,
                 num_chains=100, weight_decay=0.0, init_stddev=0.01, sample_steps=1000,
                 pseudo_likelihood_coordinates=16, visible="bernoulli", learn_sigma=False,
                 pixel_scale_floor=0.01, seed=0, **kwargs):
        super().__init__(**kwargs)
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(f"visible must be 'bernoulli' or 'gaussian', got {visible!r}")
        self.visible, self.learn_sigma = visible, bool(learn_sigma)
        self.pixel_scale_floor = float(pixel_scale_floor)
        self.image_shape = tuple(image_shape)
        self.visible_units = int(np.prod(self.image_shape))
        self.hidden_units, self.cd_steps = int(hidden_units), int(cd_steps)
        self.persistent, self.num_chains = bool(persistent), int(num_chains)
        self.weight_decay, self.init_stddev = float(weight_decay), float(init_stddev)
        self.sample_steps, self.seed = int(sample_steps), int(seed)
        self.pseudo_likelihood_coordinates = pseudo_likelihood_coordinates
        if self.gaussian:
            self.rbm = GaussianBernoulliRBM(self.visible_units, self.hidden_units,
                                            self.init_stddev, learn_sigma=self.learn_sigma,
                                            seed=self.seed, dtype=kwargs.get("dtype"), name="rbm")
        else:
            self.rbm = BernoulliRBM(self.visible_units, self.hidden_units, self.init_stddev,
                                    seed=self.seed, dtype=kwargs.get("dtype"), name="rbm")
        state = dict(trainable=False, aggregation="only_first_replica")
        if self.persistent:
            self.chains = self.add_weight(name="chains", shape=(self.num_chains,
                                                                self.visible_units),
                                          initializer="zeros", **state)
        self.base_rate = self.add_weight(name="base_rate", shape=(self.visible_units,),
                                         initializer="zeros", **state)
        self.train_probe = self.add_weight(name="train_probe",
                                           shape=(PROBE_EXAMPLES, self.visible_units),
                                           initializer="zeros", **state)
        self.eval_step = self.add_weight(name="eval_step", shape=(), dtype="int64",
                                         initializer="zeros", **state)
        if self.gaussian:
            self.base_scale, self.pixel_mean, self.pixel_scale = (
                self.add_weight(name=name, shape=(self.visible_units,), initializer=init,
                                **state)
                for name, init in (("base_scale", "ones"), ("pixel_mean", "zeros"),
                                   ("pixel_scale", "ones")))
        self.validation_terms = ("free_energy", "reconstruction_error") + (
            () if self.gaussian else ("pseudo_log_likelihood",))
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss",) + self.validation_terms}

    @property
    def gaussian(self):
        """Whether the visible units are Gaussian (grey images)."""
        return self.visible == "gaussian"

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build(self, input_shape=None):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if self.persistent and self.num_chains % replicas:
            raise ConfigError(f"model.num_chains: {self.num_chains} persistent chains cannot be "
                              f"split evenly over {replicas} replicas; choose a multiple of "
                              f"{replicas}.")
        super().build((None,) + self.image_shape)

    # Densities and maps ----------------------------------------------------------------------

    def visible_states(self, x):
        """The visible units `v [B, D]` of images `x [B, H, W, C]`: the pixels, standardized
        `(x - m) / s` for Gaussian visibles."""
        v = flatten(x)
        if self.gaussian:
            v = (v - self.pixel_mean) / self.pixel_scale
        return v

    def images_of_states(self, v):
        """Images `[B, H, W, C]` of visible states `v [B, D]` (`x = m + s v` for Gaussian
        visibles, not clipped)."""
        if self.gaussian:
            v = self.pixel_mean + self.pixel_scale * v
        return tf.reshape(v, tf.concat([tf.shape(v)[:1], self.image_shape], 0))

    def free_energy(self, x):
        """`F(v)` of images `x [B, H, W, C]`, `[B]` nats (Gaussian: of the standardized v)."""
        return self.rbm.free_energy(self.visible_states(x))

    def hidden_probabilities(self, x):
        """`p(h = 1 | v)` of images `x [B, H, W, C]`, `[B, H]` (the feature extractor)."""
        return self.rbm.hidden_probabilities(self.visible_states(x))

    def base_log_likelihood(self, x):
        """`log p_A(v)` of images `x` under the AIS base model (Gaussian visibles: the
        factorial Gaussian `N(base_rate, base_scale^2)` of the standardized training pixels),
        `[B]` nats: the reference a Gaussian-Bernoulli RBM's density should beat."""
        v = self.visible_states(x)
        z = (v - self.base_rate) / self.base_scale
        return -tf.reduce_sum(0.5 * tf.square(z) + tf.math.log(self.base_scale)
                              + 0.5 * np.log(2 * np.pi), axis=-1)

    def log_pixel_jacobian(self):
        """`-sum_i log s_i`: what turns `log p(v)` into the density of the pixels `x`."""
        return -float(tf.reduce_sum(tf.math.log(self.pixel_scale))) if self.gaussian else 0.0

    def embeddings(self, images):
        return {"hidden_probabilities": self.hidden_probabilities(images).numpy()}

    def gibbs_step(self, v, uniform_h, noise_v):
        """One Gibbs sweep from images `v` with given noise `uniform_h [B, H]` and `noise_v
        [B, H, W, C]` (uniform for Bernoulli visibles, standard normal for Gaussian ones):
        `{"h", "v", "v_probabilities"}` (Bernoulli) or `{"h", "v", "v_mean"}` (Gaussian, in
        pixel units), images for the visibles."""
        h, v, mean = self.rbm.gibbs_step(self.visible_states(v), uniform_h, flatten(noise_v))
        return {"h": h, "v": self.images_of_states(v),
                ("v_mean" if self.gaussian else "v_probabilities"): self.images_of_states(mean)}

    def call(self, x, training=False):
        return self.hidden_probabilities(x)

    def log_unnormalized(self, x):
        """`-F(v)`, `[B]`: `log p(v) + log Z`."""
        return -self.free_energy(x)

    # Construction from an experiment config ---------------------------------------------------

    @classmethod
    def check_config(cls, config, info):
        if config.model.visible == "gaussian":
            check_grey_data(config, info)
        else:
            check_binary_data(config, info)

    @classmethod
    def from_experiment(cls, config, info):
        options = config.model
        return cls(image_shape=info.image_shape, hidden_units=options.hidden_units,
                   cd_steps=options.cd_steps, persistent=options.persistent,
                   num_chains=options.num_chains or config.data.batch_size,
                   weight_decay=options.weight_decay, init_stddev=options.init_stddev,
                   sample_steps=options.sample_steps,
                   pseudo_likelihood_coordinates=options.pseudo_likelihood_coordinates,
                   visible=options.visible, learn_sigma=options.learn_sigma,
                   pixel_scale_floor=options.scale_floor, seed=config.seed, name=options.name)

    @classmethod
    def default_optimizers_for(cls, options):
        """SGD with momentum 0.9; learning rate 0.05 (Salakhutdinov & Murray 2008), or 0.002 for
        Gaussian visibles (Hinton 2010, section 13.2: one to two orders of magnitude lower)."""
        rate = 0.002 if options.visible == "gaussian" else 0.05
        return {"model": {"name": "sgd", "learning_rate": rate, "momentum": 0.9}}

    # The model contract ---------------------------------------------------------------------

    @property
    def monitor(self):
        """Maximize the validation pseudo-log-likelihood: unlike the reconstruction error
        (which CD-k drives down whether or not the likelihood improves, Hinton 2010 section 5),
        it is a consistent estimation objective (Besag 1975) sensitive to the whole model, and
        cheap; its coordinates are drawn from a fixed seed, so epochs compare on equal terms.

        Gaussian visibles: None (the last checkpoint is the model). Their conditionals
        `p(v_i | v_-i)` need a one-dimensional integral each, so there is no cheap
        pseudo-likelihood, and the free energy and reconstruction error do not measure the
        likelihood."""
        return None if self.gaussian else Monitor("pseudo_log_likelihood", "max")

    @property
    def watched_terms(self):
        return ("loss", "free_energy")

    def prepare_training(self, datasets, config):
        """From the training images (their fixed binarization): `b` and `base_rate` set to
        the clipped log-odds of the pixel marginals (Hinton 2010, section 8), the
        free-energy probe, and the persistent chains started at training examples. Gaussian
        visibles: first the standardization `m`, `s` of the grey levels; then `b` and the base
        model are the standardized data's means (and standard deviations)."""
        from tfdgm.data import load_images

        images = load_images(config.data, "train").reshape(-1, self.visible_units)
        self.initialize_from_data(images, seed=config.seed)

    def initialize_from_data(self, images, seed=0):
        """`prepare_training` for training data `images [N, D]` (binary, or grey levels in
        [0, 1] for Gaussian visibles)."""
        images = np.asarray(images, np.float32).reshape(-1, self.visible_units)
        if self.gaussian:
            mean, scale = gaussian_base_model(images, min_std=self.pixel_scale_floor)
            self.pixel_mean.assign(mean.astype(np.float32))
            self.pixel_scale.assign(scale.astype(np.float32))
            images = self.visible_states(images).numpy()
            bias, base_scale = (a.astype(np.float32) for a in gaussian_base_model(images))
            self.base_scale.assign(base_scale)
        else:
            bias = base_rate_visible_bias(images).astype(np.float32)
        self.base_rate.assign(bias)
        self.rbm.visible_bias.assign(bias)
        rng = np.random.default_rng(seed)
        self.train_probe.assign(images[rng.choice(len(images), PROBE_EXAMPLES,
                                                  replace=len(images) < PROBE_EXAMPLES)])
        if self.persistent:
            self.chains.assign(images[rng.choice(len(images), self.num_chains,
                                                 replace=len(images) < self.num_chains)])

    def epoch_summaries(self, images):
        """The free energies of training (`train_probe`) and validation `images`, and their
        gap (validation - training: it grows when the model overfits, Hinton 2010, section 6);
        histograms of `W` and of the mean hidden activations."""
        validation = float(tf.reduce_mean(self.free_energy(images)))
        train = float(tf.reduce_mean(self.rbm.free_energy(self.train_probe)))
        return {"free_energy/train": train, "free_energy/validation": validation,
                "free_energy/gap": validation - train,
                "weights": self.rbm.kernel.numpy().ravel(),
                "hidden_activation": tf.reduce_mean(
                    self.hidden_probabilities(images), axis=0).numpy()}

    def image_grids(self, images, seed=0):
        """`filters` (the first 100 columns of `W` as images), `samples` (64 chains of
        `sample_steps` sweeps from noise) and, for PCD, `chains` (the visible probabilities one
        sweep from the first 64 persistent chains)."""
        from tfdgm.evaluation.images import tile

        grids = {"filters": tile(filter_grid_images(self.rbm.kernel.numpy(), self.image_shape)),
                 "samples": tile(self.sample(64, seed=seed))}
        if self.persistent:
            chains = self.chains[:64]
            _, mean = run_chains(self.rbm, chains, tf.constant(1),
                                 tf.constant([seed, 3], tf.int64), tf.constant(1.0))
            grids["chains"] = tile(np.clip(self.images_of_states(mean).numpy(), 0, 1))
        return grids

    def evaluate_test(self, datasets, config):
        from tfdgm.models.ebm.evaluation import evaluate_rbm

        return evaluate_rbm(self, datasets, config)

    def signatures(self):
        """`free_energy(v)`, `hidden_probabilities(v)` and `gibbs_step(v, uniform_h,
        uniform_v)` (noise as inputs)."""
        image = tf.TensorSpec([None, *self.image_shape], tf.float32, name="v")
        uniform_h = tf.TensorSpec([None, self.hidden_units], tf.float32, name="uniform_h")
        noise_name = "normal_v" if self.gaussian else "uniform_v"
        noise_v = tf.TensorSpec([None, *self.image_shape], tf.float32, name=noise_name)

        def binary(rng, batch_size):
            if self.gaussian:  # grey levels
                return {"v": rng.uniform(size=(batch_size, *self.image_shape)).astype(
                    np.float32)}
            return {"v": rng.integers(0, 2, (batch_size, *self.image_shape)).astype(np.float32)}

        def with_noise(rng, batch_size):
            shape = (batch_size, *self.image_shape)
            return {**binary(rng, batch_size),
                    "uniform_h": rng.uniform(size=(batch_size, self.hidden_units)).astype(
                        np.float32),
                    noise_name: (rng.standard_normal(shape) if self.gaussian
                                 else rng.uniform(size=shape)).astype(np.float32)}

        if self.gaussian:
            def gibbs_step(v, uniform_h, normal_v):
                return self.gibbs_step(v, uniform_h, normal_v)
        else:
            def gibbs_step(v, uniform_h, uniform_v):
                return self.gibbs_step(v, uniform_h, uniform_v)

        return {
            "free_energy": Signature(lambda v: {"free_energy": self.free_energy(v)}, [image],
                                     binary, weight_layers=[self.rbm]),
            "hidden_probabilities": Signature(
                lambda v: {"hidden_probabilities": self.hidden_probabilities(v)}, [image],
                binary, weight_layers=[self.rbm]),
            "gibbs_step": Signature(gibbs_step, [image, uniform_h, noise_v], with_noise,
                                    weight_layers=[self.rbm]),
        }

    def sample(self, num, temperature=1.0, seed=0):
        """`p(v = 1 | h)` after `sample_steps` Gibbs sweeps from uniformly random visible states,
        `[num, H, W, C]`; for Gaussian visibles `E[v | h]` in pixel units, clipped to [0, 1],
        after as many sweeps from standard-normal states.

        At temperature `T` every energy is divided by `T`: the chains sample the Boltzmann
        distribution `p_T(v, h) ∝ exp(-E(v, h) / T)`, whose visible marginal is
        `exp(-F_T(v)) / Z_T` with `F_T` the free energy of the RBM with parameters `W / T,
        b / T, c / T`. It equals `p(v)` at `T = 1`; below 1 it concentrates on low-energy states
        (it is `p(v)^(1/T)` up to the hidden units' entropy term, which vanishes as `T -> 0`).
        """
        temperature = check_temperature(temperature)
        seeds = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), 2)
        if self.gaussian:
            v = tfdgm_random.stateless_normal([num, self.visible_units], seeds[0])
        else:
            v = tf.cast(tfdgm_random.stateless_uniform([num, self.visible_units], seeds[0]) < 0.5,
                        tf.float32)
        _, mean = run_chains(self.rbm, v, tf.constant(self.sample_steps), seeds[1],
                             tf.constant(1.0 / temperature))
        return np.clip(self.images_of_states(mean).numpy(), 0.0, 1.0)

    # Training -----------------------------------------------------------------------------------

    def negative_samples(self, v_data, seed):
        """The negative phase's `v~`: `cd_steps` sweeps from the data (CD-k) or from this
        replica's persistent chains (PCD; the chains are advanced in place)."""
        if not self.persistent:
            v_negative, _ = self.rbm.gibbs_chain(v_data, self.cd_steps, seed)
            return v_negative
        begin, count = replica_rows(self.num_chains)
        start = tf.slice(tf.convert_to_tensor(self.chains), [begin, 0],
                         [count, self.visible_units])
        v_negative, _ = self.rbm.gibbs_chain(start, self.cd_steps, seed)
        assign_replica_rows(self.chains, v_negative, begin)
        return v_negative

    def cd_loss(self, v_data, v_negative, free_energy_data=None):
        """The CD surrogate plus `weight_decay / 2 ||W||^2` (this replica's share is divided
        by the replica count in `train_step`); `free_energy_data` as in
        `contrastive_divergence_loss`."""
        loss = self.rbm.contrastive_divergence_loss(v_data, v_negative, free_energy_data)
        if self.weight_decay:
            loss += 0.5 * self.weight_decay * tf.reduce_sum(tf.square(self.rbm.kernel))
        return loss

    def train_step(self, data):
        v = self.visible_states(images_of(data))
        seed = tfdgm_random.step_seed(self.seed, self.optimizer.iterations)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        v_negative = self.negative_samples(v, seed)
        with tf.GradientTape() as tape:
            free_energy = self.rbm.free_energy(v)
            loss = self.cd_loss(v, v_negative, free_energy)
            # Keras sums gradients over replicas: scale so N replicas average the global batch.
            scaled_loss = self.optimizer.scale_loss(loss / replicas)
        # The batch's diagnostics are those of the parameters the step started from, as the
        # loss is (free energy shared with it): read before the update.
        reconstruction_error = self.rbm.reconstruction_error(v)
        variables = self.rbm.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self.trackers["loss"].update_state(loss)
        self.trackers["free_energy"].update_state(free_energy)
        self.trackers["reconstruction_error"].update_state(reconstruction_error)
        return {name: self.trackers[name].result()
                for name in ("loss", "free_energy", "reconstruction_error")}

    def test_step(self, data):
        v = self.visible_states(images_of(data))
        self.eval_step.assign_add(1)
        self.trackers["free_energy"].update_state(self.rbm.free_energy(v))
        self.trackers["reconstruction_error"].update_state(self.rbm.reconstruction_error(v))
        if not self.gaussian:
            # A fixed seed: the same coordinates every epoch, so the monitor compares like with
            # like.
            seed = tf.constant([self.seed, 2**20], tf.int64)
            self.trackers["pseudo_log_likelihood"].update_state(self.rbm.pseudo_log_likelihood(
                v, seed, self.pseudo_likelihood_coordinates))
        return {name: self.trackers[name].result() for name in self.validation_terms}

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape,
                "hidden_units": self.hidden_units, "cd_steps": self.cd_steps,
                "persistent": self.persistent, "num_chains": self.num_chains,
                "weight_decay": self.weight_decay, "init_stddev": self.init_stddev,
                "sample_steps": self.sample_steps,
                "pseudo_likelihood_coordinates": self.pseudo_likelihood_coordinates,
                "visible": self.visible, "learn_sigma": self.learn_sigma,
                "pixel_scale_floor": self.pixel_scale_floor, "seed": self.seed}


__all__ = ["RBM", "assign_replica_rows", "check_binary_data", "check_grey_data",
           "filter_grid_images", "flatten", "replica_rows", "run_chains"]
