"""The contract every generative-model family implements.

The trainer (`tfdgm.training`), the exporter (`tfdgm.export`), the command line and the
TensorBoard logger speak only to this class: no family name appears in them. A family (the VAE,
a density flow, a GAN, an RBM) is a `GenerativeModel` subclass registered in `tfdgm.registry.MODELS`
plus its configs; nothing else needs to change to add one.

What a family declares on the class, read before any data is loaded or graph is built:

    Options              dataclass of the config's `model:` section (`name` + the family's
                         options); parsed strictly: unknown keys list the accepted ones
    EvaluationOptions    dataclass of the config's `evaluation:` section
    optimizer_roles      one optimizer per role; `("model",)` reads `optimizer: {name: ...}`,
                         several roles read `optimizer: {<role>: {name: ...}, ...}`
    default_optimizers_for(options)   the defaults under that section (from the paper)
    data_kinds           the `DatasetInfo.kind`s the family models (`binary`, `grey`, `points`)
    check_config(config, info)   the family's own constraints (raise `ConfigError`)
    from_experiment(config, info) the unbuilt model of a resolved config

What an instance provides:

    build()                      creates every weight without data
    monitor                      `Monitor(name, mode, patience_from_epoch)` or None: the validation
                                 quantity (logged as `val_<name>` by `test_step`) that picks the
                                 best checkpoint and drives early stopping
    training_callbacks(config)   callbacks only this family needs (the VAE's KL warm-up)
    compile_for_training(optimizers, jit_compile)   takes `{role: optimizer}`
    optimizers                   `{role: optimizer}`; all are saved in checkpoints and restored
    build_optimizers()           creates the optimizers' slots before a checkpoint is loaded
    prepare_training(datasets, config)   once, on a fresh run, before the first step
    watched_terms                logged terms the NaN guard checks (their epoch means)
    epoch_summaries(images)      `{tag: value}` scalars and `{tag: array}` histograms per epoch
    key_metrics                  the `metrics.json` keys that compare runs (HParams columns)
    image_grids(images, seed)    `{name: [H', W', C] in [0, 1]}` grids for PNGs and TensorBoard
    evaluate_test(datasets, config)  what lands in `metrics.json`
    signatures()                 `{name: Signature}` export endpoints; `serving_default` and
                                 `tflite_signatures` name which one TF Serving calls by default
                                 and which go to TFLite
    sample(num, temperature, seed)   samples at a temperature whose meaning the family defines
"""

import dataclasses
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfdgm.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Monitor:
    """The validation quantity that selects the best checkpoint and drives early stopping.

    Attributes:
      name: a metric the model's `test_step` reports (logged as `val_<name>`).
      mode: `"max"` (a bound, a log-likelihood) or `"min"` (a loss, bits/dim).
      patience_from_epoch: epochs (0-based) before which patience is not counted (the VAE's
        KL warm-up: the ELBO of a beta < 1 model is not comparable with the final one).
    """
    name: str
    mode: str = "max"
    patience_from_epoch: int = 0

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"Monitor.mode must be 'max' or 'min', got {self.mode!r}")

    @property
    def key(self) -> str:
        return f"val_{self.name}"

    def better(self, value: float, best: Optional[float]) -> bool:
        """Whether `value` improves on `best` (None: nothing yet)."""
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best


@dataclasses.dataclass(frozen=True)
class Signature:
    """One export endpoint.

    Attributes:
      fn: called with one tensor per input, as keywords named like the specs; returns a dict of
        named output tensors.
      inputs: named `tf.TensorSpec`s (batch axis `None`).
      example: `(rng, batch_size) -> {input name: np.ndarray}` of valid inputs, for parity
        checks and TF Serving warm-up requests (default: standard-normal noise).
      weight_layers: layers whose kernels the exported graph must carry (a TFLite file converted
        without its variables runs and returns NaN: the exporter checks the bytes).
    """
    fn: Callable[..., Dict[str, tf.Tensor]]
    inputs: Sequence[tf.TensorSpec]
    example: Optional[Callable[[np.random.Generator, int], Dict[str, np.ndarray]]] = None
    weight_layers: Sequence[keras.layers.Layer] = ()

    def example_inputs(self, rng: np.random.Generator, batch_size: int) -> Dict[str, np.ndarray]:
        if self.example is not None:
            return self.example(rng, batch_size)
        return {spec.name: rng.standard_normal((batch_size, *spec.shape[1:])).astype(
            spec.dtype.as_numpy_dtype) for spec in self.inputs}


