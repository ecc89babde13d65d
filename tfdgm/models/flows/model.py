"""Density flows on 8-bit images: Glow, RealNVP and MAF with uniform or variational
dequantization, trained and reported in bits per dimension.

    x (k / 255) --quantize--> x_q in {0..K-1}^D --dequantize--> y = (x_q + u) / K in [0, 1)^D
      --logit (optional)--> z --flow--> latents, log p(z)

`log p(y) = log p_flow(z) + log|det dz/dy|`, and the objective is the dequantization bound of
`tfdgm.models.flows.dequantization`, in bits/dim:

```none
bpd = -(log p(y) - log q(u | x) - D log K) / (D log 2)          (log q = 0 for uniform u)
```

One base class, `DensityFlow`, owns the preprocessing, the bound, training, evaluation and
export; `Glow`, `RealNVP` and `MAF` only say how their flow evaluates `log p(z)` and maps `z`
to standard-normal noise and back.
"""

import contextlib
import weakref

import keras
import numpy as np
import tensorflow as tf

from tfdgm import bijectors
from tfdgm import flows as flow_layers
from tfdgm import random as tfdgm_random
from tfdgm.data.batches import images_of
from tfdgm.errors import ConfigError
from tfdgm.models.base import GenerativeModel, Monitor, Signature, check_temperature, uniform_images
from tfdgm.models.flows.dequantization import VariationalDequantizer, bits_per_dim, quantize
from tfdgm.models.flows.options import (FlowEvaluationOptions, GlowOptions, MAFOptions,
                                        RealNVPOptions)
from tfdgm.models.vae.flow_priors import MAFPrior
from tfdgm.precision import full_precision_dtype
from tfdgm.registry import MODELS

__all__ = ["MAF", "DensityFlow", "Glow", "RealNVP", "temperature_name"]

TEMPERATURES = (0.5, 0.7, 0.85, 1.0)


def temperature_name(temperature):
    """`samples_T0p7` for `T = 0.7`: the name of a sample grid."""
    return "samples_T" + repr(float(temperature)).replace(".", "p")


