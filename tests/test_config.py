"""Config loading: strict keys, types, choices, overrides, and messages that name the fix."""

import pytest
import yaml

from tfdgm import config as config_lib
from tfdgm import experiment
from tfdgm.errors import ConfigError


def load(tmp_path, raw, overrides=()):
    path = tmp_path / "c.yaml"
    raw = {**raw, "model": {"name": "vae", **raw.get("model", {})}}
    path.write_text(yaml.safe_dump(raw))
    return experiment.load_config(str(path), overrides)


def test_quickstart_loads_and_round_trips(tmp_path):
    config = experiment.load_config("configs/quickstart.yaml")
    assert config.data.name == "mnist5k" and config.model.latent_dim == 32
    config_lib.dump(config, str(tmp_path / "resolved.yaml"))
    assert experiment.load_config(str(tmp_path / "resolved.yaml")) == config


def test_overrides_parse_yaml_values(tmp_path):
    config = load(tmp_path, {}, ["model.latent_dim=8", "optimizer.learning_rate=1e-3",
                                 "model.encoder={name: mlp, hidden_units: [64, 32]}",
                                 "data.binarize=dynamic"])
    assert config.model.latent_dim == 8
    assert config.optimizer.learning_rate == pytest.approx(1e-3)
    assert config.model.encoder == {"name": "mlp", "hidden_units": [64, 32]}


@pytest.mark.parametrize("raw, overrides, message", [
    ({"trainng": {}}, (), "trainng: unknown config key. Did you mean 'training'?"),
    ({"model": {"latent_dims": 3}}, (), "model.latent_dims: unknown config key. Did you mean 'latent_dim'?"),
    ({"training": {"epochs": "ten"}}, (), "training.epochs: expected an integer, got 'ten'"),
    ({"optimizer": {"name": "sgdd"}}, (), "optimizer.name: 'sgdd' is not one of adam, adamax"),
    ({"optimizer": {"learning_rate": 0}}, (), "optimizer.learning_rate must be positive"),
    ({"training": {"epochs": 0}}, (), "training.epochs must be at least 1"),
    ({"evaluation": {"nll_chunk": 0}}, (), "evaluation.nll_chunk"),
    ({"evaluation": {"nll_sample": 3}}, (), "evaluation.nll_sample: unknown config key. Did you mean 'nll_samples'?"),
    ({"name": ""}, (), "name: must be a non-empty name"),
    ({"model": {"name": "vea"}}, (), "unknown model 'vea'. Did you mean 'vae'?"),
    ({"model": {"posterior": {"name": "diagonal_gausian"}}}, (),
     "unknown posterior 'diagonal_gausian'. Did you mean 'diagonal_gaussian'?"),
    ({"model": {"encoder": {"name": "mlp", "hiden_units": [3]}}}, (),
     "model.encoder.hiden_units: encoder 'mlp' has no option 'hiden_units'. Did you mean 'hidden_units'?"),
    ({"data": {"name": "cifar100"}}, (), "unknown dataset 'cifar100'"),
    ({}, ["model.likelihood.name=bernoulli", "data.binarize=none"],
     "'bernoulli' models binary data but dataset 'mnist5k' is grey: set data.binarize=dynamic"),
    ({"model": {"objective": {"name": "iwae", "warmup_epochs": 5}}}, (),
     "KL warm-up and free bits apply to the ELBO"),
    ({"model": {"posterior": {"name": "full_covariance_gaussian"}, "objective": {"free_bits": 0.1}},
      "data": {"binarize": "dynamic"}}, (), "model.objective.free_bits needs a per-dimension KL"),
    ({}, ["no_equals_sign"], "expected KEY=VALUE"),
])
def test_bad_config_is_a_clear_error(tmp_path, raw, overrides, message):
    raw = {"data": {"binarize": "dynamic"}, **raw} if "data" not in raw else raw
    with pytest.raises(ConfigError) as error:
        load(tmp_path, raw, overrides)
    assert message in str(error.value)


def test_missing_config_file_names_the_fix():
    with pytest.raises(ConfigError, match="does not exist. Pass CONFIG=configs/"):
        experiment.load_config("configs/nope.yaml")


def test_empty_file_directory_and_missing_model_name_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="is empty; start from configs/quickstart.yaml"):
        experiment.load_config(str(empty))
    with pytest.raises(ConfigError, match="is a directory"):
        experiment.load_config(str(tmp_path))
    with pytest.raises(ConfigError, match="model.name: missing. Choose one of: .*vae"):
        experiment.from_dict({"data": {"binarize": "dynamic"}})


def test_the_family_owns_the_model_optimizer_and_evaluation_sections():
    from tfdgm.config import OptimizerConfig
    from tfdgm.models.vae import VAEEvaluationOptions, VAEOptions

    config = experiment.from_dict({"data": {"binarize": "dynamic"}, "model": {"name": "vae"}})
    assert isinstance(config.model, VAEOptions) and isinstance(config.evaluation,
                                                               VAEEvaluationOptions)
    # The family's default optimizer (the VampPrior paper's Adam 5e-4), overridable key by key.
    assert config.optimizer == OptimizerConfig(name="adam", learning_rate=5e-4)
    config = experiment.from_dict({"data": {"binarize": "dynamic"}, "model": {"name": "vae"}},
                                  ["optimizer.name=rmsprop"])
    assert config.optimizer.name == "rmsprop" and config.optimizer.learning_rate == 1e-3
    assert experiment.resolve(config) == config  # resolving a resolved config changes nothing


def test_every_shipped_config_is_valid():
    import glob
    paths = sorted(glob.glob("configs/**/*.yaml", recursive=True))
    assert "configs/quickstart.yaml" in paths
    for path in paths:
        experiment.load_config(path)
