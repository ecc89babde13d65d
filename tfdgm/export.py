"""Export of trained models: SavedModels for TF Serving and TFLite files for devices.

A VAE leaves the library through five signatures, each a deterministic map with named inputs and
named outputs (a dict, so the names do not depend on the tracing order):

    signature      input                       output
    encode         x   [B, H, W, C] float32    z      [B, D]        the posterior's code
    decode         z   [B, D]       float32    x_mean [B, H, W, C]  the mean of p(x | z)
    reconstruct    x   [B, H, W, C] float32    x_mean [B, H, W, C]  decode(encode(x))
    generate       eps [B, D]       float32    x_mean [B, H, W, C]  decode(prior.generate(eps))
    elbo           x   [B, H, W, C] float32    elbo   [B]           single-sample ELBO, fixed seed
    serving_default = reconstruct

`generate` takes its standard-normal noise as an input instead of drawing it: the served graph is
then a pure function (a request is reproducible) and the TFLite graph needs no random op. `elbo`
uses the model's fixed stateless seed, so it equals `model.elbo(x)` exactly.

The SavedModel is written with `keras.export.ExportArchive`, never with a hand-written
`tf.Module`: wrapping a Keras 3 model in a `tf.Module` gives a SavedModel that TF Serving's loader
rejects ("Could not find variable") and a TFLite file without weights whose outputs are NaN with
no error. The layout is TF Serving's, `<export_base>/<model_name>/<version>/saved_model.pb` and
`variables/`; the version directory is written under a temporary name and renamed into place, so a
model server polling `<export_base>/<model_name>` never loads half a model.

The TFLite file holds only the generator signatures (`generate`, `decode`), converted with the
TFLite builtin op set alone (the Python runtime has no Flex delegate). The encoder side cannot go
there in general: stateless random ops (the ELBO's noise), Cholesky, MatrixTriangularSolve,
LogMatrixDeterminant and Erfinv have no builtin kernels.
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfdgm.errors import TfdgmError

SIGNATURES = ("encode", "decode", "reconstruct", "generate", "elbo")
"""The signatures of an exported VAE; `serving_default` is an alias of `SERVING_DEFAULT`."""

SERVING_DEFAULT = "reconstruct"
"""The signature TF Serving calls when a request names none."""

GENERATOR_SIGNATURES = ("generate", "decode")
"""The signatures converted to TFLite: they take their noise (or code) as input."""

OUTPUT_NAMES = {"encode": "z", "decode": "x_mean", "reconstruct": "x_mean",
                "generate": "x_mean", "elbo": "elbo"}
"""The single named output of each signature."""


class ExportError(TfdgmError):
    """An export could not be written, or what was written does not reproduce the model."""


# Signatures --------------------------------------------------------------------------------------

def _ensure_built(model):
    if not model.built:
        model.build()


def signature_functions(model):
    """The export endpoints of `model`: `{name: (fn, input_signature)}` for every name in
    `SIGNATURES`.

    Each `fn` takes one tensor, named as its input (`x`, `z` or `eps`), and returns a dict with
    one tensor named as in `OUTPUT_NAMES`. Shapes come from `model.image_shape` `(H, W, C)` and
    `model.latent_dim` `D`; the batch axis is left free.
    """
    image = tf.TensorSpec([None, *model.image_shape], tf.float32, name="x")
    code = tf.TensorSpec([None, model.latent_dim], tf.float32, name="z")
    noise = tf.TensorSpec([None, model.noise_dim], tf.float32, name="eps")

    # The Python argument names are the signature's input names: keep them equal to the specs'.
    def encode(x):
        return {"z": model.encode(x)}

    def decode(z):
        return {"x_mean": model.decode(z)}

    def reconstruct(x):
        return {"x_mean": model.reconstruct(x)}

    def generate(eps):
        return {"x_mean": model.generate(eps)}

    def elbo(x):
        return {"elbo": model.elbo(x)}

    return {"encode": (encode, [image]), "decode": (decode, [code]),
            "reconstruct": (reconstruct, [image]), "generate": (generate, [noise]),
            "elbo": (elbo, [image])}


def build_export_archive(model, signatures=SIGNATURES, serving_default=SERVING_DEFAULT):
    """A `keras.export.ExportArchive` tracking `model` with an endpoint per signature.

    Args:
      model: a built (or buildable) VAE.
      signatures: names out of `SIGNATURES`.
      serving_default: the signature also registered as `serving_default`, or None to leave
        ExportArchive's default (the first endpoint).

    Returns:
      The archive, ready for `write_out`.
    """
    _ensure_built(model)
    functions = signature_functions(model)
    unknown = [name for name in signatures if name not in functions]
    if unknown:
        raise ExportError(f"unknown signatures {unknown}; choose from {', '.join(SIGNATURES)}.")
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name in signatures:
        fn, input_signature = functions[name]
        archive.add_endpoint(name=name, fn=fn, input_signature=input_signature)
    if serving_default is not None:
        if serving_default not in signatures:
            raise ExportError(f"serving_default '{serving_default}' is not among the exported "
                              f"signatures {list(signatures)}.")
        fn, input_signature = functions[serving_default]
        archive.add_endpoint(name="serving_default", fn=fn, input_signature=input_signature)
    return archive


# SavedModel --------------------------------------------------------------------------------------

def export_saved_model(model, export_base: str, model_name: str, version: int,
                       overwrite: bool = False) -> str:
    """Writes `model` as a SavedModel in TF Serving's layout.

    Args:
      model: a VAE (`tfdgm.models.vae.VAE`).
      export_base: the directory that holds one folder per model (TF Serving's `--model_base_path`
        is `<export_base>/<model_name>`).
      model_name: the served model's name (the `name` in `models.config`, the `<name>` in
        `/v1/models/<name>:predict`).
      version: a positive integer; TF Serving serves the highest version present by default.
      overwrite: replace an existing version directory (by default that is an error: a model
        server may be serving it).

    Returns:
      The path `<export_base>/<model_name>/<version>`, holding `saved_model.pb`, `variables/` and
      the signatures of `SIGNATURES` plus `serving_default` (= `reconstruct`).
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
    """Checks that the .tflite at `path` carries the generator's weights and reproduces it.

    The weights: the file's constant buffers must hold at least the decoder's kernel bytes.
    The outputs: `generate` and `decode` on random `[batch_size, D]` inputs must be finite and
    within `atol` of `model.generate` / `model.decode`. Raises `ExportError` otherwise (a TFLite
    file converted without its variables runs without error and returns NaN).
    """
    summary = tflite_summary(path)
    needed = _kernel_bytes(model.decoder)
    if summary["constant_bytes"] < needed:
        raise ExportError(f"{path} holds {summary['constant_bytes']} bytes of constants but the "
                          f"decoder alone has {needed} bytes of kernels: the weights were "
                          f"not converted.")
    interpreter = load_tflite_interpreter(path)
    rng = np.random.default_rng(seed)
    for name, argument, reference, width in (("generate", "eps", model.generate, model.noise_dim),
                                             ("decode", "z", model.decode, model.latent_dim)):
        inputs = rng.standard_normal((batch_size, width)).astype(np.float32)
        got = interpreter.get_signature_runner(name)(**{argument: inputs})["x_mean"]
        want = np.asarray(reference(tf.constant(inputs)))
        if got.shape != want.shape or not np.all(np.isfinite(got)):
            raise ExportError(f"{path}: signature '{name}' returned shape {got.shape} with "
                              f"non-finite values or a shape other than {want.shape}.")
        error = float(np.max(np.abs(got - want)))
        if error > atol:
            raise ExportError(f"{path}: signature '{name}' differs from the Keras model by "
                              f"{error:.3g} (> {atol}).")