class DensityFlow(GenerativeModel):
    """Base class of the density flows on images; see the module docstring for the math.

    Subclasses implement `_flow_log_prob(z, training) -> [B]`, `_flow_to_noise(z) -> [B, P]`,
    `_flow_from_noise(eps) -> z [B, H, W, C]` (`P = noise_dim = H W C`), and, if their inverse
    uses ops without TFLite builtins, `_freeze_inverses()` / `_unfreeze_inverses()`.

    Args:
      image_shape: `(H, W, C)`.
      n_bits: bit depth, `K = 2^n_bits` levels.
      dequantization: `"uniform"` or `"variational"`.
      dequantization_steps, dequantization_hidden: the `VariationalDequantizer`'s size.
      logit_alpha: the flow models `logit(alpha + (1 - 2 alpha) y)`; 0: `y - 1/2`.
      temperatures: the temperatures of `image_grids`.
      seed: base of the stateless seeds of the dequantization noise.

    Methods (all `x` are `[B, H, W, C]` float32 pixels `k / 255`):
      bound_terms(x, seed, training) -> {"log_likelihood", "bits_per_dim", "loss"} `[B]`.
      log_weights(x, S, seed) -> `[S, B]`: `log p(y_s) - log q(u_s | x) - D log K`.
      log_prob(x) -> `(log_prob [B], bits_per_dim [B])` at the bin centres `u = 1/2`.
      encode(x) -> eps `[B, P]` (standardized latents of the bin centres);
      decode(eps) = generate(eps) -> x `[B, H, W, C]` in `[0, 1]`.
    """

    EvaluationOptions = FlowEvaluationOptions
    data_kinds = ("grey",)
    default_optimizers = {"model": {"name": "adam", "learning_rate": 1e-3}}
    serving_default = "log_prob"
    tflite_signatures = ("generate", "decode")
    key_metrics = ("test_bits_per_dim", "test_bits_per_dim_iw")
    trace_sampler = False
    """Whether `sample` traces `generate` first (MAF's `D`-step loop), or runs it eagerly."""

    def __init__(self, image_shape, n_bits=8, dequantization="uniform", dequantization_steps=4,
                 dequantization_hidden=32, logit_alpha=0., temperatures=TEMPERATURES, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        if dequantization not in ("uniform", "variational"):
            raise ValueError(f"dequantization must be 'uniform' or 'variational', got "
                             f"{dequantization!r}.")
        self.image_shape = tuple(int(d) for d in image_shape)
        self.n_bits = int(n_bits)
        self.dequantization = dequantization
        self.dequantization_steps = int(dequantization_steps)
        self.dequantization_hidden = int(dequantization_hidden)
        self.logit_alpha = float(logit_alpha)
        self.temperatures = tuple(float(t) for t in temperatures)
        self.seed = int(seed)
        self.dequantizer = (VariationalDequantizer(dequantization_steps, dequantization_hidden,
                                                   name="dequantizer")
                            if dequantization == "variational" else None)
        self.eval_step = self.add_weight(name="eval_step", shape=(), dtype="int64",
                                         initializer="zeros", trainable=False,
                                         aggregation="only_first_replica")
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "bits_per_dim")}

    # Sizes --------------------------------------------------------------------------------------

    @property
    def num_dims(self):
        """`D = H W C`."""
        return int(np.prod(self.image_shape))

    @property
    def levels(self):
        """`K = 2^n_bits`."""
        return 2 ** self.n_bits

    @property
    def noise_dim(self):
        """Width of the noise `generate` takes: `D`."""
        return self.num_dims

    # The flow (subclasses) ----------------------------------------------------------------------

    def _flow_log_prob(self, z, training=None):
        raise NotImplementedError

    def _flow_to_noise(self, z):
        raise NotImplementedError

    def _flow_from_noise(self, eps):
        raise NotImplementedError

    def _freeze_inverses(self):
        """Makes the sampling direction export with TFLite builtins only (default: no-op)."""

    def _unfreeze_inverses(self):
        """Undoes `_freeze_inverses`."""

    @contextlib.contextmanager
    def frozen_inverses(self):
        """Within the block, inverses use constants of the current weights (`W^{-1}` of every
        1x1 convolution), computed eagerly even while a `tf.function` is being traced, so a
        traced sampler holds them as constants; on exit the inverses follow the weights again
        (training after an export is unaffected)."""
        with tf.init_scope():
            self._freeze_inverses()
        try:
            yield
        finally:
            self._unfreeze_inverses()

    # Preprocessing ------------------------------------------------------------------------------

    def check_images(self, x):
        """`x` as a float tensor after checking its static shape is `[B, H, W, C]`."""
        x = tf.convert_to_tensor(x, full_precision_dtype(self))
        if x.shape.rank is not None and (x.shape.rank != 4 or any(
                want != got for want, got in zip(self.image_shape, x.shape[1:])
                if got is not None)):
            shape = ", ".join(map(str, self.image_shape))
            raise ValueError(f"expected images of shape [B, {shape}], got {x.shape}.")
        return x

    def _logit(self):
        return bijectors.Logit(self.logit_alpha, event_ndims=3)

    def to_flow_space(self, y):
        """`(z, log|det dz/dy|)`: `z = logit(alpha + (1 - 2 alpha) y)` or `y - 1/2`."""
        if self.logit_alpha > 0:
            logit = self._logit()
            return logit.forward(y), logit.forward_log_det_jacobian(y, event_ndims=3)
        return y - 0.5, tf.zeros(tf.shape(y)[:1], y.dtype)

    def from_flow_space(self, z):
        """`y` in `[0, 1]` from flow-space `z` (the inverse of `to_flow_space`, clipped)."""
        y = self._logit().inverse(z) if self.logit_alpha > 0 else z + 0.5
        return tf.clip_by_value(y, 0., 1.)

    def log_density(self, y, training=None):
        """`log p(y)` `[B]` in nats: the continuous density of dequantized `y` in `[0, 1]^D`."""
        z, log_det = self.to_flow_space(y)
        return self._flow_log_prob(z, training) + log_det

    def dequantize(self, x, seed):
        """`(x_q, y, log q(u | x))`: the levels, `y = (x_q + u) / K` and the noise's log-density
        `[B]` (0 for uniform noise); `seed` is a stateless seed `[2]`, noise per example of the
        global batch."""
        x_q = quantize(self.check_images(x), self.n_bits)
        shape = tf.shape(x_q)
        if self.dequantizer is None:
            u = tfdgm_random.uniform(shape, seed, batch_axis=0, dtype=x_q.dtype)
            log_q = tf.zeros(shape[:1], x_q.dtype)
        else:
            eps = tfdgm_random.normal(shape, seed, batch_axis=0, dtype=x_q.dtype)
            u, log_q = self.dequantizer(x_q, eps, levels=self.levels)
        return x_q, (x_q + u) / float(self.levels), log_q

    def bin_log_volume(self):
        """`D log K`: the bins have volume `K^-D` on the `[0, 1]` scale."""
        return self.num_dims * np.log(float(self.levels))

    # The bound ----------------------------------------------------------------------------------

    def bound_terms(self, x, seed, training=None):
        """Per-example `[B]` terms: `log_likelihood` (the dequantization lower bound on
        `log P(x_q)`, nats), `bits_per_dim` (of that bound) and `loss` (= `bits_per_dim`)."""
        _, y, log_q = self.dequantize(x, seed)
        bound = self.log_density(y, training) - log_q - self.bin_log_volume()
        bpd = bits_per_dim(bound, self.num_dims)
        return {"log_likelihood": bound, "bits_per_dim": bpd, "loss": bpd}

    def log_weights(self, x, num_samples, seed):
        """`log p(y_s) - log q(u_s | x) - D log K` for `S` noise draws, `[S, B]`: their
        log-mean-exp is the importance-weighted estimate of `log P(x_q)` (a lower bound that
        tightens as `S` grows; its mean over `s` is the `S = 1` bound)."""
        x = self.check_images(x)
        batch = tf.shape(x)[0]
        tiled = tf.tile(x, [num_samples, 1, 1, 1])
        bound = self.bound_terms(tiled, seed)["log_likelihood"]
        return tf.reshape(bound, [num_samples, batch])

    def log_prob(self, x):
        """`(log P, bits/dim)` `[B]` with fixed dequantization at the bin centres `u = 1/2`:
        `log p((x_q + 1/2) / K) - D log K`, the midpoint estimate of the bin's probability
        (deterministic, not a bound; what the exported `log_prob` signature computes)."""
        y = self.bin_centres(x)
        log_p = self.log_density(y) - self.bin_log_volume()
        return log_p, bits_per_dim(log_p, self.num_dims)

    def bin_centres(self, x):
        """`(x_q + 1/2) / K` `[B, H, W, C]`."""
        return (quantize(self.check_images(x), self.n_bits) + 0.5) / float(self.levels)

    # Deterministic maps (the exported signatures) ----------------------------------------------

    def encode(self, x):
        """`x -> eps [B, P]`: the flow's standardized latents of the bin centres."""
        z, _ = self.to_flow_space(self.bin_centres(x))
        return self._flow_to_noise(z)

    def decode(self, eps):
        """`eps [B, P] -> x [B, H, W, C]` in `[0, 1]`, the inverse of `encode` (up to clipping):
        `decode(encode(x))` is the bin centres of `x`."""
        eps = tf.convert_to_tensor(eps, full_precision_dtype(self))
        if eps.shape.rank is not None and eps.shape[-1] not in (None, self.noise_dim):
            raise ValueError(f"expected noise of shape [B, {self.noise_dim}], got {eps.shape}.")
        return self.from_flow_space(self._flow_from_noise(eps))

    def generate(self, eps):
        """`eps ~ N(0, I) [B, P] -> x [B, H, W, C]`: a sample (the same map as `decode`).
        Reduced temperature `T` is the caller's: pass `T * eps` (every latent, split priors
        included, is then drawn from its prior with its standard deviation times `T`)."""
        return self.decode(eps)

    def call(self, x, training=False):
        return self.log_prob(x)[0]

    def build(self, input_shape=None):
        dtype = full_precision_dtype(self)
        x = tf.zeros((1,) + self.image_shape, dtype)
        self.bound_terms(x, tf.constant([0, 0], tf.int64))
        self.decode(tf.zeros([1, self.noise_dim], dtype))
        super().build((None,) + self.image_shape)

    # Construction from an experiment config ---------------------------------------------------

    @classmethod
    def check_config(cls, config, info):
        """8-bit grey images only (no binarization), of a shape the architecture accepts."""
        if info.kind == "binary":
            raise ConfigError(
                f"model.name: '{config.model.name}' is a density flow on 8-bit images; "
                f"data.binarize must be none (got '{config.data.binarize}' for "
                f"'{info.name}').")
        super().check_config(config, info)
        if len(info.image_shape) != 3:
            raise ConfigError(f"model.name: '{config.model.name}' needs images [H, W, C], got "
                              f"elements of shape {tuple(info.image_shape)}.")
        divisor = cls.shape_divisor(config.model)
        height, width = info.image_shape[:2]
        if height % divisor or width % divisor:
            raise ConfigError(f"model: '{config.model.name}' with these options needs H and W "
                              f"divisible by {divisor}, but '{info.name}' is "
                              f"{tuple(info.image_shape)}; use fewer levels/scales.")

    @classmethod
    def shape_divisor(cls, options):
        return 1

    @classmethod
    def common_arguments(cls, config, info):
        """The constructor arguments every density flow takes, from a resolved config."""
        model = config.model
        return dict(image_shape=info.image_shape, n_bits=model.n_bits,
                    dequantization=model.dequantization,
                    dequantization_steps=model.dequantization_steps,
                    dequantization_hidden=model.dequantization_hidden,
                    logit_alpha=model.logit_alpha, temperatures=config.evaluation.temperatures,
                    seed=config.seed, name=model.name)

    # The model contract -----------------------------------------------------------------------

    @property
    def monitor(self):
        """Validation bits/dim (of the training bound), lower is better."""
        return Monitor("bits_per_dim", "min")

    @property
    def watched_terms(self):
        return ("loss", "bits_per_dim")

    @property
    def metrics(self):
        return list(self.trackers.values())

    def image_grids(self, images, seed=0):
        """One grid of samples per temperature: `samples_T0p5`, `samples_T0p7`, ... (64 each)."""
        from tfdgm.evaluation.images import tile

        return {temperature_name(t): tile(self.sample(64, t, seed)) for t in self.temperatures}

    def evaluate_test(self, datasets, config):
        from tfdgm.models.flows.evaluation import evaluate_flow

        return evaluate_flow(self, datasets, config)

    def signatures(self):
        """`log_prob(x)` (nats and bits/dim at the bin centres, `u = 1/2`), `encode(x) -> z`,
        `decode(z) -> x`, `generate(eps) -> x` (temperature: the caller scales `eps`).

        The traced `decode` and `generate` use each 1x1 convolution's inverse matrix computed
        from the weights at trace time (a constant; `frozen_inverses`), so they convert to
        TFLite builtins; the model itself keeps following its weights.
        """
        image = tf.TensorSpec([None, *self.image_shape], tf.float32, name="x")
        code = tf.TensorSpec([None, self.noise_dim], tf.float32, name="z")
        noise = tf.TensorSpec([None, self.noise_dim], tf.float32, name="eps")
        images = uniform_images(self.image_shape)
        weights = self.exported_weight_layers()

        def log_prob(x):
            log_p, bpd = self.log_prob(x)
            return {"log_prob": log_p, "bits_per_dim": bpd}

        def decode(z):
            with self.frozen_inverses():
                return {"x": self.decode(z)}

        def generate(eps):
            with self.frozen_inverses():
                return {"x": self.generate(eps)}

        return {
            "log_prob": Signature(log_prob, [image], images),
            "encode": Signature(lambda x: {"z": self.encode(x)}, [image], images),
            "decode": Signature(decode, [code], weight_layers=weights),
            "generate": Signature(generate, [noise], weight_layers=weights),
        }

    def exported_weight_layers(self):
        """The layers whose kernels the exported samplers must carry."""
        return []

    def sample(self, num, temperature=1.0, seed=0):
        """`num` samples `[num, H, W, C]` in `[0, 1]` at `temperature`: `generate(T eps)` with
        `eps ~ N(0, I)` from `seed` (the base and split-prior noise is `N(0, T^2 I)`)."""
        temperature = check_temperature(temperature)
        eps = tfdgm_random.stateless_normal([num, self.noise_dim], [seed, 0])
        generate = _traced_generate(self) if self.trace_sampler else self.generate
        return generate(eps * temperature).numpy()

    # Training -----------------------------------------------------------------------------------

    def _update_trackers(self, terms):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        x = images_of(data)
        seed = tfdgm_random.step_seed(self.seed, self.optimizer.iterations)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms = self.bound_terms(x, seed, training=True)
            loss = tf.reduce_mean(terms["loss"])
            # Keras sums gradients over replicas: scale so N replicas average the global batch.
            scaled_loss = self.optimizer.scale_loss(loss / replicas)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_trackers(terms)

    def test_step(self, data):
        x = images_of(data)
        seed = tfdgm_random.step_seed(self.seed, self.eval_step, stream=1)
        self.eval_step.assign_add(1)
        return self._update_trackers(self.bound_terms(x, seed))

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape),
                "n_bits": self.n_bits, "dequantization": self.dequantization,
                "dequantization_steps": self.dequantization_steps,
                "dequantization_hidden": self.dequantization_hidden,
                "logit_alpha": self.logit_alpha, "temperatures": list(self.temperatures),
                "seed": self.seed}


