"""`seglens serve`: the real app under uvicorn on 127.0.0.1, driven over HTTP with httpx.

Every server runs in a background thread on a socket bound to a free port and is stopped (should_exit,
bounded join) when its test ends. Models are tiny real ONNX files from modelzoo.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require
from modelzoo import make_onnx_segmenter
from PIL import Image

from app.core.domain.errors import PredictError
from app.core.domain.labels import CATEGORY_NAMES, TRAINIDS
from app.inference.base import Prediction
from app.inference.registry import load_model

require("fastapi")
require("python_multipart")
uvicorn = require("uvicorn")
httpx = require("httpx")

from app.server import main  # noqa: E402  (after the optional-dependency checks)
from app.server.app import create_app  # noqa: E402
from app.server.evaluations import load_evaluation  # noqa: E402

KEY = "sk-test-7f3a9c1e5b2d4068"
START_POLLS = 2000  # x 5 ms: a bound on waiting for uvicorn to start, not a timing assertion


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("server-models")
    return {
        # fixed input: the server's image is resized in and the labels resized back out
        "cat": make_onnx_segmenter(root / "cat.onnx", CATEGORY_NAMES, input_size=(64, 128), seed=1),
        # dynamic input, uint8 labels straight from the graph
        "city": make_onnx_segmenter(
            root / "city.onnx", TRAINIDS.names, input_size=None, output="labels", seed=2
        ),
    }


@pytest.fixture(scope="module")
def models(model_paths: dict[str, Path]) -> Iterator[dict[str, Any]]:
    loaded = {name: load_model(path) for name, path in model_paths.items()}
    yield loaded
    for model in loaded.values():
        model.close()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (48, 80, 3), dtype=np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(data: bytes, name: str = "image.png") -> dict[str, Any]:
    return {"file": (name, data, "application/octet-stream")}


@contextlib.contextmanager
def serving(app: Any) -> Iterator[httpx.Client]:
    """Run `app` with uvicorn on 127.0.0.1:<free port> in a thread; yield a client; always stop it."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without
    # it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="info", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(START_POLLS):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.005)
        assert server.started, "uvicorn did not start"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """A JSON error body of the house shape, without any traceback text."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str)
    if error is not None:
        assert body["error"] == error, body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img)


class GatedSegmenter:
    """A real model whose predict() waits for the test to open the gate: a deterministic slow model."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.gate = threading.Event()

    @property
    def info(self) -> Any:
        return self.inner.info

    def predict(self, image: np.ndarray) -> Prediction:
        self.entered.set()
        self.gate.wait(timeout=30)  # bounded: a broken test must not hang the suite
        return self.inner.predict(image)

    def close(self) -> None:
        pass


class BrokenSegmenter:
    """Fails like a bug (RuntimeError) or like a model (PredictError), with internals in the message."""

    def __init__(self, inner: Any, error: type[Exception]) -> None:
        self._info = dataclasses.replace(inner.info, name="broken")
        self.error = error

    @property
    def info(self) -> Any:
        return self._info

    def predict(self, image: np.ndarray) -> Prediction:
        raise self.error("onnxruntime exploded in /srv/secret/models/broken.onnx")

    def close(self) -> None:
        pass


# --- metadata endpoints -----------------------------------------------------------------------------


def test_page_health_info_models_and_docs(models: dict[str, Any]) -> None:
    with serving(create_app(models)) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        # Self-contained: no external scripts, styles or fonts, and a CSP that would block them anyway.
        assert "<script src" not in page.text and "<link" not in page.text and "://" not in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"

        health = client.get("/health").json()
        assert health["status"] == "ok" and health["models"] == ["cat", "city"] and health["active"] == "cat"

        info = client.get("/info").json()
        cat = models["cat"].info
        assert info["name"] == "cat" and info["backend"] == "onnx" and info["scheme"] == "categories"
        assert info["classes"] == list(CATEGORY_NAMES) and info["digest"] == cat.digest
        assert info["file_size"] == cat.file_size and (info["input"]["height"], info["input"]["width"]) == (
            64,
            128,
        )
        assert "source" not in info  # the server's file paths are not the client's business

        listed = client.get("/models").json()
        assert listed["active"] == "cat"
        assert [(m["name"], m["active"], m["num_classes"]) for m in listed["models"]] == [
            ("cat", True, 8),
            ("city", False, 19),
        ]
        schema = client.get("/openapi.json").json()
        assert {"/predict", "/predict/visualize", "/switch/{model}", "/metrics/{model}"} <= set(
            schema["paths"]
        )
        assert client.get("/docs").status_code == 200