def export_tflite(model, path: str, verify: bool = True) -> str:
    """Writes the generator of `model` as a TFLite file with the signatures `generate(eps)` and
    `decode(z)`, each returning `{"x_mean": [B, H, W, C]}`.

    The model is exported to a temporary SavedModel with just those two endpoints (through
    `keras.export.ExportArchive`) and converted with `TFLITE_BUILTINS` only, so the file runs on
    the plain LiteRT runtime. The noise is an input, so no random op enters the graph.

    Args:
      model: a VAE.
      path: the .tflite file to write (parent directories are created).
      verify: check the written file with `verify_tflite` (weights present, outputs match).

    Returns:
      `path`.
    """
    archive = build_export_archive(model, GENERATOR_SIGNATURES, serving_default=None)
    with tempfile.TemporaryDirectory(prefix="tfdgm-tflite-") as saved_model_dir:
        archive.write_out(saved_model_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=list(GENERATOR_SIGNATURES))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            flatbuffer = converter.convert()
        except Exception as error:  # the converter raises ConverterError and others
            raise ExportError(f"TFLite conversion of {list(GENERATOR_SIGNATURES)} with builtin "
                              f"ops failed (the generator path uses an op without a TFLite "
                              f"builtin kernel): {error}") from error
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as file:
        file.write(flatbuffer)
    if verify:
        verify_tflite(model, path)
    return path


__all__ = ["ExportError", "GENERATOR_SIGNATURES", "OUTPUT_NAMES", "SERVING_DEFAULT", "SIGNATURES",
           "build_export_archive", "export_saved_model", "export_tflite", "load_tflite_interpreter",
           "signature_functions", "tflite_summary", "verify_tflite"]
