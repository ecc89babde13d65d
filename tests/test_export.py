"""Export of VAEs to SavedModel (TF Serving layout) and TFLite, and the example serving client.

Every exported signature is compared numerically with the Keras model it came from, on a small
VAE whose weights were moved away from their initialization (a few Adam steps, or a random
perturbation: zero-initialized heads would hide a missing weight). TF Serving itself cannot be
installed here; `saved_model_cli` loads SavedModels through the same loader, and the client is
run against in-process stand-ins of the REST and gRPC predict APIs.
"""

import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdgm import models  # noqa: F401  (registers the families and components)
from tfdgm import export
from tfdgm.errors import TfdgmError
from tfdgm.models.vae.model import VAE
from tfdgm.registry import DECODERS, ENCODERS, LIKELIHOODS, POSTERIORS, PRIORS

ROOT = Path(__file__).resolve().parents[1]
SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"
IMAGE_SHAPE = (28, 28, 1)
LATENT_DIM = 4
ATOL = 1e-5
SIGNATURES = ("encode", "decode", "reconstruct", "generate", "elbo")
"""The VAE's exported signatures (its `signatures()`), which users' clients rely on."""
OUTPUT_NAMES = {"encode": "z", "decode": "x_mean", "reconstruct": "x_mean", "generate": "x_mean",
                "elbo": "elbo"}


def make_vae(likelihood="bernoulli", posterior="diagonal_gaussian"):
    """A small MLP VAE (one hidden layer of 32 units each side, D = 4) on 28x28x1 images."""
    likelihood = LIKELIHOODS.build({"name": likelihood}, "likelihood")
    model = VAE(
        encoder=ENCODERS.build({"name": "mlp", "hidden_units": [32]}, "encoder",
                               event_shape=IMAGE_SHAPE),
        decoder=DECODERS.build({"name": "mlp", "hidden_units": [32]}, "decoder",
                               event_shape=IMAGE_SHAPE,
                               params_per_pixel=likelihood.params_per_pixel),
        posterior=POSTERIORS.build({"name": posterior}, "posterior", latent_dim=LATENT_DIM),
        prior=PRIORS.build({"name": "standard_normal"}, "prior", latent_dim=LATENT_DIM),
        likelihood=likelihood, image_shape=IMAGE_SHAPE)
    model.build()
    return model


def perturb(model, seed, scale=0.1):
    """Adds N(0, scale^2) noise to every trainable weight (zero-initialized ones included)."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_weights:
        value = np.asarray(variable)
        variable.assign(value + scale * rng.standard_normal(value.shape).astype(value.dtype))


def random_images(n, seed, binary):
    rng = np.random.default_rng(seed)
    if binary:
        return (rng.random((n,) + IMAGE_SHAPE) < 0.3).astype(np.float32)
    return (rng.integers(0, 256, (n,) + IMAGE_SHAPE) / 255.0).astype(np.float32)


def random_codes(n, seed):
    return np.random.default_rng(seed).standard_normal((n, LATENT_DIM)).astype(np.float32)


def keras_reference(model, signature, value):
    """What the Keras model's method gives for the input of `signature`."""
    method = {"serving_default": "reconstruct"}.get(signature, signature)
    return np.asarray(getattr(model, method)(tf.constant(value)))


def signature_input(signature, n, seed, binary=True):
    name = {"encode": "x", "decode": "z", "reconstruct": "x", "generate": "eps", "elbo": "x",
            "serving_default": "x"}[signature]
    value = random_codes(n, seed) if name in ("z", "eps") else random_images(n, seed, binary)
    return name, value