_TRACED_GENERATE = weakref.WeakKeyDictionary()


def _traced_generate(model):
    """`model.generate` as a `tf.function`, traced once per model (and once more for a batch
    size of its own, before `reduce_retracing` makes the batch dimension unknown). It is kept
    beside the model rather than on it, where SavedModel would save it with the model; it holds
    the model weakly."""
    function = _TRACED_GENERATE.get(model)
    if function is None:
        model_ref = weakref.ref(model)
        function = tf.function(lambda eps: model_ref().generate(eps), autograph=False,
                               reduce_retracing=True)
        _TRACED_GENERATE[model] = function
    return function


class _MultiScale(DensityFlow):
    """A `DensityFlow` whose flow is a `tfdgm.flows.MultiScaleFlow` (`self.flow`)."""

    def _flow_log_prob(self, z, training=None):
        return self.flow.log_prob(z, training=training)

    def _flow_to_noise(self, z):
        return self.flow.encode_to_noise(z)

    def _flow_from_noise(self, eps):
        return self.flow.sample_from_noise(eps, 1.)

    def _freeze_inverses(self):
        self.flow.freeze_inverses()

    def _unfreeze_inverses(self):
        self.flow.unfreeze_inverses()

    def exported_weight_layers(self):
        return [layer for layer in self.flow._flatten_layers()
                if isinstance(layer, flow_layers.CouplingConvNet)]


