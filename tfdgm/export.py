"""Export of trained models: SavedModels for TF Serving and TFLite files for devices.

A model leaves the library through the signatures its family declares (`model.signatures()`,
`tfdgm.models.base.Signature`): deterministic maps with named inputs and named outputs (a dict,
so the names do not depend on the tracing order). `model.serving_default` names the signature TF
Serving calls when a request names none, and `model.tflite_signatures` those that go to TFLite.
A VAE, for instance, exports

    signature      input                       output
    encode         x   [B, H, W, C] float32    z      [B, D]        the posterior's code
    decode         z   [B, D]       float32    x_mean [B, H, W, C]  the mean of p(x | z)
    reconstruct    x   [B, H, W, C] float32    x_mean [B, H, W, C]  decode(encode(x))
    generate       eps [B, P]       float32    x_mean [B, H, W, C]  decode(prior.generate(eps))
    elbo           x   [B, H, W, C] float32    elbo   [B]           single-sample ELBO, fixed seed
    serving_default = reconstruct;  TFLite: generate, decode

Signatures that sample take their noise as an input instead of drawing it: the served graph is
then a pure function (a request is reproducible) and the TFLite graph needs no random op.

The SavedModel is written with `keras.export.ExportArchive`, never with a hand-written
`tf.Module`: wrapping a Keras 3 model in a `tf.Module` gives a SavedModel that TF Serving's loader
rejects ("Could not find variable") and a TFLite file without weights whose outputs are NaN with
no error. The layout is TF Serving's, `<export_base>/<model_name>/<version>/saved_model.pb` and
`variables/`; the version directory is written under a temporary name and renamed into place, so a
model server polling `<export_base>/<model_name>` never loads half a model. After writing, the
SavedModel is loaded back and every signature is compared with the Keras model
(`verify_saved_model`).

The TFLite file holds the `tflite_signatures`, converted with the TFLite builtin op set alone
(the Python runtime has no Flex delegate): stateless random ops, Cholesky,
MatrixTriangularSolve, LogMatrixDeterminant and Erfinv have no builtin kernels, which is why the
encoder side of a VAE stays on the server.

TF Serving conventions the export follows:

* Warm-up: each version holds `assets.extra/tf_serving_warmup_requests`, a TFRecord file of
  `tensorflow.serving.PredictionLog`s, one `predict_log` per signature (`serving_default`
  included) on a small batch of valid inputs (`Signature.example_inputs`). The server replays
  them while loading the version, so the first client request does not pay for graph
  initialization. They are written inside the staging directory, before the rename, and replayed
  against the loaded SavedModel by `verify_saved_model`.
* Versions: `version="auto"` is the next free version (`next_version`: one above the highest
  numeric folder, or TFLite file, of the model; 1 if none).
* TFLite files are versioned like the SavedModel, beside the model's folder:
  `<export_base>/<model_name>-<version>.tflite` (`tflite_path`; outside `<model_name>/`, so the
  model server polling that folder sees version folders only). An existing file is replaced only
  with `overwrite=True`.
* `<export_base>/models.config` (`write_models_config`) is a text-format
  `tensorflow.serving.ModelServerConfig` listing every model folder of the export base, with
  `base_path: "/models/<model_name>"`: the path inside the serving container, where
  `<export_base>` is mounted at `/models`. Entries a user added or edited are kept.

`export_model` does all of it (the `python -m tfdgm export` command) and `serving_instructions`
says how to serve the result.
"""

import dataclasses
import json
import os
import re
import shlex
import shutil
import tempfile
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfdgm.errors import TfdgmError

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
"""Where TF Serving looks for warm-up requests inside a SavedModel version folder."""

MODELS_CONFIG = "models.config"
"""The model server configuration written at the top of an export base."""

MOUNT = "/models"
"""Where the serving container sees the export base (`docker run --mount ...,target=/models`)."""


class ExportError(TfdgmError):
    """An export could not be written, or what was written does not reproduce the model."""


# Signatures --------------------------------------------------------------------------------------

def _signatures(model):
    if not model.built:
        model.build()
    return model.signatures()