def load_client():
    spec = importlib.util.spec_from_file_location("tfdgm_export_client",
                                                  ROOT / "export" / "client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli_env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


# Fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bernoulli_vae():
    """A Bernoulli VAE after three Adam steps on random binary images."""
    keras.utils.set_random_seed(1)
    model = make_vae("bernoulli")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(random_images(24, seed=0, binary=True), epochs=1, batch_size=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def exported(bernoulli_vae, tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    return export.export_saved_model(bernoulli_vae, str(base), "vae", 1)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported)


@pytest.fixture(scope="module")
def tflite_path(bernoulli_vae, tmp_path_factory):
    path = tmp_path_factory.mktemp("tflite") / "vae.tflite"
    return export.export_tflite(bernoulli_vae, str(path))


@pytest.fixture(scope="module")
def cli_runs(exported, tmp_path_factory):
    """`saved_model_cli show --all` and `saved_model_cli run` (decode at two codes), started in
    the background as soon as the export exists: each pays TensorFlow's import (seconds), which
    then overlaps the other tests. `cli_results` waits for them."""
    outdir = tmp_path_factory.mktemp("cli_run")
    # TF 2.21's saved_model_cli evaluates --input_exprs with ast.literal_eval: numpy calls such as
    # np.zeros((2, 4)) are rejected ("not a valid python literal"); spell the array out.
    codes = [[0.0, 0.0, 0.0, 0.0], [0.5, -1.0, 0.25, 2.0]]
    commands = {
        "show": [str(SAVED_MODEL_CLI), "show", "--all", "--dir", exported],
        "run": [str(SAVED_MODEL_CLI), "run", "--dir", exported, "--tag_set", "serve",
                "--signature_def", "decode", "--input_exprs", f"z={codes}",
                "--outdir", str(outdir), "--overwrite"],
    }
    processes = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=cli_env())
                 for name, command in commands.items()}
    yield {"processes": processes, "outdir": outdir, "codes": np.asarray(codes, np.float32)}
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def cli_results(cli_runs):
    results = {"outdir": cli_runs["outdir"], "codes": cli_runs["codes"]}
    for name, process in cli_runs["processes"].items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = (process.returncode, stdout, stderr)
    return results


# SavedModel --------------------------------------------------------------------------------------

def test_tf_serving_layout(exported, cli_runs):
    # Requesting cli_runs starts the saved_model_cli subprocesses now, so they run beside the
    # tests below; their own tests come last.
    path = Path(exported)
    assert path.name == "1" and path.parent.name == "vae"
    assert (path / "saved_model.pb").is_file()
    assert (path / "variables" / "variables.index").is_file()
    assert list((path / "variables").glob("variables.data-*"))
    # The staging directory was renamed into place: nothing else is left beside the version.
    assert sorted(p.name for p in path.parent.iterdir()) == ["1"]


def test_existing_version_and_bad_names_are_refused(bernoulli_vae, exported):
    base = str(Path(exported).parent.parent)
    with pytest.raises(export.ExportError, match="exists"):
        export.export_saved_model(bernoulli_vae, base, "vae", 1)
    for version in (0, -1, "2", 1.0, True):
        with pytest.raises(export.ExportError, match="positive integer"):
            export.export_saved_model(bernoulli_vae, base, "vae", version)
    with pytest.raises(export.ExportError, match="plain directory name"):
        export.export_saved_model(bernoulli_vae, base, "a/b", 2)
    assert issubclass(export.ExportError, TfdgmError)


@pytest.mark.parametrize("signature", list(SIGNATURES) + ["serving_default"])
def test_saved_model_signature_matches_keras(bernoulli_vae, loaded, signature):
    name, value = signature_input(signature, n=5, seed=7)
    outputs = loaded.signatures[signature](**{name: tf.constant(value)})
    assert list(outputs) == [OUTPUT_NAMES.get(signature, "x_mean")]
    got = outputs[list(outputs)[0]].numpy()
    want = keras_reference(bernoulli_vae, signature, value)
    assert got.shape == want.shape and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=ATOL)


def test_saved_model_endpoints_are_callable_and_batch_free(bernoulli_vae, loaded):
    """The endpoints are also restored as functions (`loaded.generate(eps)`) of any batch size."""
    for batch in (1, 9):
        eps = random_codes(batch, seed=batch)
        np.testing.assert_allclose(loaded.generate(tf.constant(eps))["x_mean"].numpy(),
                                   keras_reference(bernoulli_vae, "generate", eps), atol=ATOL)


