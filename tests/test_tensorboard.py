"""TensorBoard: the run/tag layout of a tiny VAE run and a tiny RBM run read back from the event
files, text summaries, histograms, the embedding projector's files, and the display of a
VampPrior's pseudo-inputs."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from google.protobuf import text_format
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import projector as projector_plugin

from tfdgm import experiment
from tfdgm.config import DataConfig
from tfdgm.data import dataset_info, evenly_spaced_indices, load_images, load_labelled
from tfdgm.evaluation.images import sprite, stretch_each, tile
from tfdgm.models.vae.diagnostics import posterior_scales, vae_image_grids
from tfdgm.training import projector
from tfdgm.training.tensorboard import TensorBoardLogger
from tfdgm.training.train import restore, run_optimizers, train_and_evaluate

EPOCHS = 2
TINY_DATA = {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50, "eval_batch_size": 100,
             "max_examples": 300}
TINY_VAE = {
    "name": "tiny_vae",
    "data": TINY_DATA,
    "model": {"name": "vae", "latent_dim": 4, "encoder": {"name": "mlp", "hidden_units": [16]},
              "decoder": {"name": "mlp", "hidden_units": [16]},
              "objective": {"warmup_epochs": 1}},
    "training": {"epochs": EPOCHS, "patience": 5},
    "evaluation": {"nll_samples": 10, "nll_chunk": 10, "nll_examples": 20,
                   "surgery_examples": 0},
}
TINY_RBM_OVERRIDES = ["name=tiny_rbm", "data.max_examples=300", "data.eval_batch_size=100",
                      "model.hidden_units=8", "model.sample_steps=5", f"training.epochs={EPOCHS}",
                      "training.image_every_epochs=1",
                      "evaluation.ais_chains=8", "evaluation.ais_schedule=[[1.0, 10]]"]


def _run(config, run_dir):
    metrics = train_and_evaluate(config, run_dir)
    model = experiment.build_model(config, dataset_info(config.data))
    model.compile_for_training(run_optimizers(model, config))
    restore(model, os.path.join(run_dir, "checkpoints", "best.weights.h5"))
    return run_dir, config, metrics, model


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    return _run(experiment.from_dict(TINY_VAE), str(tmp_path_factory.mktemp("runs") / "vae"))


@pytest.fixture(scope="module")
def rbm_run(tmp_path_factory):
    config = experiment.load_config("configs/ebm/rbm_cd1.yaml", TINY_RBM_OVERRIDES)
    return _run(config, str(tmp_path_factory.mktemp("runs") / "rbm"))


def _events(run_dir, phase):
    events = EventAccumulator(os.path.join(run_dir, "logs", phase),
                              size_guidance={"tensors": 0, "images": 0, "histograms": 0})
    events.Reload()
    return events


def _plugin(events, tag):
    return events.SummaryMetadata(tag).plugin_data.plugin_name


def _layout(run_dir):
    """`{phase: {tag: (plugin, number of points)}}` of a run's event files."""
    layout = {}
    for phase in ("", "train", "validation", "test"):
        events = _events(run_dir, phase)
        layout[phase] = {tag: (_plugin(events, tag), len(events.Tensors(tag)))
                         for tag in events.Tags()["tensors"]}
    return layout


def _text(events, tag):
    return tf.make_ndarray(events.Tensors(tag)[-1].tensor_proto).item().decode()


def _histogram_count(events, tag, index=-1):
    buckets = tf.make_ndarray(events.Tensors(tag)[index].tensor_proto)  # [k, (left, right, n)]
    return float(buckets[:, 2].sum())


def _check_weight_histograms(events, model):
    """One histogram `weights/<path>` per trainable variable, with all of its values. (The test
    process numbers Keras's layer names on, so the paths of the model built here for comparison
    differ from the run's by suffixes: compare the variables' names and sizes.)"""
    tags = sorted(tag for tag in events.Tags()["tensors"] if tag.startswith("weights/"))
    variables = sorted(model.trainable_variables, key=lambda variable: variable.path)
    assert len(tags) == len(variables)
    assert sorted((tag.rsplit("/", 1)[-1], _histogram_count(events, tag)) for tag in tags) == (
        sorted((variable.name, float(np.prod(variable.shape))) for variable in variables))
    assert all(len(events.Tensors(tag)) == EPOCHS for tag in tags)