def build_export_archive(model, names=None, serving_default="default"):
    """A `keras.export.ExportArchive` tracking `model` with an endpoint per signature.

    Args:
      model: a built (or buildable) `tfdgm.models.base.GenerativeModel`.
      names: signature names out of `model.signatures()`; None: all of them.
      serving_default: the signature also registered as `serving_default`; `"default"`: the
        model's `serving_default`; None: none.

    Returns:
      The archive, ready for `write_out`.
    """
    signatures = _signatures(model)
    names = list(signatures) if names is None else list(names)
    unknown = [name for name in names if name not in signatures]
    if unknown:
        raise ExportError(f"unknown signatures {unknown}; '{model.name}' has "
                          f"{', '.join(signatures)}.")
    if serving_default == "default":
        serving_default = model.serving_default
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name in names:
        archive.add_endpoint(name=name, fn=signatures[name].fn,
                             input_signature=list(signatures[name].inputs))
    if serving_default is not None:
        if serving_default not in names:
            raise ExportError(f"serving_default '{serving_default}' is not among the exported "
                              f"signatures {names}.")
        archive.add_endpoint(name="serving_default", fn=signatures[serving_default].fn,
                             input_signature=list(signatures[serving_default].inputs))
    return archive


def _compare(where, name, got, want, atol):
    """Raises `ExportError` unless the output dicts `got` and `want` agree within `atol`."""
    for key, reference in want.items():
        reference = np.asarray(reference)
        value = np.asarray(got[key]) if key in got else None
        if value is None or value.shape != reference.shape or not np.all(np.isfinite(value)):
            raise ExportError(f"{where}: signature '{name}' output '{key}' is missing, non-finite "
                              f"or not of shape {reference.shape}.")
        error = float(np.max(np.abs(value - reference))) if value.size else 0.0
        if error > atol:
            raise ExportError(f"{where}: signature '{name}' output '{key}' differs from the "
                              f"Keras model by {error:.3g} (> {atol}).")