@MODELS.register("glow")
@keras.saving.register_keras_serializable("tfdgm")
class Glow(_MultiScale):
    """Glow (Kingma & Dhariwal 2018) on dequantized 8-bit images: `tfdgm.flows.GlowFlow`.

    `L` levels of squeeze and `K` steps (actnorm, invertible 1x1 convolution, affine coupling),
    a split with a learned conditional prior after each level but the last, a learned top
    prior. ActNorm initializes from the first training batch (its flag is saved with the
    weights, so a resumed run does not initialize again).

    Example:

    ```python
    from tfdgm.experiment import build_model, from_dict
    from tfdgm.data import dataset_info

    config = from_dict({"name": "demo", "data": {"name": "mnist5k"},
                        "model": {"name": "glow", "num_levels": 2, "num_steps": 4,
                                  "hidden_channels": 64, "dequantization": "variational"}})
    glow = build_model(config, dataset_info(config.data))
    log_p, bpd = glow.log_prob(images)                       # [B] nats, [B] bits/dim
    samples = glow.sample(16, temperature=0.7)               # [16, 28, 28, 1] in [0, 1]
    ```

    #### References

    [1]: Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
         Convolutions. In _Neural Information Processing Systems_, 2018.
         https://arxiv.org/abs/1807.03039
    """

    Options = GlowOptions

    def __init__(self, image_shape, num_levels=2, num_steps=8, hidden_channels=128, lu=True,
                 coupling_scale="sigmoid", learn_top=True, learn_split_priors=True,
                 split_prior_log_std=0.0, **kwargs):
        super().__init__(image_shape, **kwargs)
        self.flow = flow_layers.GlowFlow(
            self.image_shape, num_levels=num_levels, num_steps=num_steps,
            hidden_channels=hidden_channels, lu=lu, scale=coupling_scale, learn_top=learn_top,
            learn_split_priors=learn_split_priors, split_prior_log_std=split_prior_log_std,
            seed=self.seed, name="glow_flow")
        self.architecture = dict(num_levels=int(num_levels), num_steps=int(num_steps),
                                 hidden_channels=int(hidden_channels), lu=bool(lu),
                                 coupling_scale=coupling_scale, learn_top=bool(learn_top),
                                 learn_split_priors=bool(learn_split_priors),
                                 split_prior_log_std=float(split_prior_log_std))

    @classmethod
    def shape_divisor(cls, options):
        return 2 ** options.num_levels

    @classmethod
    def from_experiment(cls, config, info):
        m = config.model
        return cls(num_levels=m.num_levels, num_steps=m.num_steps,
                   hidden_channels=m.hidden_channels, lu=m.lu, coupling_scale=m.coupling_scale,
                   learn_top=m.learn_top, learn_split_priors=m.learn_split_priors,
                   split_prior_log_std=m.split_prior_log_std,
                   **cls.common_arguments(config, info))

    def get_config(self):
        return {**super().get_config(), **self.architecture}


