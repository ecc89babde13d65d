"""An experiment: a config resolved against its model family, and the model it builds.

    config = load_config("configs/quickstart.yaml", ["model.latent_dim=16"])
    model = build_model(config, dataset_info(config.data))

`resolve` types the family-owned sections of a parsed `tfdgm.config.Config` with the classes the
family declares (`tfdgm.models.base.GenerativeModel`): `model:` with its `Options`, `evaluation:`
with its `EvaluationOptions`, `optimizer:` with one `OptimizerConfig` per optimizer role. It then
lets the family check the config against the dataset's description (no data is read), so every
mistake stops the command before any TensorFlow work, with a message that names the fix.

Import order (no circles): errors, registry -> config -> data -> models -> experiment.
"""

import dataclasses
from typing import Any, Mapping, Sequence

from tfdgm import config as config_lib
from tfdgm import models  # noqa: F401  (registers every model family)
from tfdgm.config import Config, OptimizerConfig, build_section
from tfdgm.data import dataset_info
from tfdgm.errors import ConfigError
from tfdgm.precision import policy_scope
from tfdgm.registry import MODELS


def model_class(config: Config):
    """The registered family class of `config.model` (a mapping or resolved options)."""
    spec = config.model
    name = spec.get("name") if isinstance(spec, Mapping) else getattr(spec, "name", None)
    if not name:
        raise ConfigError(f"model.name: missing. Choose one of: {', '.join(MODELS.names())} "
                          f"(e.g. start from configs/quickstart.yaml).")
    if not isinstance(name, str):
        raise ConfigError(f"model.name: expected a string, got {name!r}.")
    return MODELS.get(name, "model.name")


def _optimizers(family, options, raw: Any):
    """One `OptimizerConfig` (a single role) or `{role: OptimizerConfig}` (several), over the
    family's defaults for its resolved `options`."""
    roles = family.optimizer_roles
    defaults = family.default_optimizers_for(options)
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"optimizer: expected a mapping like {{name: adam, learning_rate: "
                          f"1e-3}}, got {raw!r}.")
    raw = dict(raw or {})
    if len(roles) == 1:
        (role,) = roles
        base = dict(defaults.get(role, {}))
        if "name" in raw and raw["name"] != base.get("name"):
            base = {}  # another optimizer: its own defaults, not the family's
        return build_section(OptimizerConfig, {**base, **raw}, "optimizer")
    unknown = sorted(set(raw) - set(roles))
    if unknown:
        raise ConfigError(f"optimizer.{unknown[0]}: '{family.registered_name}' has the "
                          f"optimizers {', '.join(roles)}; give each as optimizer.<role>: "
                          f"{{name: ..., learning_rate: ...}}.")
    resolved = {}
    for role in roles:
        base = dict(defaults.get(role, {}))
        given = raw.get(role) or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"optimizer.{role}: expected a mapping, got {given!r}.")
        if "name" in given and given["name"] != base.get("name"):
            base = {}
        resolved[role] = build_section(OptimizerConfig, {**base, **given}, f"optimizer.{role}")
    return resolved


def resolve(config: Config) -> Config:
    """`config` with its family sections typed and checked against the dataset."""
    family = model_class(config)
    spec = config.model if isinstance(config.model, Mapping) else dataclasses.asdict(config.model)
    evaluation = config.evaluation
    if not isinstance(evaluation, Mapping):
        evaluation = dataclasses.asdict(evaluation)
    optimizer = config.optimizer
    if isinstance(optimizer, OptimizerConfig):
        optimizer = dataclasses.asdict(optimizer)
    elif isinstance(optimizer, Mapping) and any(isinstance(v, OptimizerConfig)
                                                for v in optimizer.values()):
        optimizer = {k: dataclasses.asdict(v) for k, v in optimizer.items()}
    options = build_section(family.Options, spec, "model")
    config = dataclasses.replace(
        config,
        model=options,
        optimizer=_optimizers(family, options, optimizer),
        evaluation=build_section(family.EvaluationOptions, evaluation, "evaluation"))
    family.check_config(config, dataset_info(config.data))
    return config


def from_dict(raw: Mapping[str, Any], overrides: Sequence[str] = ()) -> Config:
    """The resolved `Config` of a nested mapping plus `KEY=VALUE` overrides."""
    return resolve(config_lib.parse(raw, overrides))


def load_config(path: str, overrides: Sequence[str] = ()) -> Config:
    """Reads a YAML config file, applies `--set` overrides and resolves it. Raises
    `ConfigError` on any problem."""
    return from_dict(config_lib.read(path), overrides)


def build_model(config: Config, info):
    """The built model of the resolved `config` for data described by `info` (a
    `DatasetInfo`). Call it inside the distribution strategy's scope so its variables are
    mirrored."""
    with policy_scope(config.training.precision):
        model = model_class(config).from_experiment(config, info)
        model.build()
    return model


def float32_copy(config: Config, model, info):
    """`model` (built from `config` under any `training.precision`) rebuilt in float32 with the
    same weights: what export serves, since TFLite's builtin kernels have no bfloat16 matrix
    products and TF Serving's CPUs gain nothing from them. `model` itself if it is float32."""
    if config.training.precision == "float32":
        return model
    full = dataclasses.replace(
        config, training=dataclasses.replace(config.training, precision="float32"))
    copy = build_model(full, info)
    copy.set_weights(model.get_weights())
    return copy


__all__ = ["build_model", "float32_copy", "from_dict", "load_config", "model_class", "resolve"]