# TFLite ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 5])
def test_tflite_generator_matches_keras(bernoulli_vae, tflite_path, batch):
    interpreter = export.load_tflite_interpreter(tflite_path)
    assert type(interpreter).__module__.startswith("ai_edge_litert")
    assert sorted(interpreter.get_signature_list()) == ["decode", "generate"]
    codes = random_codes(batch, seed=11)
    generated = interpreter.get_signature_runner("generate")(eps=codes)["x_mean"]
    decoded = interpreter.get_signature_runner("decode")(z=codes)["x_mean"]
    np.testing.assert_allclose(generated, keras_reference(bernoulli_vae, "generate", codes),
                               atol=ATOL)
    np.testing.assert_allclose(decoded, keras_reference(bernoulli_vae, "decode", codes),
                               atol=ATOL)


def test_tflite_carries_its_weights(bernoulli_vae, tflite_path):
    summary = export.tflite_summary(tflite_path)
    decoder_bytes = sum(int(np.prod(v.shape)) * 4 for v in bernoulli_vae.decoder.weights)
    encoder_bytes = sum(int(np.prod(v.shape)) * 4 for v in bernoulli_vae.encoder.weights)
    assert summary["signatures"] == ["decode", "generate"]
    assert summary["constant_bytes"] >= decoder_bytes
    assert os.path.getsize(tflite_path) == summary["file_bytes"] > decoder_bytes
    # Only the generator: the encoder's weights are not in the file.
    assert summary["constant_bytes"] < decoder_bytes + encoder_bytes
    assert not [op for op in summary["ops"] if op.startswith("CUSTOM") or "FLEX" in op]


