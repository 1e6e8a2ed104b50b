"""Hosted models on the REAL servers they are deployed on: azureml-inference-server-http (`azmlinfsrv`,
what Azure ML managed online endpoints run) hosting a scoring script that runs an ONNX model, and a KServe
Python ModelServer with a custom Model running an ONNX model (Open Inference Protocol v2 and v1).

Both pin dependencies the app does not share, so each lives in its own venv (built by .ci/run) and runs as
a subprocess on 127.0.0.1:

    python3 -m venv /tmp/seglens-azml-venv && /tmp/seglens-azml-venv/bin/pip install \
        azureml-inference-server-http==1.5.1 onnxruntime pillow
    python3 -m venv /tmp/seglens-kserve-venv && /tmp/seglens-kserve-venv/bin/pip install \
        kserve==0.21.0 onnxruntime

SEGLENS_AZMLINFSRV / SEGLENS_KSERVE_PYTHON name the venvs' `azmlinfsrv` / `python` when they live
elsewhere. Without them the tests skip, unless SEGLENS_REQUIRE_AZUREML=1 / SEGLENS_REQUIRE_KSERVE=1
(CI), which makes a missing server a failure. Every format here is lossless (PNG or integer tensors at the
image's size), so the hosted evaluation must equal the local one exactly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from modelzoo import make_onnx_segmenter

from app.core.domain.errors import PredictError
from app.core.domain.labels import CATEGORIES, eval_scheme_by_key
from app.core.io.datasets import open_dataset
from app.core.io.imageio import read_image
from app.core.scenes.generator import generate
from app.evaluation.engine import Evaluator
from app.evaluation.predictors import SegmenterPredictor
from app.inference.backends.onnx_backend import OnnxSegmenter
from app.inference.base import Segmenter
from app.inference.registry import load_model

HERE = Path(__file__).resolve().parent / "real_servers"
KEY = "azml-key-DO-NOT-LEAK-7311"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _executable(variable: str, default: str, require: str) -> Path:
    path = Path(os.environ.get(variable) or default)
    if not path.is_file():
        if os.environ.get(require) == "1":
            pytest.fail(f"{path} not found: build the venv (.ci/run) or set {variable}")
        pytest.skip(f"{path} not found (set {variable}, or {require}=1 to fail)")
    return path


@contextmanager
def _process(
    args: list[str], ready_url: str, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    """A server subprocess until GET ready_url answers 200 (at most 90 s); terminated on exit."""
    log = log_path.open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"server exited: {log_path.read_text(errors='replace')[-3000:]}"
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready: {log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _listening_only_on_loopback(port: int) -> None:
    """The port listens on 127.0.0.1 only: not on 0.0.0.0, another address, or any IPv6 address."""

    def listening(table: str) -> list[str]:
        path = Path("/proc/net") / table
        rows = [line.split() for line in path.read_text().splitlines()[1:]] if path.exists() else []
        # state 0A = LISTEN; local address is HEXIP:HEXPORT
        return [
            row[1].split(":")[0] for row in rows if row[3] == "0A" and int(row[1].split(":")[1], 16) == port
        ]

    assert listening("tcp") == ["0100007F"], listening("tcp")
    assert listening("tcp6") == [], listening("tcp6")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real-model")
    return make_onnx_segmenter(
        root / "model.onnx",
        CATEGORIES.names,
        input_size=None,
        seed=9,
        output="labels",
        input_dtype="uint8",
        layout="NHWC",
        hidden=16,
    )


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("real-data"), 4, size=(96, 192), seed=13)


def _manifest(tmp_path: Path, name: str, **fields: Any) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, **fields}), encoding="utf-8")
    return path


def _matrix(root: Path, model: Segmenter) -> np.ndarray:
    run = Evaluator(
        open_dataset(root), [SegmenterPredictor(model)], eval_scheme_by_key("categories"), workers=2
    ).run()
    assert not run.models[0].errors, run.models[0].errors
    assert len(run.models[0].images) == 4
    return run.models[0].matrix


# --- Azure ML: azmlinfsrv + score.py ------------------------------------------------------------------


@pytest.fixture(scope="module")
def azmlinfsrv(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    executable = _executable(
        "SEGLENS_AZMLINFSRV", "/tmp/seglens-azml-venv/bin/azmlinfsrv", "SEGLENS_REQUIRE_AZUREML"
    )
    python = executable.parent / "python"
    root = tmp_path_factory.mktemp("azml")
    port = _free_port()
    args = [
        str(python),
        str(HERE / "azmlinfsrv_loopback.py"),
        "--entry_script",
        str(HERE / "azureml_score.py"),
        "--model_dir",
        str(model_path.parent),
        "--port",
        str(port),
    ]
    with _process([*args, "--worker_count", "2"], f"http://127.0.0.1:{port}/", root / "azmlinfsrv.log"):
        _listening_only_on_loopback(port)
        yield f"http://127.0.0.1:{port}"


def test_azureml_scoring_script_matches_local(azmlinfsrv, model_path, scenes, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AZML_TEST_KEY", KEY)
    local = OnnxSegmenter(model_path)
    manifest = _manifest(
        tmp_path,
        "azml",
        kind="azureml",
        url=azmlinfsrv + "/score",
        scheme="categories",
        options={
            "api_key_env": "AZML_TEST_KEY",
            "azureml_deployment": "blue",
            "encoding": "indices",
            "response": {"format": "json_png", "key": "mask", "time_key": "inference_ms"},
        },
    )
    remote = load_model(manifest)
    try:
        assert remote.info.backend == "azureml" and KEY not in repr(remote) and KEY not in str(remote.info)
        image = read_image(next(scenes.rglob("*_leftImg8bit.png")))
        prediction = remote.predict(image)
        np.testing.assert_array_equal(prediction.labels, local.predict(image).labels)
        assert prediction.timings.server_reported  # type: ignore[attr-defined]
        np.testing.assert_array_equal(_matrix(scenes, remote), _matrix(scenes, local))
    finally:
        remote.close()
        local.close()


def test_azureml_nested_list_answer_and_script_errors(azmlinfsrv, model_path, scenes, tmp_path) -> None:
    local = OnnxSegmenter(model_path)
    options = {
        "request": {"format": "json", "key": "image", "body": {"as_list": True}},
        "response": {"format": "json_indices", "key": "mask_list"},
        "retries": 0,
    }
    remote = load_model(
        _manifest(tmp_path, "azml-list", kind="azureml", url=azmlinfsrv, scheme="categories", options=options)
    )
    try:
        np.testing.assert_array_equal(_matrix(scenes, remote), _matrix(scenes, local))
    finally:
        remote.close()
        local.close()
    # A script that fails (here: the image under a key it does not read) is a 500 with its message.
    wrong = {**options, "request": {"format": "json", "key": "picture"}}
    broken = load_model(
        _manifest(tmp_path, "azml-bad", kind="azureml", url=azmlinfsrv, scheme="categories", options=wrong)
    )
    try:
        with pytest.raises(
            PredictError, match=r"/score: HTTP 500: An unexpected error occurred in scoring script"
        ):
            broken.predict(np.zeros((16, 32, 3), np.uint8))
    finally:
        broken.close()


# --- KServe ModelServer -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kserve(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = _executable(
        "SEGLENS_KSERVE_PYTHON", "/tmp/seglens-kserve-venv/bin/python", "SEGLENS_REQUIRE_KSERVE"
    )
    root = tmp_path_factory.mktemp("kserve")
    port = _free_port()
    args = [
        str(python),
        str(HERE / "kserve_onnx.py"),
        "--http_port",
        str(port),
        "--model",
        f"seg={model_path}",
    ]
    with _process(args, f"http://127.0.0.1:{port}/v2/models/seg/ready", root / "kserve.log"):
        _listening_only_on_loopback(port)
        yield f"http://127.0.0.1:{port}"


def test_kserve_v2_matches_local(kserve, model_path, scenes, tmp_path) -> None:
    local = OnnxSegmenter(model_path)
    remote = load_model(
        _manifest(tmp_path, "seg", kind="v2", url=kserve, scheme="categories", options={"read_timeout": 30})
    )
    try:
        assert remote.info.backend == "v2"
        assert remote.info.extra["input_datatype"] == "UINT8"
        np.testing.assert_array_equal(_matrix(scenes, remote), _matrix(scenes, local))
    finally:
        remote.close()
        local.close()


def test_kserve_v1_through_the_http_adapter(kserve, model_path, scenes, tmp_path) -> None:
    """v1 `{"instances": [image]}` -> `{"predictions": [labels]}` is the generic adapter's JSON request with
    the image as nested numbers and a nested index list back."""
    local = OnnxSegmenter(model_path)
    options = {
        "path": "/v1/models/seg:predict",
        "health": "/v1/models/seg",
        "request": {"format": "json", "key": "instances.0", "image": "list"},
        "response": {"format": "json_indices", "key": "predictions.0"},
        "read_timeout": 30,
    }
    remote = load_model(
        _manifest(tmp_path, "seg-v1", kind="http", url=kserve, scheme="categories", options=options)
    )
    try:
        np.testing.assert_array_equal(_matrix(scenes, remote), _matrix(scenes, local))
    finally:
        remote.close()
        local.close()