def test_unknown_route_and_method_are_json(models: dict[str, Any]) -> None:
    with serving(create_app(models)) as client:
        body = assert_error(client.get("/nope"), 404, "not found")
        assert "/nope" in body["detail"]
        assert_error(client.get("/predict"), 405, "method not allowed")


# --- predictions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cat", "city"])
def test_predict_json_is_bit_identical_to_local_prediction(
    models: dict[str, Any], model_paths: dict[str, Path], image: np.ndarray, name: str
) -> None:
    local = load_model(model_paths[name])  # a separate instance: what a desktop user would run
    try:
        expected = local.predict(image).labels
    finally:
        local.close()
    with serving(create_app(models, active=name)) as client:
        response = client.post("/predict", files=upload(png_bytes(image)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == name and body["shape"] == [48, 80]
    assert body["classes"] == list(models[name].info.class_names)
    mask = decode_png(base64.b64decode(body["mask_png_base64"]))
    assert mask.dtype == np.uint8 and mask.ndim == 2
    np.testing.assert_array_equal(mask, expected)
    assert set(body["timings"]) >= {"decode_ms", "inference_ms", "encode_ms", "total_ms"}


def test_predict_png_on_accept_header(models: dict[str, Any], image: np.ndarray) -> None:
    expected = models["city"].predict(image).labels
    with serving(create_app(models, active="city")) as client:
        response = client.post("/predict", files=upload(png_bytes(image)), headers={"Accept": "image/png"})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.headers["x-seglens-model"] == "city"
        assert json.loads(response.headers["x-seglens-classes"]) == list(TRAINIDS.names)
        np.testing.assert_array_equal(decode_png(response.content), expected)
        # JSON stays the default, and wins when preferred.
        preferred = {"Accept": "application/json, image/png;q=0.5"}
        assert (
            client.post("/predict", files=upload(png_bytes(image)), headers=preferred).json()["model"]
            == "city"
        )


def test_visualize_returns_overlay_png_of_image_size(models: dict[str, Any], image: np.ndarray) -> None:
    with serving(create_app(models)) as client:
        response = client.post("/predict/visualize", files=upload(png_bytes(image)))
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        blended = decode_png(response.content)
        assert blended.shape == (48, 80, 3)
        assert not np.array_equal(blended, image)
        # Opacity 0 is exactly the image (integer blend), opacity 1 exactly the class colours.
        clear = client.post("/predict/visualize", params={"opacity": 0}, files=upload(png_bytes(image)))
        np.testing.assert_array_equal(decode_png(clear.content), image)
        assert_error(
            client.post("/predict/visualize", params={"opacity": 2}, files=upload(png_bytes(image))),
            422,
            "invalid request",
        )


def test_switch_then_info_shows_new_model(models: dict[str, Any], image: np.ndarray) -> None:
    with serving(create_app(models)) as client:
        assert client.post("/switch/city").json() == {"active": "city", "previous": "cat"}
        assert client.get("/info").json()["name"] == "city"
        assert client.get("/health").json()["active"] == "city"
        assert client.post("/predict", files=upload(png_bytes(image))).json()["model"] == "city"
        body = assert_error(client.post("/switch/nonesuch"), 404, "unknown model")
        assert "nonesuch" in body["detail"] and "cat" in body["detail"]
        assert client.get("/info").json()["name"] == "city"


# --- bad input --------------------------------------------------------------------------------------


def test_bad_uploads_get_clear_4xx_json(models: dict[str, Any], image: np.ndarray) -> None:
    good = png_bytes(image)
    with serving(create_app(models, max_pixels=64 * 64)) as client:
        assert_error(client.post("/predict", files=upload(b"hello, not an image")), 400, "not an image")
        assert_error(client.post("/predict", files=upload(good[: len(good) // 2])), 400, "corrupt image")
        assert_error(client.post("/predict", files=upload(b"")), 400, "empty upload")
        body = assert_error(client.post("/predict", data={"other": "x"}), 422, "invalid request")
        assert any("file" in p for p in body["detail"])
        big = png_bytes(np.zeros((100, 100, 3), dtype=np.uint8))
        body = assert_error(client.post("/predict", files=upload(big)), 413, "image too large")
        assert "100x100" in body["detail"]


def test_oversize_upload_gets_413(models: dict[str, Any]) -> None:
    # Small numbers keep the test fast; 25 and 100 MB uploads against the default 20 MB limit were
    # checked by hand to get the same 413 (the body is never read past the limit).
    payload = bytes(30_000)
    with serving(create_app(models, max_upload_bytes=10_000)) as client:
        assert_error(client.post("/predict", files=upload(payload)), 413, "request too large")

        # Without Content-Length (chunked): the limit is enforced while the body streams in.
        boundary = "seglensboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()

        def chunks() -> Iterator[bytes]:
            yield head
            yield payload

        response = client.post(
            "/predict",
            content=chunks(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "request too large")
        assert client.get("/health").status_code == 200  # still serving


def test_busy_server_answers_429_with_retry_after(models: dict[str, Any], image: np.ndarray) -> None:
    gated = GatedSegmenter(models["cat"])
    data = png_bytes(image)
    results: queue.Queue[int] = queue.Queue()
    with serving(create_app({"slow": gated}, max_concurrency=1)) as client:
        url = str(client.base_url)

        def first() -> None:
            with httpx.Client(base_url=url, timeout=30) as own:
                results.put(own.post("/predict", files=upload(data)).status_code)

        worker = threading.Thread(target=first)
        worker.start()
        try:
            assert gated.entered.wait(timeout=30), "the first prediction never started"
            # The event loop stays free while the prediction runs in the thread pool...
            assert client.get("/health").json()["busy"] == 1
            # ...and a prediction beyond the cap is refused at once, not queued.
            busy = client.post("/predict", files=upload(data))
            body = assert_error(busy, 429, "busy")
            assert busy.headers["retry-after"] == "1" and "slots" in body["detail"]
        finally:
            gated.gate.set()
            worker.join(timeout=30)
        assert results.get(timeout=30) == 200
        stats = client.get("/metrics/slow").json()
        assert (stats["requests"], stats["errors"], stats["rejected_busy"]) == (2, 1, 1)
        assert client.post("/predict", files=upload(data)).status_code == 200  # the slot came back


def test_internal_errors_are_generic_and_logged(
    models: dict[str, Any], image: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    served = {
        "bug": BrokenSegmenter(models["cat"], RuntimeError),
        "fails": BrokenSegmenter(models["cat"], PredictError),
    }
    with serving(create_app(served)) as client:
        response = client.post("/predict", files=upload(png_bytes(image)))
        assert assert_error(response, 500) == {"error": "internal error"}
        assert "secret" not in response.text
        client.post("/switch/fails")
        response = client.post("/predict", files=upload(png_bytes(image)))
        assert_error(response, 500, "prediction failed")
        assert "secret" not in response.text
        assert client.get("/metrics/bug").json()["errors"] == 1
    # The details are for the operator: in the server log, with the traceback for the bug.
    assert "Traceback" in caplog.text and "RuntimeError" in caplog.text
    assert "/srv/secret/models/broken.onnx" in caplog.text


# --- metrics and API key ----------------------------------------------------------------------------


def test_metrics_count_requests_errors_and_show_evaluation(
    models: dict[str, Any], image: np.ndarray, tmp_path: Path
) -> None:
    document = {
        "dataset": {"root": "/data/cityscapes", "kind": "cityscapes", "split": "val", "images": 3},
        "scheme": "categories",
        "models": [
            {
                "name": "cat-model",
                "digest": models["cat"].info.digest,
                "images_evaluated": 3,
                "metrics": {"miou": 0.5, "pixel_accuracy": 0.75, "confusion": {"matrix": [[1]]}},
                "latency_ms": {"p50": 3.0},
            }
        ],
    }
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document), encoding="utf-8")
    evaluation = load_evaluation(results, "cat", models["cat"].info)
    with serving(create_app(models, evaluations={"cat": evaluation})) as client:
        for _ in range(2):
            assert client.post("/predict", files=upload(png_bytes(image))).status_code == 200
        assert client.post("/predict/visualize", files=upload(b"junk")).status_code == 400
        stats = client.get("/metrics/cat").json()
        assert (stats["model"], stats["requests"], stats["errors"], stats["rejected_busy"]) == (
            "cat",
            3,
            1,
            0,
        )
        latency = stats["latency_ms"]
        assert latency["count"] == 2 and 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
        assert stats["evaluation"]["metrics"] == {"miou": 0.5, "pixel_accuracy": 0.75}
        assert stats["evaluation"]["digest_matches"] is True
        other = client.get("/metrics/city").json()
        assert other["requests"] == 0 and other["latency_ms"]["p50"] is None and other["evaluation"] is None
        assert_error(client.get("/metrics/nonesuch"), 404, "unknown model")


def test_api_key_required_and_never_logged(
    models: dict[str, Any], image: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    with serving(create_app(models, api_key=KEY)) as client:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": f"Basic {KEY}"}):
            response = client.get("/health", headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
            bodies.append(response.text)
        assert_error(client.post("/predict", files=upload(png_bytes(image))), 401)
        assert client.get("/health", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.get("/info", headers={"X-API-Key": KEY}).status_code == 200
        ok = client.post("/predict", files=upload(png_bytes(image)), headers={"X-API-Key": KEY})
        assert ok.status_code == 200
        bodies.append(ok.text)
        assert client.get("/").status_code == 200  # the static page and the API description are public
        assert client.get("/openapi.json").status_code == 200
    assert caplog.records, "expected uvicorn's access log"
    assert KEY not in caplog.text
    assert all(KEY not in body for body in bodies)


# --- the command --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "model.onnx"], "expected NAME=PATH"),
        (["--model", "=model.onnx"], "bad name ''"),
        (["--model", "a b=model.onnx"], "bad name 'a b'"),
        (["--model", "a="], "expected NAME=PATH"),
        (["--model", "a=x.onnx", "--model", "a=y.onnx"], "must be unique"),
        (["--model", "a=x.onnx", "--metrics", "b=r.json"], "no --model named 'b'"),
        (["--model", "a=x.onnx", "--max-pixels", "big"], "--max-pixels"),
        (["--model", "a=x.onnx", "--max-concurrency", "0"], "--max-concurrency"),
    ],
)
def test_cli_refuses_bad_arguments(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_seglens_serve_is_wired_to_this_main(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main as seglens_main

    assert seglens_main(["serve", "--model", "no-equals-sign"]) == 2
    assert "expected NAME=PATH" in capsys.readouterr().err


def test_cli_refuses_missing_model_and_unset_key(
    model_paths: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    assert main(["--model", f"a={tmp_path / 'missing.onnx'}"]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.delenv("SEGLENS_TEST_UNSET_KEY", raising=False)
    assert main(["--model", f"a={model_paths['cat']}", "--api-key-env", "SEGLENS_TEST_UNSET_KEY"]) == 2
    assert "SEGLENS_TEST_UNSET_KEY" in capsys.readouterr().err
    bad_results = tmp_path / "results.json"
    bad_results.write_text("{}", encoding="utf-8")
    assert main(["--model", f"a={model_paths['cat']}", "--metrics", f"a={bad_results}"]) == 2
    assert "not a `seglens evaluate --json` results file" in capsys.readouterr().err


def test_cli_parses_options() -> None:
    from app.server.cli import parse_args

    options = parse_args(
        [
            "--model",
            "a=x.onnx",
            "--model",
            "b.v2=y.onnx",
            "--max-pixels",
            "2048x1024",
            "--max-upload-mb",
            "1.5",
        ]
    )
    assert [name for name, _ in options.models] == ["a", "b.v2"]
    assert options.host == "127.0.0.1" and options.port == 8000 and options.max_concurrency == 2
    assert options.max_pixels == 2048 * 1024 and options.max_upload_bytes == int(1.5 * 2**20)


def test_serve_command_end_to_end(model_paths: dict[str, Path]) -> None:
    """`python -m app.server` (= `seglens serve`) on port 0 with an API key from the environment."""
    env = {**os.environ, "SEGLENS_TEST_KEY": KEY}
    cmd = [sys.executable, "-m", "app.server", "--model", f"cat={model_paths['cat']}", "--port", "0"]
    cmd += ["--api-key-env", "SEGLENS_TEST_KEY"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=lambda: [*map(lines.put, proc.stderr or ()), lines.put(None)])
    reader.start()
    log: list[str] = []
    try:
        url = None
        while url is None:
            line = lines.get(timeout=60)
            assert line is not None, "server exited early:\n" + "".join(log)
            log.append(line)
            if "Uvicorn running on " in line:
                url = line.split("Uvicorn running on ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")  # loopback by default
        assert httpx.get(f"{url}/health", timeout=30).status_code == 401
        health = httpx.get(f"{url}/health", headers={"X-API-Key": KEY}, timeout=30).json()
        assert health["models"] == ["cat"]
    finally:
        # Ctrl+C: uvicorn shuts down gracefully, then main() closes the models and returns 0.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        reader.join(timeout=30)
    while (line := lines.get_nowait()) is not None:
        log.append(line)
    assert proc.returncode == 0, "".join(log)
    assert KEY not in "".join(log)