@MODELS.register("realnvp")
@keras.saving.register_keras_serializable("tfdgm")
class RealNVP(_MultiScale):
    """RealNVP (Dinh et al. 2017) on dequantized 8-bit images: `tfdgm.flows.RealNVPFlow`,
    in logit space (`logit_alpha`, 0.05 by default; 1e-6 for MNIST).

    Example:

    ```python
    config = from_dict({"name": "demo", "data": {"name": "mnist5k"},
                        "model": {"name": "realnvp", "num_scales": 2, "hidden_channels": 32}})
    realnvp = build_model(config, dataset_info(config.data))
    eps = realnvp.encode(images)                               # [B, 784]
    same = realnvp.decode(eps)                                 # the bin centres of images
    ```

    #### References

    [1]: Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
         In _International Conference on Learning Representations_, 2017.
         https://arxiv.org/abs/1605.08803
    """

    Options = RealNVPOptions

    def __init__(self, image_shape, num_scales=2, hidden_channels=64, num_final_couplings=4,
                 coupling_scale="tanh", actnorm=False, **kwargs):
        kwargs.setdefault("logit_alpha", 0.05)
        super().__init__(image_shape, **kwargs)
        self.flow = flow_layers.RealNVPFlow(
            self.image_shape, num_scales=num_scales, hidden_channels=hidden_channels,
            num_final_couplings=num_final_couplings, scale=coupling_scale, actnorm=actnorm,
            name="realnvp_flow")
        self.architecture = dict(num_scales=int(num_scales), hidden_channels=int(hidden_channels),
                                 num_final_couplings=int(num_final_couplings),
                                 coupling_scale=coupling_scale, actnorm=bool(actnorm))

    @classmethod
    def shape_divisor(cls, options):
        return 2 ** (options.num_scales - 1)

    @classmethod
    def from_experiment(cls, config, info):
        m = config.model
        return cls(num_scales=m.num_scales, hidden_channels=m.hidden_channels,
                   num_final_couplings=m.num_final_couplings, coupling_scale=m.coupling_scale,
                   actnorm=m.actnorm, **cls.common_arguments(config, info))

    def get_config(self):
        return {**super().get_config(), **self.architecture}


