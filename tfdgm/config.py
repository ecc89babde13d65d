"""Experiment configuration: YAML -> frozen dataclasses, strictly validated.

A config file has the sections below; every key is checked (unknown keys, wrong types) before any
TensorFlow work starts, and `--set a.b=c` overrides any value (the value is parsed as YAML, so
`--set model.latent_dim=32`, `--set optimizer.learning_rate=1e-3` and
`--set model.encoder.hidden_units=[512,256]` all work).

Components (`encoder`, `decoder`, `posterior`, `prior`, `likelihood`, `data`) are given as
`{name: <registered name>, <option>: <value>, ...}`; their options are checked against the
registered component's constructor when the config is resolved (see `tfdgm.registry`).
"""

import dataclasses
import difflib
import typing
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from tfdgm.errors import ConfigError

Component = Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and how it is batched.

    `name` is a registered dataset (`tfdgm.data`); `data_dir` is where local files are read from
    (default: the `TFDGM_DATA_DIR` environment variable); `binarize` is `none`, `dynamic` (a fresh
    Bernoulli draw of each grey image every epoch) or `threshold` (pixel > 0.5); `max_examples`
    caps each split (for smoke tests).
    """
    name: str = "mnist5k"
    data_dir: Optional[str] = None
    binarize: str = "none"
    batch_size: int = 100
    eval_batch_size: int = 500
    max_examples: Optional[int] = None
    shuffle_buffer: int = 10000


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The generative model, composed from registered components."""
    name: str = "vae"
    latent_dim: int = 40
    encoder: Component = dataclasses.field(
        default_factory=lambda: {"name": "gated_mlp", "hidden_units": [300, 300]})
    decoder: Component = dataclasses.field(
        default_factory=lambda: {"name": "gated_mlp", "hidden_units": [300, 300]})
    posterior: Component = dataclasses.field(
        default_factory=lambda: {"name": "diagonal_gaussian"})
    prior: Component = dataclasses.field(default_factory=lambda: {"name": "standard_normal"})
    likelihood: Component = dataclasses.field(default_factory=lambda: {"name": "bernoulli"})


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """The training bound.

    `elbo`: E_q[log p(x|z)] - beta * KL with beta rising linearly from 0 to 1 over `warmup_epochs`
    and, if `free_bits` > 0, each latent dimension's KL floored at `free_bits` nats (Kingma et al.
    2016). `iwae`: the importance-weighted bound with `num_samples` = k (Burda et al. 2016).
    """
    name: str = "elbo"
    num_samples: int = 1
    warmup_epochs: int = 0
    free_bits: float = 0.0


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"
    learning_rate: float = 5e-4
    clipnorm: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Epochs, early stopping (patience counted only after warm-up) and image logging."""
    epochs: int = 100
    patience: int = 50
    steps_per_epoch: Optional[int] = None
    image_every_epochs: int = 1
    jit_compile: bool = False


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Test-time estimates: importance-sampled NLL with `nll_samples` samples per example, drawn
    `nll_chunk` at a time so memory stays bounded; `nll_examples` limits how many test examples
    the NLL uses, spread evenly over the test set (null: all). ELBO surgery (mutual information
    and marginal KL, Hoffman & Johnson 2016) on `surgery_examples` test examples, also spread
    evenly (0: off; its cost grows as the square). `nll_pass_size` bounds the decoder passes
    (examples x samples) of one NLL step: lower it for large decoders."""
    nll_samples: int = 5000
    nll_chunk: int = 500
    nll_pass_size: int = 50000
    nll_examples: Optional[int] = None
    active_unit_threshold: float = 0.01
    surgery_examples: int = 1000


@dataclasses.dataclass(frozen=True)
class DistributeConfig:
    """`auto` (every visible GPU mirrored, else one device), `one_device`, `mirrored` or
    `multi_worker` (reads TF_CONFIG)."""
    strategy: str = "auto"


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    base_dir: str = "export"
    version: int = 1
    tflite: bool = True


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment. `name` names the run directory `runs/<name>`."""
    name: str = "run"
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    distribute: DistributeConfig = dataclasses.field(default_factory=DistributeConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES = {
    "data.binarize": ("none", "dynamic", "threshold"),
    "objective.name": ("elbo", "iwae"),
    "optimizer.name": ("adam", "adamax"),
    "distribute.strategy": ("auto", "one_device", "mirrored", "multi_worker"),
}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp, where: str) -> Any:
    """Checks `value` against the annotation `tp`, converting int -> float where a float is due."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin in (dict, Dict) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping like {{name: ...}}, got {value!r}.")
        return dict(value)
    if origin in (list, List, Sequence, tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}.")
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` (no dot) as a string.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or
                                           (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{where}: expected an integer, got {value!r}.")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}.")
        return value
    raise TypeError(f"unsupported annotation {tp} at {where}")


def _build(cls, raw: Any, where: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"{path}: unknown config key.{hint} "
                              f"Valid keys here: {', '.join(fields)}.")
    values = {}
    for name, field in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in raw:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, raw[name], path)
        else:
            values[name] = _coerce(raw[name], tp, path)
            if path in CHOICES and values[name] not in CHOICES[path]:
                raise ConfigError(f"{path}: '{values[name]}' is not one of "
                                  f"{', '.join(CHOICES[path])}.")
    return cls(**values)


def _apply_override(raw: Dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set model.latent_dim=32.")
    key, text = assignment.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {assignment!r}: value is not valid YAML ({error}).") from None
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section.")
        node = child
    node[parts[-1]] = value


def from_dict(raw: Mapping[str, Any], overrides: Sequence[str] = ()) -> Config:
    """Builds a validated `Config` from a nested mapping plus `KEY=VALUE` overrides."""
    raw = yaml.safe_load(yaml.safe_dump(dict(raw))) if raw else {}
    for assignment in overrides:
        _apply_override(raw, assignment)
    config = _build(Config, raw, "")
    from tfdgm import components  # noqa: F401  (registers every component)
    from tfdgm.models import validate_model_config
    validate_model_config(config)
    return config


def load(path: str, overrides: Sequence[str] = ()) -> Config:
    """Reads a YAML config file and applies `--set` overrides. Raises `ConfigError` on any problem."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist. "
                          f"Pass CONFIG=configs/<experiment>.yaml (see the configs/ folder).") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file '{path}' is not valid YAML: {error}") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections.")
    return from_dict(raw or {}, overrides)


def dump(config: Config, path: str) -> None:
    """Writes the resolved config so that `load(path)` rebuilds it exactly."""
    with open(path, "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
