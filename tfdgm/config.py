"""Experiment configuration: YAML -> frozen dataclasses, strictly validated.

A config file has run-level sections (`name`, `seed`, `data`, `training`, `distribute`, `export`,
defined here) and sections owned by the model family that `model.name` selects (`model`,
`optimizer`, `evaluation`: the family's dataclasses, see `tfdgm.models.base`). Every key is
checked (unknown keys, wrong types, choices) before any TensorFlow work starts, and `--set a.b=c`
overrides any value (the value is parsed as YAML, so `--set model.latent_dim=32`,
`--set optimizer.learning_rate=1e-3` and `--set model.encoder.hidden_units=[512,256]` all work).

This module knows no family: `parse` types the run-level sections and leaves the family's as
mappings; `tfdgm.experiment` resolves a whole config (and is what callers use).
"""

import dataclasses
import difflib
import os
import typing
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from tfdgm.errors import ConfigError
from tfdgm.precision import PRECISIONS
from tfdgm.optimizers import OptimizerConfig  # noqa: F401  (a family's `optimizer:` section)

Component = Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and how it is batched.

    `name` is a registered dataset (`tfdgm.data`); `data_dir` is where local files are read from
    (default: the `TFDGM_DATA_DIR` environment variable); `binarize` is `none`, `dynamic` (a fresh
    Bernoulli draw of each grey image every epoch) or `threshold` (pixel > 0.5); `max_examples`
    caps each split (for smoke tests); `validation_examples` validates on a fixed subset of that
    many examples spread evenly over the validation split (`tfdgm.data.evenly_spaced_indices`;
    null: the whole split), which is what early stopping and the best checkpoint then see.
    """
    name: str = "mnist5k"
    data_dir: Optional[str] = None
    binarize: str = dataclasses.field(
        default="none", metadata={"choices": ("none", "dynamic", "threshold")})
    batch_size: int = 100
    eval_batch_size: int = 500
    max_examples: Optional[int] = None
    shuffle_buffer: int = 10000
    validation_examples: Optional[int] = None

    def __post_init__(self):
        if self.validation_examples is not None and self.validation_examples < 1:
            raise ConfigError(f"data.validation_examples must be at least 1 (or null for the "
                              f"whole validation split), got {self.validation_examples}.")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Epochs, validation, early stopping (on the model's monitored validation quantity), image
    logging, compilation and precision.

    * `validate_every`: validate every that many epochs (the last epoch always); the best
      checkpoint, early stopping and the TensorBoard validation curves see only validated
      epochs. `patience` stays in epochs (epochs since the last improvement), checked when an
      epoch is validated.
    * `jit_compile`: `auto` (default) compiles the training and evaluation steps with XLA where
      they compile and XLA is expected to be faster, and otherwise runs them as plain
      `tf.function`s, printing one line with the reason (an op XLA has no kernel for; more than
      one replica; convolutions on a CPU, which XLA runs slower than TensorFlow's oneDNN
      kernels); `true` compiles them with XLA or stops with a `ConfigError` naming why it
      cannot; `false` never uses XLA (`tfdgm.training.xla`). The choice changes speed and
      the order of floating-point operations, not the noise (`tfdgm.random`).
    * `steps_per_execution`: training steps a call of the training function. `auto` (default)
      runs the largest divisor of the epoch's steps up to 32 a call (one on several replicas);
      an integer must divide the epoch's steps (`tfdgm.training.execution`). It changes
      speed and how often batch-level callbacks run, not the results.
    * `precision`: `float32`, `mixed_float16` or `mixed_bfloat16` (`tfdgm.precision`).
    """
    epochs: int = 100
    patience: int = 50
    steps_per_epoch: Optional[int] = None
    image_every_epochs: int = 1
    validate_every: int = 1
    jit_compile: Any = "auto"
    steps_per_execution: Any = "auto"
    precision: str = dataclasses.field(default="float32", metadata={"choices": PRECISIONS})

    def __post_init__(self):
        for key in ("epochs", "patience", "image_every_epochs", "validate_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"training.{key} must be at least 1, got {getattr(self, key)}.")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"training.steps_per_epoch must be at least 1 (or null for whole "
                              f"epochs), got {self.steps_per_epoch}.")
        jit = self.jit_compile
        if isinstance(jit, str) and jit.lower() in ("auto", "true", "false"):
            object.__setattr__(self, "jit_compile", {"auto": "auto", "true": True,
                                                     "false": False}[jit.lower()])
        elif not isinstance(jit, bool):
            raise ConfigError(f"training.jit_compile: {jit!r} is not one of auto, true, false "
                              f"(auto: XLA where the steps compile and it pays; true: always "
                              f"XLA; false: never).")
        steps = self.steps_per_execution
        if isinstance(steps, str) and steps.lower() == "auto":
            object.__setattr__(self, "steps_per_execution", "auto")
        elif isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"training.steps_per_execution: {steps!r} is neither auto nor a "
                              f"positive integer (auto: up to 32 steps a call; N: N steps a "
                              f"call, a divisor of the epoch's steps).")

    def validates(self, epoch: int) -> bool:
        """Whether epoch `epoch` (0-based) is validated: every `validate_every`-th and the
        last."""
        return (epoch + 1) % self.validate_every == 0 or epoch + 1 == self.epochs


