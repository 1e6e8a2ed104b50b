"""A KServe Python ModelServer hosting ONNX segmentation models (run with the KServe venv's python).

    python kserve_onnx.py --http_port P --model NAME=model.onnx [--model ...]

Each model is a custom kserve.Model running onnxruntime: Open Inference Protocol v2
(`/v2/models/NAME/infer`, metadata from the ONNX graph) and v1 (`/v1/models/NAME:predict` with
{"instances": [HxWx3 image]} -> {"predictions": [HxW labels]}).

KServe 0.21 builds its uvicorn.Config with host="0.0.0.0" hard-coded (kserve/protocol/rest/server.py,
RESTServer.__init__) and offers no host option, so this launcher sets the config's host to 127.0.0.1 after
construction, before uvicorn binds; gRPC is turned off (--enable_grpc false) so nothing else listens.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.protocol.rest import server as rest_server

_DTYPES = {
    "tensor(uint8)": "UINT8",
    "tensor(float)": "FP32",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
}


def _loopback_only() -> None:
    original = rest_server.RESTServer.__init__

    def init(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        self.config.host = "127.0.0.1"

    rest_server.RESTServer.__init__ = init  # type: ignore[method-assign]


class OnnxSegmentation(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.ready = True
        return self.ready

    def _types(self, nodes) -> list[dict]:  # type: ignore[no-untyped-def]
        return [
            {
                "name": n.name,
                "datatype": _DTYPES.get(n.type, "FP32"),
                "shape": [d if isinstance(d, int) else -1 for d in n.shape],
            }
            for n in nodes
        ]

    def get_input_types(self) -> list[dict]:
        return self._types(self.session.get_inputs())

    def get_output_types(self) -> list[dict]:
        return self._types(self.session.get_outputs())

    def _run(self, array: np.ndarray) -> np.ndarray:
        node = self.session.get_inputs()[0]
        dtype = np.uint8 if node.type == "tensor(uint8)" else np.float32
        return self.session.run(None, {node.name: array.astype(dtype, copy=False)})[0]

    async def predict(self, payload, headers=None, response_headers=None):  # type: ignore[no-untyped-def]
        if isinstance(payload, InferRequest):
            result = self._run(payload.inputs[0].as_numpy())
            output = self.session.get_outputs()[0]
            datatype = "UINT8" if result.dtype == np.uint8 else "FP32"
            out = InferOutput(output.name, list(result.shape), datatype)
            out.set_data_from_numpy(result, binary_data=False)
            return InferResponse(response_id=payload.id or "0", model_name=self.name, infer_outputs=[out])
        # v1: {"instances": [image as nested lists]} -> {"predictions": [labels as nested lists]}
        images = np.asarray(payload["instances"])
        result = self._run(images)
        if result.ndim == 4:  # logits -> labels for the v1 answer
            result = result.argmax(axis=1)
        return {"predictions": result.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser], conflict_handler="resolve")
    parser.add_argument("--model", action="append", required=True, help="NAME=path.onnx")
    args, _ = parser.parse_known_args()
    _loopback_only()
    models = []
    for spec in args.model:
        name, _, path = spec.partition("=")
        models.append(OnnxSegmentation(name, path))
    ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start(models)


if __name__ == "__main__":
    sys.exit(main())
