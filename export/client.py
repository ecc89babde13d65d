"""Example client of a tfdgm VAE served by TensorFlow Serving, over REST or gRPC.

The served model (written by `tfdgm.export.export_saved_model`) has these signatures; each takes
one named float32 tensor and returns one named float32 tensor:

    signature        input                  output
    encode           x   [B, H, W, C]       z      [B, D]
    decode           z   [B, D]             x_mean [B, H, W, C]
    reconstruct      x   [B, H, W, C]       x_mean [B, H, W, C]   (also serving_default)
    generate         eps [B, P] ~ N(0, I)   x_mean [B, H, W, C]   (P: the prior's noise width)
    elbo             x   [B, H, W, C]       elbo   [B]

REST (port 8501; needs only numpy and the standard library):

    POST http://HOST:8501/v1/models/quickstart[/versions/N]:predict
    {"signature_name": "generate", "instances": [{"eps": [0.1, -0.3, ..., 1.2]}, ...]}
    (eps: P numbers per instance; P = 32 for the quickstart)
    -> {"predictions": [...one entry per instance...]}

gRPC (port 8500; needs `tensorflow-serving-api`): `PredictionService.Predict` with a
`PredictRequest` whose `model_spec` names the model and signature and whose `inputs` map the
input name to a `TensorProto`.

Command line (draws `eps ~ N(0, I)` for `generate`, zeros for `decode`, as wide as the served
signature's input, which the REST client reads from the model's metadata; give `--input x.npy`
for the image signatures):

    python export/client.py --rest http://localhost:8501 --model quickstart --signature generate \
        --batch-size 4 --output samples.npy
    python export/client.py --grpc localhost:8500 --model quickstart --signature reconstruct \
        --input images.npy

Not tested against a real model server (it cannot be installed on the development machine); the
request builders are tested offline and both transports against in-process stand-ins that
implement the same REST and gRPC APIs on top of the exported SavedModel (tests/test_export.py).
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

import numpy as np

INPUT_NAMES = {"encode": "x", "decode": "z", "reconstruct": "x", "generate": "eps", "elbo": "x",
               "serving_default": "x"}
"""The input name of each signature of an exported tfdgm VAE."""

OUTPUT_NAMES = {"encode": "z", "decode": "x_mean", "reconstruct": "x_mean",
                "generate": "x_mean", "elbo": "elbo", "serving_default": "x_mean"}
"""The output name of each signature of an exported tfdgm VAE."""


def _as_float32(inputs):
    arrays = {name: np.asarray(value, dtype=np.float32) for name, value in inputs.items()}
    sizes = {array.shape[0] if array.ndim else None for array in arrays.values()}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"every input needs the same leading batch axis, got shapes "
                         f"{ {name: array.shape for name, array in arrays.items()} }.")
    return arrays


# REST --------------------------------------------------------------------------------------------

def predict_url(base_url, model_name, version=None):
    """`<base_url>/v1/models/<model_name>[/versions/<version>]:predict`."""
    version_part = f"/versions/{int(version)}" if version is not None else ""
    return f"{base_url.rstrip('/')}/v1/models/{model_name}{version_part}:predict"


def build_rest_payload(signature_name, inputs):
    """The JSON body of a REST predict request in row ("instances") format.

    Args:
      signature_name: e.g. `"generate"`.
      inputs: `{input_name: array [B, ...]}`, e.g. `{"eps": eps}`.

    Returns:
      `{"signature_name": ..., "instances": [{input_name: row as nested lists}, ...]}` with one
      instance per example; every input must have the same batch size `B`.
    """
    arrays = _as_float32(inputs)
    batch = next(iter(arrays.values())).shape[0]
    instances = [{name: array[i].tolist() for name, array in arrays.items()}
                 for i in range(batch)]
    return {"signature_name": signature_name, "instances": instances}


def build_rest_request(base_url, model_name, signature_name, inputs, version=None):
    """A `urllib.request.Request` POSTing `build_rest_payload(...)` to the predict URL."""
    body = json.dumps(build_rest_payload(signature_name, inputs)).encode("utf-8")
    return urllib.request.Request(predict_url(base_url, model_name, version), data=body,
                                  headers={"Content-Type": "application/json"}, method="POST")


def parse_rest_response(response, signature_name):
    """`{output_name: array [B, ...]}` from a REST predict response.

    In row format TF Serving returns `{"predictions": [one entry per instance]}`; an entry is an
    object `{output_name: value}` when the signature has several outputs and the bare value when
    it has one, in which case the name is taken from `OUTPUT_NAMES`.
    """
    if "error" in response:
        raise RuntimeError(f"model server error: {response['error']}")
    predictions = response["predictions"]
    if predictions and isinstance(predictions[0], dict):
        return {name: np.asarray([row[name] for row in predictions], dtype=np.float32)
                for name in predictions[0]}
    name = OUTPUT_NAMES.get(signature_name, "output")
    return {name: np.asarray(predictions, dtype=np.float32)}


def _open_json(request, timeout):
    """The JSON body of `request`'s reply; TF Serving's `{"error": ...}` body of an HTTP error
    (urllib raises before the body is read) becomes the message of a `RuntimeError`."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(body).get("error", body)
        except (ValueError, AttributeError):
            message = body
        raise RuntimeError(f"model server error (HTTP {error.code}): "
                           f"{message or error.reason}") from None