def uniform_images(shape):
    """`Signature.example` for image inputs: uniform pixels in [0, 1] of `shape = (H, W, C)`."""
    def example(rng, batch_size, name="x"):
        return {name: rng.uniform(size=(batch_size, *shape)).astype(np.float32)}
    return example


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """An empty options section."""


@dataclasses.dataclass(frozen=True)
class SampleQualityOptions:
    """Evaluation options every family shares (its `EvaluationOptions` derive from this).

    `sample_quality_samples`: samples drawn with `sample(n, sample_quality_temperature)` and
    scored against as many test images by the dataset's classifier feature network (classifier
    FID, KID, precision/recall, inception score; `tfdgm.evaluation.quality`); 0: off. Needs a
    labelled image dataset.
    """
    sample_quality_samples: int = 0
    sample_quality_temperature: float = 1.0

    def __post_init__(self):
        if self.sample_quality_samples < 0:
            raise ConfigError(f"evaluation.sample_quality_samples must be >= 0 (0: off), got "
                              f"{self.sample_quality_samples}.")
        if not self.sample_quality_temperature > 0:
            raise ConfigError(f"evaluation.sample_quality_temperature must be positive, got "
                              f"{self.sample_quality_temperature}.")


class GenerativeModel(keras.Model):
    """Base class of every family; see the module docstring for the contract.

    Subclasses set the class attributes, implement `from_experiment`, `build`, `train_step`,
    `test_step`, `signatures` and `sample`, and override the hooks whose defaults do not fit.

    Attributes:
      image_shape: the shape of one example, `(H, W, C)` for images (`(2,)` for points).
    """

    Options: ClassVar[type] = NoOptions
    EvaluationOptions: ClassVar[type] = SampleQualityOptions
    optimizer_roles: ClassVar[Tuple[str, ...]] = ("model",)
    data_kinds: ClassVar[Tuple[str, ...]] = ("binary", "grey")
    serving_default: ClassVar[Optional[str]] = None
    tflite_signatures: ClassVar[Tuple[str, ...]] = ()
    key_metrics: ClassVar[Tuple[str, ...]] = ()
    """`metrics.json` keys that compare runs of the family (TensorBoard's HParams columns)."""

    # Configuration ------------------------------------------------------------------------------

    @classmethod
    def check_config(cls, config, info) -> None:
        """Raises `ConfigError` if `config` (resolved) cannot train on data described by `info`.

        The default checks `info.kind` against `data_kinds`; subclasses extend it.
        """
        if info.kind not in cls.data_kinds:
            raise ConfigError(
                f"model.name: '{config.model.name}' models {', '.join(cls.data_kinds)} data, "
                f"but dataset '{info.name}' is {info.kind}; choose another data.name or model.")

    @classmethod
    def config_warnings(cls, config) -> List[str]:
        """Warnings for a legal resolved `config` that likely does not do what its user meant
        (printed at the start of a run); default: none."""
        return []

    @classmethod
    def default_optimizers_for(cls, options) -> Dict[str, Dict[str, Any]]:
        """`{role: {name: ..., learning_rate: ..., ...}}` under the config's `optimizer:` section,
        given the family's resolved `model:` options (a GAN's depend on its loss); default: the
        class attribute `default_optimizers`."""
        return dict(getattr(cls, "default_optimizers", {}))

    @classmethod
    def from_experiment(cls, config, info) -> "GenerativeModel":
        """The unbuilt model of the resolved `config` for data described by `info`."""
        raise NotImplementedError(f"{cls.__name__} must implement from_experiment")

    # Training -----------------------------------------------------------------------------------

    @property
    def monitor(self) -> Optional[Monitor]:
        """The validation quantity; None: no early stopping, the last checkpoint is the best."""
        return None

    def training_callbacks(self, config) -> List[keras.callbacks.Callback]:
        """Callbacks this family needs during `fit` (beyond the trainer's own)."""
        return []

    def compile_for_training(self, optimizers: Dict[str, keras.optimizers.Optimizer],
                             jit_compile: bool = False) -> None:
        """Compiles with one optimizer per role of `optimizer_roles`.

        The default (one role, `"model"`) is `compile(optimizer=...)`; several roles keep their
        optimizers as attributes named `<role>_optimizer` and compile without one.
        `jit_compile` (a bool) XLA-compiles Keras's training and evaluation steps; the trainer
        compiles with False and then lets `tfdgm.training.xla.select` resolve
        `training.jit_compile: auto`, which rebuilds the steps it compiles.
        """
        if not isinstance(jit_compile, bool):
            raise ValueError(f"jit_compile must be True or False, got {jit_compile!r} ('auto' "
                             f"is resolved by tfdgm.training.xla.select after compiling)")
        missing = set(self.optimizer_roles) - set(optimizers)
        if missing:
            raise ValueError(f"optimizers for roles {sorted(missing)} are missing")
        if self.optimizer_roles == ("model",):
            self.compile(optimizer=optimizers["model"], jit_compile=jit_compile)
            return
        for role in self.optimizer_roles:
            setattr(self, f"{role}_optimizer", optimizers[role])
        # Keras needs an `optimizer` (it would install a default RMSprop over every variable):
        # the first role's, with every optimizer built on its own variables now.
        self.compile(optimizer=optimizers[self.optimizer_roles[0]], jit_compile=jit_compile)
        self.build_optimizers()

    @property
    def optimizers(self) -> Dict[str, keras.optimizers.Optimizer]:
        if self.optimizer_roles == ("model",):
            optimizer = getattr(self, "optimizer", None)
            return {"model": optimizer} if optimizer is not None else {}
        return {role: getattr(self, f"{role}_optimizer", None) for role in self.optimizer_roles
                if getattr(self, f"{role}_optimizer", None) is not None}

    def optimizer_variables(self, role: str) -> List[tf.Variable]:
        """The variables the optimizer of `role` updates (default: all trainable ones)."""
        return self.trainable_variables

    def build_optimizers(self) -> None:
        """Creates every optimizer's slots, so `load_weights` restores their states."""
        for role, optimizer in self.optimizers.items():
            if not optimizer.built:
                optimizer.build(self.optimizer_variables(role))

    def prepare_training(self, datasets, config) -> None:
        """Called once on a fresh run before the first training step (not on resumption)."""

    @property
    def watched_terms(self) -> Tuple[str, ...]:
        """The logged terms the NaN guard checks at the end of every epoch: their running
        means are non-finite if any batch's was (default: every metric)."""
        return tuple(metric.name for metric in self.metrics)

    # Monitoring ---------------------------------------------------------------------------------

    def epoch_summaries(self, images) -> Dict[str, Any]:
        """Per-epoch TensorBoard values beyond the logged metrics, computed on fixed validation
        `images`: floats become scalars, arrays become histograms."""
        return {}

    def image_grids(self, images, seed: int = 0) -> Dict[str, np.ndarray]:
        """`{name: [H', W', C]}` grids in [0, 1] (PNG files in the run directory, TensorBoard)."""
        return {}

    def embeddings(self, images) -> Dict[str, np.ndarray]:
        """`{name: [N, D]}` codes of `images [N, ...]` for TensorBoard's projector (a latent
        variable model's posterior means, an encoder's codes, hidden-unit probabilities); default:
        none."""
        return {}

    # Evaluation ---------------------------------------------------------------------------------

    def evaluate_test(self, datasets, config) -> Dict[str, Any]:
        """The test figures of `metrics.json`; the default is the `test_step` metrics over the
        test split, as `test_<metric>`."""
        results = self.evaluate(datasets.test, verbose=0, return_dict=True)
        return {f"test_{key}": float(value) for key, value in results.items() if key != "loss"}

    # Export and sampling ------------------------------------------------------------------------

    def signatures(self) -> Dict[str, Signature]:
        """The export endpoints `{name: Signature}`."""
        return {}

    def sample(self, num: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
        """`num` samples `[num, *image_shape]` at `temperature`, reproducible for a `seed`.

        Families define what the temperature means; where it has none they raise `ConfigError`
        for any temperature other than 1.
        """
        raise ConfigError(f"model '{self.name}' cannot draw samples.")


def check_temperature(temperature: float) -> float:
    """Returns `temperature` as a float after checking it is a positive finite number."""
    if isinstance(temperature, bool) or not np.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"temperature must be a positive number, got {temperature!r} "
                          f"(1 samples the model itself; below 1 concentrates the samples).")
    return float(temperature)


__all__ = ["GenerativeModel", "Monitor", "NoOptions", "SampleQualityOptions", "Signature",
           "check_temperature", "uniform_images"]