def test_verify_tflite_rejects_a_weightless_file(bernoulli_vae, tflite_path, tmp_path):
    """A file whose constant buffers are gone (what a hand-written tf.Module export gives) is
    caught by the weight check, not left to return NaN."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    with open(tflite_path, "rb") as file:
        flat = schema.ModelT.InitFromPackedBuf(bytearray(file.read()), 0)
    for buffer in flat.buffers:
        buffer.data = None
    builder = flatbuffers.Builder(1024)
    builder.Finish(flat.Pack(builder), file_identifier=b"TFL3")
    stripped = tmp_path / "weightless.tflite"
    stripped.write_bytes(builder.Output())
    assert export.tflite_summary(str(stripped))["constant_bytes"] == 0
    with pytest.raises(export.ExportError, match="weights were not converted"):
        export.verify_tflite(bernoulli_vae, str(stripped))


def test_discretized_logistic_vae_exports(tmp_path):
    """A two-parameter likelihood: decode/generate return the clipped logistic mean."""
    keras.utils.set_random_seed(2)
    model = make_vae("discretized_logistic")
    perturb(model, seed=3)
    path = export.export_saved_model(model, str(tmp_path), "logistic_vae", 3)
    assert path == str(tmp_path / "logistic_vae" / "3")
    loaded = tf.saved_model.load(path)
    for signature in SIGNATURES:
        name, value = signature_input(signature, n=4, seed=5, binary=False)
        got = loaded.signatures[signature](**{name: tf.constant(value)})
        got = got[OUTPUT_NAMES[signature]].numpy()
        np.testing.assert_allclose(got, keras_reference(model, signature, value), atol=ATOL,
                                   rtol=ATOL)
    tflite = export.export_tflite(model, str(tmp_path / "logistic.tflite"))
    runner = export.load_tflite_interpreter(tflite).get_signature_runner("generate")
    codes = 2.0 * random_codes(6, seed=9)
    got = runner(eps=codes)["x_mean"]
    want = keras_reference(model, "generate", codes)
    assert got.shape == (6,) + IMAGE_SHAPE and 0.0 <= got.min() and got.max() <= 1.0
    np.testing.assert_allclose(got, want, atol=ATOL)


def test_full_covariance_posterior_exports_its_generator_to_tflite(tmp_path):
    """The Cholesky factor lives on the encoder side only: the TFLite generator converts with
    builtins and holds no matrix or random op and no encoder weight; the SavedModel keeps the
    full-covariance encode and ELBO, equal to Keras."""
    keras.utils.set_random_seed(4)
    model = make_vae("bernoulli", posterior="full_covariance_gaussian")
    perturb(model, seed=5)  # the lower-triangle head starts at zero
    assert np.abs(np.asarray(model.posterior.lower_head.kernel)).max() > 0
    tflite = export.export_tflite(model, str(tmp_path / "full_cov.tflite"))
    summary = export.tflite_summary(tflite)
    forbidden = ("MATRIX", "CHOLESKY", "TRIANGULAR", "RANDOM", "CUSTOM", "FLEX", "GATHER")
    assert not [op for op in summary["ops"] if any(word in op for word in forbidden)], summary
    encoder_bytes = sum(int(np.prod(v.shape)) * 4
                        for v in model.encoder.weights + model.posterior.weights)
    decoder_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.decoder.weights)
    assert decoder_bytes <= summary["constant_bytes"] < decoder_bytes + encoder_bytes
    interpreter = export.load_tflite_interpreter(tflite)
    codes = random_codes(3, seed=6)
    for signature, argument in (("generate", "eps"), ("decode", "z")):
        got = interpreter.get_signature_runner(signature)(**{argument: codes})["x_mean"]
        np.testing.assert_allclose(got, keras_reference(model, signature, codes), atol=ATOL)

    loaded = tf.saved_model.load(export.export_saved_model(model, str(tmp_path), "vae", 1))
    images = random_images(4, seed=8, binary=True)
    for signature in ("encode", "elbo"):
        got = loaded.signatures[signature](x=tf.constant(images))
        np.testing.assert_allclose(got[OUTPUT_NAMES[signature]].numpy(),
                                   keras_reference(model, signature, images), atol=ATOL,
                                   rtol=ATOL)


# Serving config and client -----------------------------------------------------------------------

def parse_models_config(path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(Path(path).read_text(), model_server_config_pb2.ModelServerConfig())


def test_shipped_models_config_is_what_the_quickstart_export_writes(exported, tmp_path):
    """export/models.config serves what `make export` writes for the quickstart (and is the file
    `write_models_config` gives for an export base holding `quickstart/1/`)."""
    (model,) = parse_models_config(ROOT / "export" / "models.config").model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == (
        "quickstart", "/models/quickstart", "tensorflow")
    # base_path is the model directory (<export_base>/<model_name>), never a version directory.
    assert Path(model.base_path).name == model.name
    shutil.copytree(exported, tmp_path / "quickstart" / "1")
    written = export.write_models_config(str(tmp_path))
    assert Path(written).read_text() == (ROOT / "export" / "models.config").read_text()


def test_models_config_lists_every_exported_model_and_keeps_edits(exported, tmp_path):
    shutil.copytree(exported, tmp_path / "vae" / "1")
    shutil.copytree(exported, tmp_path / "other" / "3")
    (tmp_path / "other" / ".tmp-4-x").mkdir()  # a staging folder of an export in progress
    (tmp_path / "__pycache__").mkdir()  # not a model: no numeric folder with a saved_model.pb
    (tmp_path / "other-3.tflite").write_bytes(b"")
    path = export.write_models_config(str(tmp_path))
    assert path == str(tmp_path / "models.config")
    entries = parse_models_config(path).model_config_list.config
    assert [(e.name, e.base_path, e.model_platform) for e in entries] == [
        ("other", "/models/other", "tensorflow"), ("vae", "/models/vae", "tensorflow")]

    # A user pins a version of one model and adds a model served from elsewhere; then the other
    # model's folder goes away and the config is rewritten.
    edited = parse_models_config(path)
    edited.model_config_list.config[1].model_version_policy.specific.versions.append(1)
    edited.model_config_list.config.add(name="external", base_path="/data/external",
                                        model_platform="tensorflow")
    from google.protobuf import text_format
    Path(path).write_text(text_format.MessageToString(edited))
    shutil.rmtree(tmp_path / "other")
    entries = parse_models_config(export.write_models_config(str(tmp_path))).model_config_list
    assert [e.name for e in entries.config] == ["vae", "external"]
    assert list(entries.config[0].model_version_policy.specific.versions) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "__pycache__", "models.config", "other-3.tflite", "vae"]

    Path(path).write_text("model_config_list { config { nmae: 'x' } }")
    with pytest.raises(export.ExportError, match="not a text-format ModelServerConfig"):
        export.write_models_config(str(tmp_path))


# Warm-up requests and versions -------------------------------------------------------------------

def test_warmup_requests_parse_and_replay_on_every_signature(bernoulli_vae, exported, loaded):
    """assets.extra/tf_serving_warmup_requests holds one PredictionLog per signature, whose
    request runs on the loaded SavedModel as TF Serving replays it: finite outputs of the batch
    written, equal to the Keras model."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(exported) / "assets.extra" / "tf_serving_warmup_requests"
    records = [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
    logs = [prediction_log_pb2.PredictionLog.FromString(record) for record in records]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * len(logs)
    names = [log.predict_log.request.model_spec.signature_name for log in logs]
    assert sorted(names) == sorted(SIGNATURES + ("serving_default",))
    assert set(names) == set(loaded.signatures)
    assert export.read_warmup_requests(exported) == logs
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "vae"
        (key,) = request.inputs
        value = tf.make_ndarray(request.inputs[key])
        assert value.dtype == np.float32 and value.shape[0] == 2
        outputs = loaded.signatures[request.model_spec.signature_name](
            **{key: tf.constant(value)})
        (got,) = [output.numpy() for output in outputs.values()]
        assert got.shape[0] == 2 and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, keras_reference(
            bernoulli_vae, request.model_spec.signature_name, value), atol=ATOL, rtol=ATOL)
    # Image requests are valid images: pixels in [0, 1].
    images = [tf.make_ndarray(log.predict_log.request.inputs["x"]) for log in logs
              if "x" in log.predict_log.request.inputs]
    assert images and all(0.0 <= image.min() and image.max() <= 1.0 for image in images)
    assert export.replay_warmup_requests(loaded, exported) == names