def _keras_outputs(signature, inputs):
    return {key: np.asarray(value) for key, value in
            signature.fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def verify_saved_model(model, path: str, batch_size: int = 3, atol: float = 1e-5, seed: int = 0):
    """Loads the SavedModel at `path` and checks every signature against `model` on valid
    example inputs (`Signature.example_inputs`); if the version holds warm-up requests, replays
    them (`replay_warmup_requests`) and checks that they cover every signature. Raises
    `ExportError` on a mismatch."""
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(seed)
    for name, signature in _signatures(model).items():
        if name not in loaded.signatures:
            raise ExportError(f"{path} lacks the signature '{name}'.")
        inputs = signature.example_inputs(rng, batch_size)
        got = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        _compare(path, name, got, _keras_outputs(signature, inputs), atol)
    if os.path.exists(os.path.join(path, WARMUP_FILE)):
        replayed = replay_warmup_requests(loaded, path)
        missing = sorted(set(loaded.signatures) - set(replayed))
        if missing:
            raise ExportError(f"{os.path.join(path, WARMUP_FILE)} has no request for {missing}.")


# Warm-up requests --------------------------------------------------------------------------------

def _serving_apis():
    """`(predict_pb2, prediction_log_pb2, model_server_config_pb2)` of tensorflow-serving-api."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as error:
        raise ExportError("TF Serving's warm-up requests and models.config are written with the "
                          "tensorflow-serving-api package: pip install "
                          "'tensorflow-serving-api==2.*' (`make install` does).") from error
    return predict_pb2, prediction_log_pb2, model_server_config_pb2


def warmup_requests(model, model_name: str, batch_size: int = 2, seed: int = 0) -> list:
    """TF Serving warm-up requests: a `tensorflow.serving.PredictionLog` per signature.

    Each holds a `predict_log.request` naming `model_name` and the signature (`serving_default`
    included: the server prepares each signature's graph separately) with `batch_size` valid
    inputs from `Signature.example_inputs`, as `TensorProto`s of shape `[batch_size, ...]`.
    """
    predict_pb2, prediction_log_pb2, _ = _serving_apis()
    signatures = _signatures(model)
    names = list(signatures) + (["serving_default"] if model.serving_default else [])
    rng = np.random.default_rng(seed)
    logs = []
    for name in names:
        signature = signatures[model.serving_default if name == "serving_default" else name]
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = name
        for key, value in signature.example_inputs(rng, batch_size).items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(model, version_dir: str, model_name: str, batch_size: int = 2,
                          seed: int = 0) -> str:
    """Writes `warmup_requests(...)` as the TFRecord file `<version_dir>/assets.extra/
    tf_serving_warmup_requests`, which TF Serving replays when it loads the version."""
    path = os.path.join(version_dir, WARMUP_FILE)
    logs = warmup_requests(model, model_name, batch_size, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir: str) -> list:
    """The `PredictionLog`s of a version's warm-up file, in the order they were written."""
    _, prediction_log_pb2, _ = _serving_apis()
    path = os.path.join(version_dir, WARMUP_FILE)
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(path)]


def replay_warmup_requests(loaded, version_dir: str) -> list:
    """Runs each warm-up request of `version_dir` on `loaded` (its `tf.saved_model.load`) as the
    server would, and raises `ExportError` unless every output is finite with the request's
    batch size. Returns the signature names replayed."""
    names = []
    for log in read_warmup_requests(version_dir):
        request = log.predict_log.request
        name = request.model_spec.signature_name or "serving_default"
        if name not in loaded.signatures:
            raise ExportError(f"warm-up request for the unknown signature '{name}' in "
                              f"{version_dir}.")
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        batches = {value.shape[0] if value.ndim else None for value in inputs.values()}
        if len(batches) != 1 or None in batches:
            raise ExportError(f"warm-up request '{name}' of {version_dir}: its inputs need one "
                              f"common batch axis, got {sorted(batches, key=str)}.")
        (batch,) = batches
        outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        for key, value in outputs.items():
            value = np.asarray(value)
            if value.shape[:1] != (batch,) or not np.all(np.isfinite(value)):
                raise ExportError(f"warm-up request '{name}' of {version_dir}: output '{key}' "
                                  f"is non-finite or not of batch {batch}.")
        names.append(name)
    return names


# Versions ----------------------------------------------------------------------------------------

def _existing_versions(export_base: str, model_name: str) -> set:
    """Numeric version folders of `<export_base>/<model_name>` and versions of its TFLite files."""
    versions = set()
    model_dir = os.path.join(export_base, model_name)
    if os.path.isdir(model_dir):
        versions.update(int(entry) for entry in os.listdir(model_dir)
                        if re.fullmatch(r"[0-9]+", entry)
                        and os.path.isdir(os.path.join(model_dir, entry)))
    pattern = re.compile(re.escape(model_name) + r"-([0-9]+)\.tflite")
    if os.path.isdir(export_base):
        versions.update(int(match.group(1)) for match in map(pattern.fullmatch,
                                                             os.listdir(export_base)) if match)
    return versions


def next_version(export_base: str, model_name: str) -> int:
    """The next free version of `model_name`: one above the highest numeric folder of
    `<export_base>/<model_name>` (or `<model_name>-<N>.tflite` file), 1 if there is none."""
    return max(_existing_versions(export_base, model_name), default=0) + 1


def resolve_version(version, export_base: str, model_name: str) -> int:
    """`version` as a positive int: `"auto"` is `next_version`; a string of digits (the command
    line) is read as a number. Raises `ExportError` for anything else."""
    if isinstance(version, str):
        if version == "auto":
            return next_version(export_base, model_name)
        if re.fullmatch(r"[0-9]+", version):
            version = int(version)
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ExportError(f"version must be a positive integer or 'auto' (the next free one); "
                          f"TF Serving reads numeric directory names only. Got {version!r}.")
    return int(version)


def tflite_path(export_base: str, model_name: str, version: int) -> str:
    """`<export_base>/<model_name>-<version>.tflite`, the TFLite file of a version."""
    return os.path.join(export_base, f"{model_name}-{int(version)}.tflite")


def _exists(path):
    return ExportError(f"{path} exists; export a new version (--version auto or N, or config "
                       f"export.version; TF Serving switches to the highest one) or replace it "
                       f"(--overwrite, overwrite=True).")


# SavedModel --------------------------------------------------------------------------------------

def export_saved_model(model, export_base: str, model_name: str, version,
                       overwrite: bool = False, verify: bool = True, warmup: bool = True) -> str:
    """Writes `model` as a SavedModel in TF Serving's layout.

    Args:
      model: a `tfdgm.models.base.GenerativeModel`.
      export_base: the directory that holds one folder per model (TF Serving's `--model_base_path`
        is `<export_base>/<model_name>`).
      model_name: the served model's name (the `name` in `models.config`, the `<name>` in
        `/v1/models/<name>:predict`).
      version: a positive integer (TF Serving serves the highest version present by default), or
        `"auto"`: `next_version(export_base, model_name)`.
      overwrite: replace an existing version directory (by default that is an error: a model
        server may be serving it).
      verify: load the written SavedModel back, compare every signature with `model` and replay
        the warm-up requests.
      warmup: write TF Serving warm-up requests (`write_warmup_requests`) into the version.

    Returns:
      The path `<export_base>/<model_name>/<version>`, holding `saved_model.pb`, `variables/`,
      `assets.extra/tf_serving_warmup_requests` and the model's signatures plus
      `serving_default`.

    Example:

    ```python
    path = export_saved_model(model, "export", "quickstart", "auto")  # export/quickstart/<N>
    write_models_config("export")                                     # export/models.config
    ```
    """
    if isinstance(version, str) and version != "auto":
        raise ExportError(f"version must be a positive integer or 'auto', got the string "
                          f"{version!r}.")
    if not model_name or os.sep in model_name or model_name in (".", ".."):
        raise ExportError(f"model_name must be a plain directory name, got {model_name!r}.")
    version = resolve_version(version, export_base, model_name)
    model_dir = os.path.join(export_base, model_name)
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise _exists(target)
    os.makedirs(model_dir, exist_ok=True)
    archive = build_export_archive(model)
    # A non-numeric name is invisible to TF Serving's version polling until the rename.
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir)
    try:
        archive.write_out(staging, verbose=False)
        if warmup:
            write_warmup_requests(model, staging, model_name)
        if verify:
            verify_saved_model(model, staging)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# TFLite ------------------------------------------------------------------------------------------

