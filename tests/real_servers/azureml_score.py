"""An Azure ML scoring script (run by azmlinfsrv) segmenting images with an ONNX model.

init(): loads $AZUREML_MODEL_DIR/model.onnx (a uint8 NHWC input, integer labels out, any size).
run(raw_data): {"image": base64 PNG} -> {"mask": base64 PNG of class indices, "mask_list": [[...]],
"inference_ms": float}; a missing or unreadable image -> an error string with status 500 (what
azmlinfsrv does with an exception raised by run()).
"""

import base64
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

session = None


def init():
    global session
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    path = str(Path(os.environ["AZUREML_MODEL_DIR"]) / "model.onnx")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run(raw_data):
    data = json.loads(raw_data)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(data["image"]))).convert("RGB"))
    start = time.perf_counter()
    node = session.get_inputs()[0]
    labels = session.run(None, {node.name: image[None]})[0]
    # The mask at the model's output resolution (a quarter of the image here): clients resize it.
    labels = np.asarray(labels)[0].astype(np.uint8)
    elapsed = (time.perf_counter() - start) * 1e3
    buffer = io.BytesIO()
    Image.fromarray(labels, "L").save(buffer, format="PNG")
    answer = {"mask": base64.b64encode(buffer.getvalue()).decode(), "inference_ms": elapsed}
    if data.get("as_list"):
        answer["mask_list"] = labels.tolist()
    return answer