@MODELS.register("maf")
@keras.saving.register_keras_serializable("tfdgm")
class MAF(DensityFlow):
    """Masked autoregressive flow (Papamakarios et al. 2017) over the flattened pixels in logit
    space (`logit_alpha`, 1e-6 by default as in the paper's MNIST).

    The flow is `tfdgm.models.vae.flow_priors.MAFPrior` on `D = H W C` dimensions: `num_flows`
    MADE layers, orderings alternating; `log p(z)` is one MADE pass per layer, sampling `D`
    sequential steps per layer (`MADE.invert`: a `tf.while_loop`, TFLite's builtin `WHILE`;
    with one hidden layer the steps do the arithmetic of about one pass). MAF(5), MAF(10):
    `num_flows`.

    Example:

    ```python
    config = from_dict({"name": "demo", "data": {"name": "mnist5k"},
                        "model": {"name": "maf", "num_flows": 5, "hidden_units": [1024]}})
    maf = build_model(config, dataset_info(config.data))
    log_p, bpd = maf.log_prob(images)
    ```

    #### References

    [1]: George Papamakarios, Theo Pavlakou and Iain Murray. Masked Autoregressive Flow for
         Density Estimation. In _Neural Information Processing Systems_, 2017.
         https://arxiv.org/abs/1705.07057
    """

    Options = MAFOptions
    trace_sampler = True

    def __init__(self, image_shape, num_flows=5, hidden_units=(1024,), activation="relu",
                 log_scale_bound=3.0, **kwargs):
        kwargs.setdefault("logit_alpha", 1e-6)
        super().__init__(image_shape, **kwargs)
        self.flow = MAFPrior(self.num_dims, num_flows=num_flows, hidden_units=hidden_units,
                             activation=activation, log_scale_bound=log_scale_bound,
                             name="maf_flow")
        self.architecture = dict(num_flows=int(num_flows),
                                 hidden_units=[int(h) for h in hidden_units],
                                 activation=activation, log_scale_bound=float(log_scale_bound))

    def _flat(self, z):
        return tf.reshape(z, [-1, self.num_dims])

    def _flow_log_prob(self, z, training=None):
        return self.flow.log_prob(self._flat(z))

    def _flow_to_noise(self, z):
        return self.flow.normalize(self._flat(z))[0]

    def _flow_from_noise(self, eps):
        return tf.reshape(self.flow.generate(eps), [-1, *self.image_shape])

    def exported_weight_layers(self):
        return list(self.flow.mades)

    @classmethod
    def from_experiment(cls, config, info):
        m = config.model
        return cls(num_flows=m.num_flows, hidden_units=m.hidden_units, activation=m.activation,
                   log_scale_bound=m.log_scale_bound, **cls.common_arguments(config, info))

    def get_config(self):
        return {**super().get_config(), **self.architecture}
