"""Config loading: strict keys, types, choices, overrides, and messages that name the fix."""

import pytest
import yaml

from tfdgm import config as config_lib
from tfdgm.errors import ConfigError


def load(tmp_path, raw, overrides=()):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return config_lib.load(str(path), overrides)


def test_quickstart_loads_and_round_trips(tmp_path):
    config = config_lib.load("configs/quickstart.yaml")
    assert config.data.name == "mnist5k" and config.model.latent_dim == 32
    config_lib.dump(config, str(tmp_path / "resolved.yaml"))
    assert config_lib.load(str(tmp_path / "resolved.yaml")) == config


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
    ({"optimizer": {"name": "sgd"}}, (), "optimizer.name: 'sgd' is not one of adam, adamax"),
    ({"model": {"posterior": {"name": "diagonal_gausian"}}}, (),
     "unknown posterior 'diagonal_gausian'. Did you mean 'diagonal_gaussian'?"),
    ({"model": {"encoder": {"name": "mlp", "hiden_units": [3]}}}, (),
     "model.encoder.hiden_units: encoder 'mlp' has no option 'hiden_units'. Did you mean 'hidden_units'?"),
    ({"data": {"name": "cifar100"}}, (), "unknown dataset 'cifar100'"),
    ({}, ["model.likelihood.name=bernoulli", "data.binarize=none"],
     "'bernoulli' models binary data but dataset 'mnist5k' is grey: set data.binarize=dynamic"),
    ({"objective": {"name": "iwae", "warmup_epochs": 5}}, (), "KL warm-up and free bits apply to the ELBO"),
    ({"model": {"posterior": {"name": "full_covariance_gaussian"}}, "objective": {"free_bits": 0.1},
      "data": {"binarize": "dynamic"}}, (), "objective.free_bits needs a per-dimension KL"),
    ({}, ["no_equals_sign"], "expected KEY=VALUE"),
])
def test_bad_config_is_a_clear_error(tmp_path, raw, overrides, message):
    raw = {"data": {"binarize": "dynamic"}, **raw} if "data" not in raw else raw
    with pytest.raises(ConfigError) as error:
        load(tmp_path, raw, overrides)
    assert message in str(error.value)


def test_missing_config_file_names_the_fix():
    with pytest.raises(ConfigError, match="does not exist. Pass CONFIG=configs/"):
        config_lib.load("configs/nope.yaml")


def test_every_shipped_config_is_valid():
    import glob
    paths = sorted(glob.glob("configs/**/*.yaml", recursive=True))
    assert "configs/quickstart.yaml" in paths
    for path in paths:
        config_lib.load(path)