def rest_predict(base_url, model_name, signature_name, inputs, version=None, timeout=30.0):
    """Calls the REST predict API; returns `{output_name: array}`."""
    request = build_rest_request(base_url, model_name, signature_name, inputs, version)
    return parse_rest_response(_open_json(request, timeout), signature_name)


def metadata_url(base_url, model_name, version=None):
    """`<base>/v1/models/<name>[/versions/<v>]/metadata`: TF Serving's model metadata."""
    return predict_url(base_url, model_name, version).replace(":predict", "/metadata")


def rest_input_shapes(base_url, model_name, signature_name, version=None, timeout=30.0):
    """`{input_name: shape}` of the served signature, read from the model's metadata (TF
    Serving's `signature_def`); a free axis is -1. The widths come from the model itself, so a
    client never guesses them (a VAE's `generate` takes `noise_dim`, not `latent_dim`, noise:
    D + 1 under a VampPrior, 2D + ... for a two-level model)."""
    request = urllib.request.Request(metadata_url(base_url, model_name, version))
    metadata = _open_json(request, timeout)["metadata"]["signature_def"]["signature_def"]
    if signature_name not in metadata:
        raise RuntimeError(f"model '{model_name}' has no signature '{signature_name}'; it has "
                           f"{', '.join(sorted(metadata))}.")
    return {name: [int(dim["size"]) for dim in spec["tensor_shape"]["dim"]]
            for name, spec in metadata[signature_name]["inputs"].items()}


# gRPC --------------------------------------------------------------------------------------------

def build_predict_request(model_name, signature_name, inputs, version=None):
    """A `tensorflow.serving.PredictRequest` for `model_name`'s `signature_name`.

    Args:
      model_name: the served name (`name` in models.config).
      signature_name: e.g. `"generate"`.
      inputs: `{input_name: array [B, ...]}`, sent as float32 `TensorProto`s.
      version: a model version to pin, or None for the one the server serves.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, array in _as_float32(inputs).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=tf.float32))
    return request


def parse_predict_response(response):
    """`{output_name: array}` from a `PredictResponse`."""
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def grpc_predict(target, request, timeout=30.0, channel=None):
    """Sends `request` to the `PredictionService` at `target` (`host:port`); returns
    `{output_name: array}`. Pass `channel` to reuse an open `grpc.Channel`."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    # Images of a few hundred examples exceed gRPC's 4 MB default message size.
    options = [("grpc.max_send_message_length", 64 << 20),
               ("grpc.max_receive_message_length", 64 << 20)]
    owned = channel is None
    channel = channel or grpc.insecure_channel(target, options=options)
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return parse_predict_response(stub.Predict(request, timeout=timeout))
    finally:
        if owned:
            channel.close()


# Command line ------------------------------------------------------------------------------------

def example_inputs(signature_name, batch_size, latent_dim, input_path=None, seed=0):
    """The inputs of a request: `--input` if given, else N(0, I) noise for `generate` and zeros
    for `decode` of width `latent_dim` (the served signature's input width); image signatures
    need `--input`."""
    name = INPUT_NAMES[signature_name]
    if input_path:
        return {name: np.load(input_path).astype(np.float32)}
    if signature_name == "generate":
        return {name: np.random.default_rng(seed).standard_normal(
            (batch_size, latent_dim)).astype(np.float32)}
    if signature_name == "decode":
        return {name: np.zeros((batch_size, latent_dim), np.float32)}
    raise SystemExit(f"signature '{signature_name}' takes images: pass --input IMAGES.npy "
                     f"([B, H, W, C] float32 in [0, 1]).")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    transport = parser.add_mutually_exclusive_group(required=True)
    transport.add_argument("--rest", metavar="URL",
                           help="REST base URL, e.g. http://localhost:8501")
    transport.add_argument("--grpc", metavar="HOST:PORT", help="gRPC target, e.g. localhost:8500")
    parser.add_argument("--model", default="quickstart",
                        help="served model name: the config name of the exported run "
                             "(default: quickstart)")
    parser.add_argument("--version", type=int, default=None, help="model version to pin")
    parser.add_argument("--signature", default="generate", choices=sorted(INPUT_NAMES))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="width of generated generate/decode inputs (default over REST: "
                             "read from the served signature)")
    parser.add_argument("--input", help=".npy file holding the input tensor")
    parser.add_argument("--output", help="write the output tensor to this .npy file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if (args.input is None and args.signature in ("generate", "decode") and not args.latent_dim
            and not args.rest):
        parser.error("--latent-dim is needed to make generate/decode inputs over gRPC (or pass "
                     "--input).")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        width = args.latent_dim
        if args.input is None and args.signature in ("generate", "decode") and not width:
            (shape,) = rest_input_shapes(args.rest, args.model, args.signature, args.version,
                                         args.timeout).values()
            width = shape[-1]
        inputs = example_inputs(args.signature, args.batch_size, width, args.input, args.seed)
        if args.rest:
            outputs = rest_predict(args.rest, args.model, args.signature, inputs, args.version,
                                   args.timeout)
        else:
            request = build_predict_request(args.model, args.signature, inputs, args.version)
            outputs = grpc_predict(args.grpc, request, args.timeout)
    except Exception as error:  # URLError, HTTPError, grpc.RpcError: one line, not a traceback
        print(f"error: request to {args.rest or args.grpc} failed: {error}", file=sys.stderr)
        return 1
    for name, array in outputs.items():
        print(f"{name}: shape {array.shape}, min {array.min():.4g}, max {array.max():.4g}")
    if args.output:
        np.save(args.output, outputs[OUTPUT_NAMES[args.signature]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