def test_a_failing_warmup_request_is_caught(bernoulli_vae, exported, tmp_path):
    """verify_saved_model replays the warm-up file: a request for a signature the SavedModel
    lacks, or a missing one, is an ExportError."""
    from tensorflow_serving.apis import prediction_log_pb2

    copy = tmp_path / "1"
    shutil.copytree(exported, copy)
    logs = export.read_warmup_requests(str(copy))
    logs[0].predict_log.request.model_spec.signature_name = "nope"
    with tf.io.TFRecordWriter(str(copy / "assets.extra" / "tf_serving_warmup_requests")) as w:
        for log in logs:
            w.write(log.SerializeToString())
    with pytest.raises(export.ExportError, match="unknown signature 'nope'"):
        export.verify_saved_model(bernoulli_vae, str(copy))
    with tf.io.TFRecordWriter(str(copy / "assets.extra" / "tf_serving_warmup_requests")) as w:
        w.write(prediction_log_pb2.PredictionLog(predict_log=logs[1].predict_log)
                .SerializeToString())
    with pytest.raises(export.ExportError, match="has no request for"):
        export.verify_saved_model(bernoulli_vae, str(copy))


def test_version_auto_is_the_next_free_version(bernoulli_vae, exported, tmp_path):
    base = str(tmp_path)
    assert export.next_version(base, "vae") == 1
    assert export.resolve_version("auto", base, "vae") == 1
    shutil.copytree(exported, tmp_path / "vae" / "1")
    (tmp_path / "vae" / "5").mkdir()
    (tmp_path / "vae" / ".tmp-9-abc").mkdir()  # staging: not a version
    (tmp_path / "vae" / "7.txt").write_text("")
    assert export.next_version(base, "vae") == 6
    (tmp_path / "vae-8.tflite").write_bytes(b"")  # a TFLite version counts as taken too
    assert export.next_version(base, "vae") == 9
    assert export.next_version(base, "va") == 1
    assert export.resolve_version("3", base, "vae") == 3
    for bad in ("latest", "0", "-2", 0, 2.0, None):
        with pytest.raises(export.ExportError, match="positive integer or 'auto'"):
            export.resolve_version(bad, base, "vae")
    shutil.rmtree(tmp_path / "vae" / "5")
    path = export.export_saved_model(bernoulli_vae, base, "vae", "auto", verify=False)
    assert path == str(tmp_path / "vae" / "9")
    assert export.read_warmup_requests(path)