def test_vae_run_layout(vae_run):
    run_dir, _, metrics, model = vae_run
    layout = _layout(run_dir)
    per_epoch = {"elbo", "reconstruction", "kl", "loss"}
    assert {tag for tag in layout["validation"]} == per_epoch
    train = layout["train"]
    expected = {tag: "scalars" for tag in per_epoch | {"beta", "learning_rate",
                                                       "examples_per_second", "active_units"}}
    expected.update({tag: "histograms" for tag in ("kl_per_dimension", "posterior_mean",
                                                   "posterior_scale")})
    expected.update({f"images/{name}": "images"
                     for name in ("samples", "reconstructions", "interpolation")})
    assert {tag for tag in train if not tag.startswith("weights/")} == set(expected)
    for tag, plugin in expected.items():
        assert train[tag] == (plugin, EPOCHS), tag
    assert not [tag for tag in train if tag.startswith("kl_per_dimension/")]  # one chart, not D
    test = layout["test"]
    assert test["metrics"] == ("text", 1)
    scalars = {name.removeprefix("test_") for name, value in metrics.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    assert {tag for tag, (plugin, _) in test.items() if plugin == "scalars"} == scalars
    assert layout[""]["config"] == ("text", 1)
    assert {tag for tag, (plugin, _) in layout[""].items() if plugin == "hparams"} == {
        "_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}


def test_vae_histograms_cover_the_latent_space_and_every_weight(vae_run):
    run_dir, config, _, model = vae_run
    train = _events(run_dir, "train")
    images, dims = 64, config.model.latent_dim
    assert _histogram_count(train, "kl_per_dimension") == dims  # one value per dimension
    assert _histogram_count(train, "posterior_mean") == images * dims
    assert _histogram_count(train, "posterior_scale") == images * dims
    scales = tf.make_ndarray(train.Tensors("posterior_scale")[-1].tensor_proto)
    assert scales[:, 0].min() > 0  # standard deviations
    _check_weight_histograms(train, model)


def test_config_and_metrics_are_text_in_the_logs(vae_run):
    run_dir, _, metrics, _ = vae_run
    with open(os.path.join(run_dir, "config.yaml")) as f:
        config_yaml = f.read()
    text = _text(_events(run_dir, ""), "config")
    assert text.startswith("```yaml\n") and text.endswith("```")
    assert yaml.safe_load(text[len("```yaml\n"):-3]) == yaml.safe_load(config_yaml)
    table = _text(_events(run_dir, "test"), "metrics").splitlines()
    assert table[:2] == ["| metric | value |", "| --- | --- |"]
    rows = dict(line.strip("| ").split(" | ") for line in table[2:])
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert list(rows) == list(json.load(f))
    assert float(rows["test_elbo"]) == pytest.approx(metrics["test_elbo"], rel=1e-5)
    assert [float(v) for v in rows["kl_per_dimension"].split(", ")] == pytest.approx(
        metrics["kl_per_dimension"], rel=1e-3)


def _check_projector(run_dir, config, model, name):
    log_dir = os.path.join(run_dir, "logs", "test")
    with open(os.path.join(log_dir, "projector_config.pbtxt")) as f:
        projector_config = text_format.Parse(f.read(), projector_plugin.ProjectorConfig())
    (embedding,) = projector_config.embeddings
    assert embedding.tensor_name == f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
    images, labels = load_labelled(config.data, "test")
    count = len(images)  # 300 test examples (max_examples), fewer than the projector's 1000
    assert count == 300
    codes = tf.train.load_checkpoint(tf.train.latest_checkpoint(log_dir)).get_tensor(
        embedding.tensor_name)
    np.testing.assert_allclose(codes, model.embeddings(images)[name], rtol=1e-5, atol=1e-6)
    with open(os.path.join(log_dir, embedding.metadata_path)) as f:
        rows = f.read().splitlines()
    assert rows[0] == "index\tlabel" and len(rows) == count + 1
    assert rows[1:] == [f"{i}\t{label}" for i, label in enumerate(labels)]
    assert list(embedding.sprite.single_image_dim) == [28, 28]
    side = int(np.ceil(np.sqrt(count)))
    pixels = np.asarray(Image.open(os.path.join(log_dir, embedding.sprite.image_path)))
    assert pixels.shape == (side * 28, side * 28)
    row, column = divmod(count - 1, side)  # the last example's cell holds its image
    np.testing.assert_array_equal(
        pixels[row * 28:(row + 1) * 28, column * 28:(column + 1) * 28],
        np.round(images[-1, ..., 0] * 255).astype(np.uint8))


def test_projector_holds_the_vae_posterior_means_of_the_test_examples(vae_run):
    run_dir, config, _, model = vae_run
    _check_projector(run_dir, config, model, "posterior_mean")


def test_rbm_run_layout_and_projector(rbm_run):
    run_dir, config, metrics, model = rbm_run
    layout = _layout(run_dir)
    train, validation, test = layout["train"], layout["validation"], layout["test"]
    assert set(validation) & set(train) == {"free_energy", "reconstruction_error"}  # overlaid
    assert model.monitor.name in validation  # the pseudo-likelihood: validation only
    assert all(points == EPOCHS for _, points in validation.values())
    assert train["examples_per_second"] == ("scalars", EPOCHS)
    _check_weight_histograms(_events(run_dir, "train"), model)
    assert [tag for tag in train if tag.startswith("images/")]
    assert test["metrics"] == ("text", 1) and layout[""]["config"] == ("text", 1)
    assert {tag for tag, (plugin, _) in test.items() if plugin == "scalars"} == {
        name.removeprefix("test_") for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)}
    _check_projector(run_dir, config, model, "hidden_probabilities")


def test_projector_subset_is_evenly_spaced_and_points_have_no_sprite(tmp_path):
    data = DataConfig(name="two_moons", max_examples=500)
    examples = projector.projector_examples(data, limit=100)
    points, labels = load_labelled(data, "test")
    np.testing.assert_array_equal(examples.indices, evenly_spaced_indices(len(points), 100))
    np.testing.assert_array_equal(examples.images, points[examples.indices])
    np.testing.assert_array_equal(examples.labels, labels[examples.indices])
    codes = {"a": np.arange(200.0).reshape(100, 2), "b": np.ones((100, 3))}
    projector.write_projector(str(tmp_path), codes, examples)
    with open(tmp_path / "projector_config.pbtxt") as f:
        config = text_format.Parse(f.read(), projector_plugin.ProjectorConfig())
    assert [e.tensor_name for e in config.embeddings] == [projector.tensor_name("a"),
                                                          projector.tensor_name("b")]
    assert not any(e.sprite.image_path for e in config.embeddings)
    assert not os.path.exists(tmp_path / "sprite.png")
    reader = tf.train.load_checkpoint(str(tmp_path))
    np.testing.assert_array_equal(reader.get_tensor(projector.tensor_name("a")), codes["a"])
    with pytest.raises(ValueError, match=r"\[100, D\]"):
        projector.write_projector(str(tmp_path), {"a": np.ones((99, 2))}, examples)


def test_unlabelled_examples_have_a_single_metadata_column(tmp_path):
    examples = projector.ProjectorExamples(images=np.zeros((5, 3, 2, 1)), indices=np.arange(5))
    projector.write_projector(str(tmp_path), {"z": np.zeros((5, 2))}, examples)
    assert (tmp_path / "metadata.tsv").read_text().splitlines() == ["0", "1", "2", "3", "4"]
    with open(tmp_path / "projector_config.pbtxt") as f:
        config = text_format.Parse(f.read(), projector_plugin.ProjectorConfig())
    assert list(config.embeddings[0].sprite.single_image_dim) == [2, 3]  # [width, height]
    assert Image.open(tmp_path / "sprite.png").size == (3 * 2, 3 * 3)


def test_a_model_without_embeddings_writes_no_projector(tmp_path):
    config = experiment.load_config("configs/gan/ns_gan_mnist5k.yaml",
                                    ["model.filters=4", "model.latent_dim=2"])
    model = experiment.build_model(config, dataset_info(config.data))
    logger = TensorBoardLogger(str(tmp_path), np.zeros((2, 28, 28, 1)), config.to_dict(),
                               global_batch_size=64)
    logger.set_model(model)
    assert logger.log_projector() is None
    assert not [name for name in os.listdir(tmp_path / "test") if "tfevents" not in name]


def test_sprite_places_images_row_major():
    images = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((5, 2, 3, 1))
    grid = sprite(images)
    assert grid.shape == (3 * 2, 3 * 3, 1)
    assert grid[0, 0, 0] == 0 and grid[0, 3, 0] == 1 and grid[2, 0, 0] == 3
    assert grid[2, 6, 0] == 0 and grid[4, 0, 0] == 0  # cells 5.. are empty


@pytest.mark.parametrize("values", [np.random.default_rng(0).standard_normal([300, 7]),
                                    np.arange(100.0), np.full([5, 3], 0.25), np.array([2.0])])
def test_weight_histograms_are_those_of_tf_summary_histogram(values):
    from tensorboard.plugins.histogram.summary_v2 import _buckets

    from tfdgm.training.tensorboard import histogram_buckets

    ours = histogram_buckets(tf.constant(values, tf.float32)).numpy()
    reference = _buckets(tf.constant(values, tf.float32), tf.constant(30)).numpy()
    assert ours.shape == reference.shape == (30, 3)
    np.testing.assert_allclose(ours[:, :2], reference[:, :2], rtol=1e-12)
    assert ours[:, 2].sum() == values.size
    np.testing.assert_array_equal(ours[:, 2], reference[:, 2])


def test_no_per_batch_work_in_the_logger():
    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_end"):
        assert getattr(TensorBoardLogger, hook) is getattr(keras.callbacks.Callback, hook), hook


def _vamp_model(init):
    config = experiment.from_dict({
        "data": TINY_DATA,
        "model": {"name": "vae", "latent_dim": 2, "encoder": {"name": "mlp", "hidden_units": [8]},
                  "decoder": {"name": "mlp", "hidden_units": [8]},
                  "prior": {"name": "vamp_prior", "num_components": 9, "init": init}}})
    model = experiment.build_model(config, dataset_info(config.data))
    return model, load_images(config.data, "train")


def test_pseudo_input_grid_shows_dim_pseudo_inputs_at_the_data_range():
    model, images = _vamp_model("training_images")
    model.prior.initialize_pseudo_inputs(images, seed=0)
    data_init = model.prior.pseudo_inputs().numpy()
    expected = tile(data_init)
    np.testing.assert_allclose(vae_image_grids(model, images[:4])["pseudo_inputs"], expected)
    # A few epochs from the paper's initialization (0 after the clip), the pseudo-inputs are
    # faint: pixels in [0, 0.3]. The grid stretches each to [0, 1] instead of showing black.
    model.prior.pseudo_inputs_raw.assign(0.1 * data_init)
    grid = vae_image_grids(model, images[:4])["pseudo_inputs"]
    np.testing.assert_allclose(grid, expected, atol=1e-6)
    assert grid.max() == pytest.approx(1.0)


def test_stretch_each_maps_each_image_to_the_unit_interval():
    images = np.stack([np.linspace(0.1, 0.2, 4).reshape(2, 2, 1),
                       np.linspace(-3.0, 5.0, 4).reshape(2, 2, 1),
                       np.full((2, 2, 1), 0.4)])
    stretched = stretch_each(images)
    np.testing.assert_allclose(stretched[0], np.linspace(0, 1, 4).reshape(2, 2, 1))
    np.testing.assert_allclose(stretched[1], np.linspace(0, 1, 4).reshape(2, 2, 1))
    np.testing.assert_array_equal(stretched[2], images[2])  # no contrast to stretch


@pytest.mark.parametrize("posterior", ["diagonal_gaussian", "full_covariance_gaussian"])
def test_posterior_scales_are_the_standard_deviations_of_q(posterior):
    config = experiment.from_dict({
        "data": TINY_DATA,
        "model": {"name": "vae", "latent_dim": 3, "encoder": {"name": "mlp", "hidden_units": [8]},
                  "decoder": {"name": "mlp", "hidden_units": [8]},
                  "posterior": {"name": posterior}}})
    model = experiment.build_model(config, dataset_info(config.data))
    h = model.encoder(np.random.default_rng(0).random((4, 28, 28, 1), np.float32))
    draws = model.posterior(h, num_samples=20000, seed=tf.constant([5, 6], tf.int64)).z
    np.testing.assert_allclose(posterior_scales(model.posterior, h),
                               tf.math.reduce_std(draws, axis=0), rtol=0.05)
