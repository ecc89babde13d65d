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
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfdgm.errors import TfdgmError

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
    example inputs (`Signature.example_inputs`); raises `ExportError` on a mismatch."""
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(seed)
    for name, signature in _signatures(model).items():
        if name not in loaded.signatures:
            raise ExportError(f"{path} lacks the signature '{name}'.")
        inputs = signature.example_inputs(rng, batch_size)
        got = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        _compare(path, name, got, _keras_outputs(signature, inputs), atol)


# SavedModel --------------------------------------------------------------------------------------

def export_saved_model(model, export_base: str, model_name: str, version: int,
                       overwrite: bool = False, verify: bool = True) -> str:
    """Writes `model` as a SavedModel in TF Serving's layout.

    Args:
      model: a `tfdgm.models.base.GenerativeModel`.
      export_base: the directory that holds one folder per model (TF Serving's `--model_base_path`
        is `<export_base>/<model_name>`).
      model_name: the served model's name (the `name` in `models.config`, the `<name>` in
        `/v1/models/<name>:predict`).
      version: a positive integer; TF Serving serves the highest version present by default.
      overwrite: replace an existing version directory (by default that is an error: a model
        server may be serving it).

      verify: load the written SavedModel back and compare every signature with `model`.

    Returns:
      The path `<export_base>/<model_name>/<version>`, holding `saved_model.pb`, `variables/` and
      the model's signatures plus `serving_default`.
    """
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ExportError(f"version must be a positive integer (TF Serving reads numeric "
                          f"directory names only), got {version!r}.")
    if not model_name or os.sep in model_name or model_name in (".", ".."):
        raise ExportError(f"model_name must be a plain directory name, got {model_name!r}.")
    model_dir = os.path.join(export_base, model_name)
    target = os.path.join(model_dir, str(int(version)))
    if os.path.exists(target) and not overwrite:
        raise ExportError(f"{target} exists; export a new version number (--version N or "
                          f"config export.version; TF Serving switches to the highest one) or "
                          f"replace it (--overwrite, overwrite=True).")
    os.makedirs(model_dir, exist_ok=True)
    archive = build_export_archive(model)
    # A non-numeric name is invisible to TF Serving's version polling until the rename.
    staging = tempfile.mkdtemp(prefix=f".tmp-{int(version)}-", dir=model_dir)
    try:
        archive.write_out(staging, verbose=False)
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


def export_tflite(model, path: str, verify: bool = True) -> str:
    """Writes the `model.tflite_signatures` of `model` as a TFLite file.

    The model is exported to a temporary SavedModel with just those endpoints (through
    `keras.export.ExportArchive`) and converted with `TFLITE_BUILTINS` only, so the file runs on
    the plain LiteRT runtime.

    Args:
      model: a `tfdgm.models.base.GenerativeModel` with `tflite_signatures`.
      path: the .tflite file to write (parent directories are created).
      verify: check the written file with `verify_tflite` (weights present, outputs match).

    Returns:
      `path`.
    """
    names = list(model.tflite_signatures)
    if not names:
        raise ExportError(f"model '{model.name}' declares no TFLite signatures; set "
                          f"export.tflite=false.")
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


__all__ = ["ExportError", "build_export_archive", "export_saved_model", "export_tflite",
           "load_tflite_interpreter", "tflite_summary", "verify_saved_model", "verify_tflite"]