def test_tflite_is_versioned_and_never_silently_replaced(bernoulli_vae, tflite_path, tmp_path):
    assert export.tflite_path("export", "quickstart", 3) == os.path.join("export",
                                                                         "quickstart-3.tflite")
    before = Path(tflite_path).read_bytes()
    with pytest.raises(export.ExportError, match="exists.*--overwrite"):
        export.export_tflite(bernoulli_vae, tflite_path)
    assert Path(tflite_path).read_bytes() == before
    # export_model checks both targets before writing either: no SavedModel of version 2 appears.
    shutil.copy(tflite_path, tmp_path / "vae-2.tflite")
    with pytest.raises(export.ExportError, match="vae-2.tflite exists"):
        export.export_model(bernoulli_vae, str(tmp_path), "vae", 2)
    assert not (tmp_path / "vae").exists()


def _tiny_run(run_dir):
    """A run directory (config.yaml and a best checkpoint) of a small MLP VAE, without
    training: the checkpoint holds perturbed initial weights."""
    import yaml

    from tfdgm import experiment
    from tfdgm.data import dataset_info
    from tfdgm.training import callbacks
    from tfdgm.training.train import Run, make_optimizers

    raw = {"name": "tiny",
           "data": {"name": "mnist5k", "binarize": "dynamic", "batch_size": 50,
                    "max_examples": 300},
           "model": {"name": "vae", "latent_dim": LATENT_DIM,
                     "encoder": {"name": "mlp", "hidden_units": [16]},
                     "decoder": {"name": "mlp", "hidden_units": [16]}}}
    run = Run(str(run_dir))
    os.makedirs(run.checkpoints)
    Path(run.config).write_text(yaml.safe_dump(raw))
    config = experiment.load_config(run.config)
    model = experiment.build_model(config, dataset_info(config.data))
    model.compile_for_training(make_optimizers(model, config.optimizer))
    model.build_optimizers()
    perturb(model, seed=12)
    callbacks.save_weights_atomically(model, run.checkpoint("best"))
    return model