def load_tflite_interpreter(path: str, num_threads: int = 1):
    """A LiteRT interpreter for the file at `path` (`ai_edge_litert`; `tf.lite` if absent).

    Run a signature with `interpreter.get_signature_runner("generate")(eps=eps)["x_mean"]`.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=path, num_threads=num_threads)


def _tflite_schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # pragma: no cover
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def tflite_summary(path: str) -> dict:
    """What a .tflite file holds, read from its flatbuffer without running it.

    Returns:
      `{"ops": sorted op names (builtin names, custom ops as "CUSTOM:<name>"),
        "constant_bytes": bytes of constant buffers (the weights), "signatures": names,
        "file_bytes": size of the file}`.
    """
    schema = _tflite_schema()
    with open(path, "rb") as file:
        buffer = file.read()
    flat = schema.ModelT.InitFromPackedBuf(bytearray(buffer), 0)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items()
             if not key.startswith("_")}
    ops = set()
    for code in flat.operatorCodes or []:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode
            ops.add(f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}")
        else:
            ops.add(names.get(builtin, str(builtin)))
    constant_bytes = 0
    for buf in flat.buffers or []:
        if buf.data is not None:
            constant_bytes += len(buf.data)
        elif buf.offset > 1:  # stored after the flatbuffer (models over 2 GB)
            constant_bytes += buf.size
    signatures = []
    for signature in flat.signatureDefs or []:
        key = signature.signatureKey
        signatures.append(key.decode() if isinstance(key, bytes) else key)
    return {"ops": sorted(ops), "constant_bytes": constant_bytes,
            "signatures": sorted(signatures), "file_bytes": len(buffer)}


def _kernel_bytes(layer):
    """Bytes of the layer's weight matrices and convolution kernels (rank >= 2). Biases are left
    out: the converter may fold or share all-zero ones, as in a freshly initialized model."""
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
               for v in layer.weights if len(v.shape) >= 2)


def verify_tflite(model, path: str, batch_size: int = 3, atol: float = 1e-4, seed: int = 0):
    """Checks that the .tflite at `path` carries the model's weights and reproduces it.

    The weights: the file's constant buffers must hold at least the kernel bytes of the
    signatures' `weight_layers`. The outputs: every signature of `model.tflite_signatures` on
    valid example inputs must be finite and within `atol` of the Keras model. Raises
    `ExportError` otherwise (a TFLite file converted without its variables runs without error
    and returns NaN).
    """
    summary = tflite_summary(path)
    signatures = _signatures(model)
    layers = {id(layer): layer for name in model.tflite_signatures
              for layer in signatures[name].weight_layers}
    needed = sum(_kernel_bytes(layer) for layer in layers.values())
    if summary["constant_bytes"] < needed:
        raise ExportError(f"{path} holds {summary['constant_bytes']} bytes of constants but the "
                          f"exported layers have {needed} bytes of kernels: the weights were "
                          f"not converted.")
    interpreter = load_tflite_interpreter(path)
    rng = np.random.default_rng(seed)
    for name in model.tflite_signatures:
        inputs = signatures[name].example_inputs(rng, batch_size)
        got = interpreter.get_signature_runner(name)(**inputs)
        _compare(path, name, got, _keras_outputs(signatures[name], inputs), atol)


def export_tflite(model, path: str, verify: bool = True, overwrite: bool = False) -> str:
    """Writes the `model.tflite_signatures` of `model` as a TFLite file.

    The model is exported to a temporary SavedModel with just those endpoints (through
    `keras.export.ExportArchive`) and converted with `TFLITE_BUILTINS` only, so the file runs on
    the plain LiteRT runtime.

    Args:
      model: a `tfdgm.models.base.GenerativeModel` with `tflite_signatures`.
      path: the .tflite file to write (parent directories are created).
      verify: check the written file with `verify_tflite` (weights present, outputs match).
      overwrite: replace an existing file (by default that is an error: a device build may ship
        it; `tflite_path` names a new file per version).

    Returns:
      `path`.
    """
    names = list(model.tflite_signatures)
    if not names:
        raise ExportError(f"model '{model.name}' declares no TFLite signatures; set "
                          f"export.tflite=false.")
    if os.path.exists(path) and not overwrite:
        raise _exists(path)
    archive = build_export_archive(model, names, serving_default=None)
    with tempfile.TemporaryDirectory(prefix="tfdgm-tflite-") as saved_model_dir:
        archive.write_out(saved_model_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                             signature_keys=names)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            flatbuffer = converter.convert()
        except Exception as error:  # the converter raises ConverterError and others
            raise ExportError(f"TFLite conversion of {names} with builtin ops failed (the graph "
                              f"uses an op without a TFLite builtin kernel): {error}") from error
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".tmp.{os.path.basename(path)}")
    try:
        with open(staging, "wb") as file:
            file.write(flatbuffer)
        if verify:
            verify_tflite(model, staging)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


# models.config -----------------------------------------------------------------------------------

_MODELS_CONFIG_HEADER = """\
# TF Serving model configuration (text-format tensorflow.serving.ModelServerConfig), written by
# tfdgm.export.write_models_config (`make export`): one `config` per model folder of this export
# base. When it is rewritten, entries (and edits to them) are kept; comments are not.
#
# base_path is the model's folder inside the serving container, where this export base is
# mounted at {mount}, WITHOUT the version: the server serves the highest numeric version folder
# it finds (model_version_policy latest {{num_versions: 1}} unless an entry says otherwise).
#
#   docker run --rm -p 8500:8500 -p 8501:8501 \\
#       --mount type=bind,source=/absolute/path/of/this/folder,target={mount} \\
#       tensorflow/serving:latest --model_config_file={mount}/{file}
"""


def exported_models(export_base: str) -> list:
    """Sorted names of the model folders of `export_base`: those holding a numeric version
    folder with a `saved_model.pb`."""
    if not os.path.isdir(export_base):
        return []
    names = []
    for name in sorted(os.listdir(export_base)):
        model_dir = os.path.join(export_base, name)
        if name.startswith(".") or not os.path.isdir(model_dir):
            continue
        if any(re.fullmatch(r"[0-9]+", version)
               and os.path.isfile(os.path.join(model_dir, version, "saved_model.pb"))
               for version in os.listdir(model_dir)):
            names.append(name)
    return names


def write_models_config(export_base: str, mount: str = MOUNT) -> str:
    """Writes (or brings up to date) `<export_base>/models.config` for TF Serving.

    Every model folder of `export_base` (`exported_models`) gets an entry `config { name:
    "<name>", base_path: "<mount>/<name>", model_platform: "tensorflow" }`; `<mount>` is where
    the serving container sees `export_base`. Entries already in the file are kept as they are
    (a version policy a user set survives), except the ones pointing at `<mount>/<name>` whose
    folder is gone. The file is replaced atomically: the server may be polling it
    (`--model_config_file_poll_wait_seconds`).

    Returns:
      The path of the file.

    Example:

    ```python
    write_models_config("export")  # export/models.config, one entry per export/<name>/<N>/
    ```
    """
    from google.protobuf import text_format

    _, _, model_server_config_pb2 = _serving_apis()
    path = os.path.join(export_base, MODELS_CONFIG)
    present = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(path):
        try:
            with open(path) as file:
                text_format.Parse(file.read(), present)
        except text_format.ParseError as error:
            raise ExportError(f"{path} is not a text-format ModelServerConfig ({error}); fix it "
                              f"or delete it and export again.") from error
        if present.HasField("custom_model_config"):
            raise ExportError(f"{path} holds a custom_model_config; tfdgm writes a "
                              f"model_config_list: move it aside and export again.")
    names = exported_models(export_base)
    mount = mount.rstrip("/")
    config = model_server_config_pb2.ModelServerConfig()
    entries = config.model_config_list.config
    for entry in present.model_config_list.config:
        if entry.base_path != f"{mount}/{entry.name}" or entry.name in names:
            entries.add().CopyFrom(entry)
    known = {entry.name for entry in entries}
    for name in names:
        if name not in known:
            entries.add(name=name, base_path=f"{mount}/{name}", model_platform="tensorflow")
    text = (_MODELS_CONFIG_HEADER.format(mount=mount, file=MODELS_CONFIG)
            + text_format.MessageToString(config))
    os.makedirs(export_base, exist_ok=True)
    staging = os.path.join(export_base, f".tmp.{MODELS_CONFIG}")
    with open(staging, "w") as file:
        file.write(text)
    os.replace(staging, path)
    return path


# The whole export ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Exported:
    """What `export_model` wrote: the version and the paths of its files.

    Example:

    ```python
    exported = export_model(model, "export", "quickstart", version="auto")
    exported.saved_model  # "export/quickstart/<version>"
    exported.tflite       # "export/quickstart-<version>.tflite", or None
    ```
    """
    model_name: str
    version: int
    saved_model: str
    tflite: Optional[str]
    models_config: str


def export_model(model, export_base: str, model_name: str, version="auto", tflite: bool = True,
                 overwrite: bool = False, verify: bool = True) -> Exported:
    """A model's whole export: SavedModel with warm-up requests, TFLite, `models.config`.

    Writes `<export_base>/<model_name>/<version>/` (`export_saved_model`), the
    `tflite_signatures` to `<export_base>/<model_name>-<version>.tflite` (`tflite_path`; skipped
    when `tflite` is false or the model declares none), and brings `<export_base>/models.config`
    up to date (`write_models_config`). Both targets are checked before anything is written: an
    existing version of either is an `ExportError` unless `overwrite`.

    Args:
      model: a `tfdgm.models.base.GenerativeModel`.
      export_base: the folder mounted at `/models` in the serving container.
      model_name: the served model's name.
      version: a positive integer, or `"auto"` (`next_version`).
      tflite: also write the TFLite file.
      overwrite: replace an existing version.
      verify: check the SavedModel, its warm-up requests and the TFLite file against `model`.

    Example:

    ```python
    exported = export_model(model, "export", "quickstart")  # the next free version
    print(serving_instructions(model, exported, "export"))
    ```
    """
    if not model_name or os.sep in model_name or model_name in (".", ".."):
        raise ExportError(f"model_name must be a plain directory name, got {model_name!r}.")
    version = resolve_version(version, export_base, model_name)
    tflite_file = tflite_path(export_base, model_name, version) if (
        tflite and model.tflite_signatures) else None
    saved_model = os.path.join(export_base, model_name, str(version))
    for target in (saved_model, tflite_file):
        if target is not None and os.path.exists(target) and not overwrite:
            raise _exists(target)
    saved_model = export_saved_model(model, export_base, model_name, version,
                                     overwrite=overwrite, verify=verify)
    if tflite_file is not None:
        export_tflite(model, tflite_file, verify=verify, overwrite=overwrite)
    return Exported(model_name, version, saved_model, tflite_file,
                    write_models_config(export_base))


# Serving instructions ----------------------------------------------------------------------------

def describe_signatures(version_dir: str) -> dict:
    """The signatures a SavedModel version serves, read from its `saved_model.pb` (what TF
    Serving's metadata API reports): `{name: {"inputs": {key: (dtype, shape)}, "outputs":
    {...}}}`, shapes as tuples with -1 for a free axis (None for an unknown rank)."""
    from tensorflow.core.protobuf import saved_model_pb2

    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as file:
        saved_model = saved_model_pb2.SavedModel.FromString(file.read())
    (meta_graph,) = [graph for graph in saved_model.meta_graphs
                     if "serve" in graph.meta_info_def.tags]

    def tensors(infos):
        return {key: (tf.as_dtype(info.dtype).name,
                      None if info.tensor_shape.unknown_rank
                      else tuple(dim.size for dim in info.tensor_shape.dim))
                for key, info in sorted(infos.items())}

    return {name: {"inputs": tensors(signature.inputs), "outputs": tensors(signature.outputs)}
            for name, signature in sorted(meta_graph.signature_def.items())
            if not name.startswith("__")}


def _shape_text(shape):
    if shape is None:
        return "[...]"
    sizes = ["B" if axis == 0 and size == -1 else "?" if size == -1 else str(size)
             for axis, size in enumerate(shape)]
    return f"[{', '.join(sizes)}]"


def _tensors_text(tensors):
    return ", ".join(f"{key} {dtype} {_shape_text(shape)}"
                     for key, (dtype, shape) in tensors.items())


def _request_signature(model, signatures, most_values=64):
    """The signature the example request calls: `serving_default` if its input is small, else
    the first small one of the TFLite signatures and then the others (smallest if none is)."""
    def values(name):
        return sum(int(np.prod(spec.shape[1:])) for spec in signatures[name].inputs)

    order = list(dict.fromkeys([model.serving_default, *model.tflite_signatures, *signatures]))
    order = [name for name in order if name in signatures]
    small = [name for name in order if values(name) <= most_values]
    return small[0] if small else min(order, key=values)


def serving_instructions(model, exported: Exported, export_base: str, mount: str = MOUNT,
                         rest_port: int = 8501, grpc_port: int = 8500) -> str:
    """What `export_model` wrote, the signatures served and how to serve and query them.

    The text lists every signature of the version (`describe_signatures`: inputs with shapes ->
    outputs), a `docker run` line for `tensorflow/serving` with `export_base` mounted at `mount`
    and `--model_config_file`, and a `curl` line calling the model over REST with one valid
    example input (`serving_default`, or a signature with a small input such as a generator's
    noise: `_request_signature`).
    """
    signatures = _signatures(model)
    lines = [f"SavedModel (TF Serving layout, checked against Keras, warm-up requests "
             f"replayed): {exported.saved_model}"]
    if exported.tflite:
        lines.append(f"TFLite ({', '.join(model.tflite_signatures)}): {exported.tflite}")
    lines += [f"TF Serving config (models {', '.join(exported_models(export_base))}): "
              f"{exported.models_config}", "",
              f"Signatures of '{exported.model_name}' version {exported.version}:"]
    described = describe_signatures(exported.saved_model)
    width = max(map(len, described))
    for name, tensors in described.items():
        lines.append(f"  {name:<{width}}  {_tensors_text(tensors['inputs'])}  ->  "
                     f"{_tensors_text(tensors['outputs'])}")
    name = _request_signature(model, signatures)
    inputs = signatures[name].example_inputs(np.random.default_rng(0), 1)
    request_name = "serving_default" if name == model.serving_default else name
    body = json.dumps({"signature_name": request_name,
                       "instances": [{key: np.round(value[0].astype(np.float64), 3).tolist()
                                      for key, value in inputs.items()}]})
    source = os.path.abspath(export_base)
    lines += ["", "Serve every model of the export base (models.config lists them):",
              f"  docker run --rm -p {grpc_port}:8500 -p {rest_port}:8501 "
              f"--mount type=bind,source={shlex.quote(source)},target={mount} "
              f"tensorflow/serving:latest --model_config_file={mount}/{MODELS_CONFIG}",
              f"Request '{request_name}' over REST:",
              f"  curl -s -X POST http://localhost:{rest_port}/v1/models/{exported.model_name}"
              f":predict -d '{body}'"]
    return "\n".join(lines)


__all__ = ["Exported", "ExportError", "build_export_archive", "describe_signatures",
           "export_model", "export_saved_model", "export_tflite", "exported_models",
           "load_tflite_interpreter", "next_version", "read_warmup_requests",
           "replay_warmup_requests", "resolve_version", "serving_instructions", "tflite_path",
           "tflite_summary", "verify_saved_model", "verify_tflite", "warmup_requests",
           "write_models_config", "write_warmup_requests"]