@dataclasses.dataclass(frozen=True)
class DistributeConfig:
    """`auto` (every visible GPU mirrored, else one device), `one_device`, `mirrored` or
    `multi_worker` (reads TF_CONFIG)."""
    strategy: str = dataclasses.field(
        default="auto", metadata={"choices": ("auto", "one_device", "mirrored", "multi_worker")})


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    base_dir: str = "export"
    version: int = 1
    tflite: bool = True

    def __post_init__(self):
        if self.version < 1:
            raise ConfigError(f"export.version must be a positive integer (TF Serving reads "
                              f"numeric version folders), got {self.version}.")


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment. `name` names the run directory `runs/<name>`.

    The run-level sections are fixed here; `model`, `optimizer` and `evaluation` belong to the
    model family (`config.model.name`): they are raw mappings until `tfdgm.experiment` resolves
    them into the family's dataclasses (`Options`, `OptimizerConfig` per role,
    `EvaluationOptions`).
    """
    name: str = "run"
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: Any = dataclasses.field(default_factory=dict)
    optimizer: Any = dataclasses.field(default_factory=dict)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: Any = dataclasses.field(default_factory=dict)
    distribute: DistributeConfig = dataclasses.field(default_factory=DistributeConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise ConfigError(f"name: must be a non-empty name without '/' (it names the run "
                              f"directory runs/<name>), got {self.name!r}.")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


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


def build_section(cls, raw: Any, where: str):
    """`cls` (a dataclass) from the mapping `raw`, strictly: unknown keys (with a suggestion),
    wrong types and values outside a field's `metadata["choices"]` raise `ConfigError` naming
    the key path `where.<key>`. Nested dataclass fields are built recursively."""
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
            values[name] = build_section(tp, raw[name], path)
        else:
            values[name] = _coerce(raw[name], tp, path)
            choices = field.metadata.get("choices")
            if choices and values[name] not in choices:
                raise ConfigError(f"{path}: '{values[name]}' is not one of "
                                  f"{', '.join(choices)}.")
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


def parse(raw: Optional[Mapping[str, Any]], overrides: Sequence[str] = ()) -> Config:
    """The run-level `Config` of a nested mapping plus `KEY=VALUE` overrides; the family's
    sections stay raw mappings (`tfdgm.experiment.resolve` types them)."""
    raw = yaml.safe_load(yaml.safe_dump(dict(raw))) if raw else {}
    for assignment in overrides:
        _apply_override(raw, assignment)
    return build_section(Config, raw, "")


def read(path: str) -> Dict[str, Any]:
    """The mapping in the YAML file at `path`. Raises `ConfigError` naming the problem."""
    if os.path.isdir(path):
        raise ConfigError(f"config path '{path}' is a directory; pass a YAML file, e.g. "
                          f"CONFIG=configs/quickstart.yaml.")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist. "
                          f"Pass CONFIG=configs/<experiment>.yaml (see the configs/ folder).") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file '{path}' cannot be read: {error}.") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file '{path}' is not valid YAML: {error}") from None
    if raw is None:
        raise ConfigError(f"config file '{path}' is empty; start from configs/quickstart.yaml.")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections.")
    return dict(raw)


def dump(config: Config, path: str) -> None:
    """Writes the resolved config so that `tfdgm.experiment.load_config(path)` rebuilds it."""
    with open(path, "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