def test_cli_export_versions_config_and_instructions(tmp_path, capsys):
    from tfdgm.__main__ import main

    model = _tiny_run(tmp_path / "run")
    base = tmp_path / "export"
    command = ["export", "--run", str(tmp_path / "run"), "--base-dir", str(base)]
    assert main(command + ["--version", "auto"]) == 0
    out = capsys.readouterr().out
    assert (base / "tiny" / "1" / "saved_model.pb").is_file()
    assert (base / "tiny" / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert (base / "tiny-1.tflite").is_file()
    (entry,) = parse_models_config(base / "models.config").model_config_list.config
    assert (entry.name, entry.base_path) == ("tiny", "/models/tiny")
    # The signatures written, with their inputs and outputs, and how to serve and call them.
    assert re.search(r"generate +eps float32 \[B, 4\]  ->  x_mean float32 \[B, 28, 28, 1\]", out)
    assert re.search(r"serving_default +x float32 \[B, 28, 28, 1\]  ->  x_mean", out)
    docker = next(line for line in out.splitlines() if "docker run" in line)
    assert f"source={base},target=/models" in docker and "tensorflow/serving" in docker
    assert "--model_config_file=/models/models.config" in docker
    curl = next(line for line in out.splitlines() if line.strip().startswith("curl"))
    assert "http://localhost:8501/v1/models/tiny:predict" in curl
    body = json.loads(curl.split("-d '", 1)[1].rstrip("'"))
    assert body["signature_name"] == "generate"
    (instance,) = body["instances"]
    assert len(instance["eps"]) == model.noise_dim

    assert main(command + ["--version", "1"]) == 2  # the SavedModel exists
    assert "--version auto" in capsys.readouterr().err
    shutil.rmtree(base / "tiny" / "1")
    assert main(command + ["--version", "1"]) == 2  # the TFLite file of version 1 still exists
    assert "tiny-1.tflite exists" in capsys.readouterr().err
    assert not (base / "tiny" / "1").exists()
    assert main(command + ["--version", "latest"]) == 2
    assert "positive integer or 'auto'" in capsys.readouterr().err
    assert export.next_version(str(base), "tiny") == 2


def test_client_builds_predict_request():
    client = load_client()
    eps = random_codes(3, seed=1)
    request = client.build_predict_request("vae", "generate", {"eps": eps}, version=2)
    assert request.DESCRIPTOR.full_name == "tensorflow.serving.PredictRequest"
    assert request.model_spec.name == "vae"
    assert request.model_spec.signature_name == "generate"
    assert request.model_spec.version.value == 2
    assert list(request.inputs) == ["eps"]
    proto = request.inputs["eps"]
    assert proto.dtype == tf.float32.as_datatype_enum
    assert [d.size for d in proto.tensor_shape.dim] == [3, LATENT_DIM]
    np.testing.assert_array_equal(tf.make_ndarray(proto), eps)
    # A serialized round trip is what goes over the wire.
    assert type(request).FromString(request.SerializeToString()) == request
    unpinned = client.build_predict_request("vae", "decode", {"z": eps})
    assert not unpinned.model_spec.HasField("version")


def test_client_builds_rest_request():
    client = load_client()
    eps = random_codes(2, seed=2)
    request = client.build_rest_request("http://localhost:8501/", "vae", "generate", {"eps": eps})
    assert request.full_url == "http://localhost:8501/v1/models/vae:predict"
    assert request.get_method() == "POST"
    body = json.loads(request.data)
    assert body["signature_name"] == "generate"
    assert len(body["instances"]) == 2 and list(body["instances"][0]) == ["eps"]
    np.testing.assert_allclose(body["instances"][1]["eps"], eps[1], rtol=1e-7)
    assert (client.predict_url("http://h:8501", "vae", 3)
            == "http://h:8501/v1/models/vae/versions/3:predict")
    with pytest.raises(ValueError, match="batch"):
        client.build_rest_payload("generate", {"eps": np.float32(1.0)})
    assert client.INPUT_NAMES["generate"] == "eps"
    assert {k: v for k, v in client.OUTPUT_NAMES.items() if k != "serving_default"} \
        == OUTPUT_NAMES


class _FakeRestServer(http.server.ThreadingHTTPServer):
    """TF Serving's REST predict API (row format) over a loaded SavedModel."""

    def __init__(self, loaded, model_name):
        self.loaded, self.model_name = loaded, model_name
        super().__init__(("127.0.0.1", 0), _FakeRestHandler)


class _FakeRestHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, code, body):
        reply = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_GET(self):
        """TF Serving's model metadata: the signature_def with every input's shape."""
        match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/\d+)?/metadata", self.path)
        if not match or match.group(1) != self.server.model_name:
            self._reply(404, {"error": f"Servable not found for request: {self.path}"})
            return
        signature_def = {}
        for name, function in self.server.loaded.signatures.items():
            inputs = {spec.name: {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [
                {"size": str(-1 if size is None else size), "name": ""} for size in spec.shape]}}
                for spec in function.structured_input_signature[1].values()}
            signature_def[name] = {"inputs": inputs, "method_name": "tensorflow/serving/predict"}
        self._reply(200, {"model_spec": {"name": self.server.model_name},
                          "metadata": {"signature_def": {"signature_def": signature_def}}})

    def do_POST(self):
        match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/\d+)?:predict", self.path)
        if not match or match.group(1) != self.server.model_name:
            self._reply(404, {"error": f"Servable not found for request: {self.path}"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        instances = body["instances"]
        inputs = {name: tf.constant(np.asarray([row[name] for row in instances], np.float32))
                  for name in instances[0]}
        outputs = self.server.loaded.signatures[body.get("signature_name", "serving_default")](
            **inputs)
        outputs = {name: value.numpy().tolist() for name, value in outputs.items()}
        if len(outputs) == 1:  # one named output: TF Serving omits the name
            predictions = next(iter(outputs.values()))
        else:
            predictions = [dict(zip(outputs, row)) for row in zip(*outputs.values())]
        reply = json.dumps({"predictions": predictions}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def test_client_rest_round_trip(bernoulli_vae, loaded):
    client = load_client()
    server = _FakeRestServer(loaded, "vae")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        eps = random_codes(3, seed=3)
        outputs = client.rest_predict(url, "vae", "generate", {"eps": eps}, version=1)
        np.testing.assert_allclose(outputs["x_mean"],
                                   keras_reference(bernoulli_vae, "generate", eps), atol=ATOL)
        images = random_images(2, seed=4, binary=True)
        outputs = client.rest_predict(url, "vae", "elbo", {"x": images})
        np.testing.assert_allclose(outputs["elbo"], keras_reference(bernoulli_vae, "elbo", images),
                                   rtol=ATOL)
        # The widths come from the served model (generate takes noise_dim, not latent_dim).
        shapes = client.rest_input_shapes(url, "vae", "generate")
        assert shapes == {"eps": [-1, bernoulli_vae.noise_dim]}
        # TF Serving's {"error": ...} body on HTTP 4xx reaches the user.
        with pytest.raises(RuntimeError, match="HTTP 404.*Servable not found"):
            client.rest_predict(url, "gan", "generate", {"eps": eps})
        assert client.main(["--rest", url, "--model", "vae", "--signature", "generate",
                            "--batch-size", "2"]) == 0
    finally:
        server.shutdown()
        server.server_close()


def test_client_grpc_round_trip(bernoulli_vae, loaded):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        """TF Serving's PredictionService.Predict over a loaded SavedModel."""

        def Predict(self, request, context):
            if request.model_spec.name != "vae":
                context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model_spec.name}")
            signature = request.model_spec.signature_name or "serving_default"
            inputs = {name: tf.constant(tf.make_ndarray(proto))
                      for name, proto in request.inputs.items()}
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(request.model_spec)
            for name, value in loaded.signatures[signature](**inputs).items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    client = load_client()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        codes = random_codes(4, seed=5)
        request = client.build_predict_request("vae", "decode", {"z": codes})
        outputs = client.grpc_predict(f"127.0.0.1:{port}", request, timeout=60)
        assert list(outputs) == ["x_mean"]
        np.testing.assert_allclose(outputs["x_mean"],
                                   keras_reference(bernoulli_vae, "decode", codes), atol=ATOL)
        with pytest.raises(grpc.RpcError):
            client.grpc_predict(f"127.0.0.1:{port}",
                                client.build_predict_request("gan", "decode", {"z": codes}))
    finally:
        server.stop(grace=None)


def test_client_command_line_arguments():
    client = load_client()
    args = client.parse_args(["--rest", "http://localhost:8501", "--signature", "generate",
                              "--latent-dim", "4", "--batch-size", "2"])
    inputs = client.example_inputs(args.signature, args.batch_size, args.latent_dim)
    assert inputs["eps"].shape == (2, 4) and inputs["eps"].dtype == np.float32
    with pytest.raises(SystemExit):
        client.parse_args(["--signature", "generate"])  # a transport is required
    with pytest.raises(SystemExit):
        client.example_inputs("reconstruct", 2, 4)  # images must be given


# saved_model_cli (started in the background by test_tf_serving_layout) -------------------------

def test_saved_model_cli_show_lists_named_signatures(cli_results):
    returncode, stdout, stderr = cli_results["show"]
    assert returncode == 0, stderr[-2000:]
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?)(?=\nsignature_def\[|\Z)",
                             stdout, re.S))
    expected = {"encode": ("x", "z"), "decode": ("z", "x_mean"), "reconstruct": ("x", "x_mean"),
                "generate": ("eps", "x_mean"), "elbo": ("x", "elbo"),
                "serving_default": ("x", "x_mean")}
    assert set(expected) <= set(blocks), sorted(blocks)
    assert set(SIGNATURES) | {"serving_default"} == set(expected)
    for name, (input_name, output_name) in expected.items():
        block = blocks[name]
        assert f"inputs['{input_name}']" in block, (name, block)
        assert f"outputs['{output_name}']" in block, (name, block)
        assert block.count("inputs['") == 1 and block.count("outputs['") == 1, (name, block)
        assert "DT_FLOAT" in block and "Method name is: tensorflow/serving/predict" in block
    assert "shape: (-1, 28, 28, 1)" in blocks["encode"] and "shape: (-1, 4)" in blocks["encode"]
    assert "shape: (-1)" in blocks["elbo"]


def test_saved_model_cli_run_decode(bernoulli_vae, cli_results):
    returncode, stdout, stderr = cli_results["run"]
    assert returncode == 0, stderr[-2000:]
    x_mean = np.load(cli_results["outdir"] / "x_mean.npy")
    assert x_mean.shape == (2,) + IMAGE_SHAPE
    np.testing.assert_allclose(x_mean, keras_reference(bernoulli_vae, "decode",
                                                       cli_results["codes"]), atol=ATOL)
