"""Remote models end to end, over real HTTP on 127.0.0.1: the SegLens REST backend against a served model,
the Open Inference Protocol v2 backend against a real MLServer, and the client's behaviour under faults
(retries, timeouts, broken answers, dropped connections, secrets).

MLServer cannot share this venv (it pins fastapi/starlette/protobuf older than ours), so it runs from its
own venv as a subprocess: `python3 -m venv /tmp/mlserver-venv && /tmp/mlserver-venv/bin/pip install
mlserver onnxruntime`. SEGLENS_MLSERVER names its `mlserver` executable if it lives elsewhere; without one
the MLServer test skips, unless SEGLENS_REQUIRE_MLSERVER=1.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require
from modelzoo import make_onnx_segmenter
from PIL import Image
from servers import serve_app

from app.core.domain.errors import ModelLoadError, PredictError
from app.core.domain.labels import TRAINIDS, eval_scheme_by_key
from app.core.io.datasets import open_dataset
from app.core.scenes.generator import generate
from app.evaluation.engine import Evaluator
from app.evaluation.predictors import SegmenterPredictor
from app.inference.backends.http_client import ClientSettings, HttpClient, Secret, parse_retry_after
from app.inference.backends.onnx_backend import OnnxSegmenter
from app.inference.backends.rest_backend import RestSegmenter
from app.inference.base import Segmenter
from app.inference.registry import load_model

fastapi = require("fastapi")
uvicorn = require("uvicorn")
require("httpx")
require("python_multipart")  # python-multipart, for the fake server's form parsing
# Module level on purpose: FastAPI resolves the (string) annotations of routes in the module's globals.
Request = fastapi.Request

KEY = "sk-test-DO-NOT-LEAK-4242"


# --- helpers: models, data, a uvicorn server in a thread -------------------------------------------


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("remote-models")
    return {
        "logits": make_onnx_segmenter(root / "logits.onnx", TRAINIDS.names, input_size=(64, 128), seed=1),
        "labels_u8": make_onnx_segmenter(
            root / "labels_u8.onnx",
            TRAINIDS.names,
            input_size=None,
            seed=2,
            output="labels",
            input_dtype="uint8",
            layout="NHWC",
        ),
    }


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("remote-data"), 6, size=(96, 192), seed=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# uvicorn on a free 127.0.0.1 port in a thread, stopped on exit (shared with the other server tests).
serve = serve_app


def _manifest(tmp_path: Path, name: str, **fields: Any) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, **fields}), encoding="utf-8")
    return path


def _evaluate(root: Path, model: Segmenter, workers: int = 2) -> Any:
    dataset = open_dataset(root)
    return Evaluator(
        dataset, [SegmenterPredictor(model)], eval_scheme_by_key("trainids"), workers=workers
    ).run()


def _png(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


# --- a SegLens REST server: stand-in speaking the `seglens serve` API, with scripted faults ----------


class FakeSegLens:
    """The SegLens REST API (health, info, models, switch, predict) over real Segmenters, plus a queue of
    faults that the next /predict requests answer with instead: ("status", code, retry_after, message),
    ("slow", seconds), ("garbage",), ("wrong_size",), ("close",)."""

    def __init__(self, models: dict[str, Segmenter], api_key: str | None = None, delay: float = 0.0) -> None:
        self.models, self.active, self.api_key, self.delay = models, next(iter(models)), api_key, delay
        self.plan: deque[tuple[Any, ...]] = deque()
        self.predicts = self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.app = self._build()

    def _info(self) -> dict[str, Any]:
        info = self.models[self.active].info
        return {
            "name": self.active,
            "model_name": info.name,
            "backend": info.backend,
            "classes": list(info.class_names),
            "scheme": info.scheme,
            "file_size": info.file_size,
            "input": {"height": info.input.height, "width": info.input.width},
            "digest": info.digest,
        }

    def _build(self) -> Any:
        from fastapi.responses import JSONResponse, Response, StreamingResponse

        app = fastapi.FastAPI()

        @app.get("/health")
        def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/info")
        def info() -> dict[str, Any]:
            return self._info()

        @app.get("/models")
        def models() -> dict[str, Any]:
            return {"models": list(self.models), "active": self.active}

        @app.post("/switch/{model}")
        def switch(model: str) -> Any:
            if model not in self.models:
                return JSONResponse({"error": "unknown model", "detail": model}, status_code=404)
            self.active = model
            return {"active": model}

        @app.post("/predict")
        async def predict(request: Request) -> Any:
            given = request.headers.get("Authorization", "")
            if self.api_key is not None and given != f"Bearer {self.api_key}":
                # Echoes what it got, as careless servers do: the client must mask it.
                return JSONResponse({"error": "unauthorized", "detail": f"bad credentials {given!r}"}, 401)
            with self.lock:
                self.predicts += 1
                fault = self.plan.popleft() if self.plan else ("ok",)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await self._answer(fault, request, Response, JSONResponse, StreamingResponse)
            finally:
                with self.lock:
                    self.in_flight -= 1

        return app

    async def _answer(
        self, fault: tuple[Any, ...], request: Any, response: Any, json_response: Any, streaming: Any
    ) -> Any:
        kind = fault[0]
        if kind == "status":
            headers = {"Retry-After": fault[2]} if fault[2] is not None else {}
            return json_response({"error": fault[3]}, status_code=fault[1], headers=headers)
        if kind == "slow":
            await asyncio.sleep(fault[1])
        if kind == "garbage":
            return response(b"this is not a png", media_type="image/png")
        if kind == "close":

            async def broken() -> Any:
                yield b"\x89PNG\r\n\x1a\n"
                raise ConnectionResetError("fault injection: connection dropped mid-response")

            return streaming(broken(), media_type="image/png", headers={"Content-Length": "5000"})
        form = await request.form()
        image = np.asarray(Image.open(io.BytesIO(await form["file"].read())).convert("RGB"))
        if self.delay:
            await asyncio.sleep(self.delay)
        labels = self.models[self.active].predict(image).labels
        if kind == "wrong_size":
            labels = labels[: labels.shape[0] // 2]
        png = _png(labels, "L")
        if "image/png" in request.headers.get("Accept", ""):
            classes = json.dumps(list(self.models[self.active].info.class_names))
            return response(
                png,
                media_type="image/png",
                headers={
                    "X-SegLens-Model": self.active,
                    "X-SegLens-Classes": classes,
                    "X-SegLens-Timings": '{"total_ms": 1.5}',
                },
            )
        import base64

        classes = list(self.models[self.active].info.class_names)
        return {
            "model": self.active,
            "classes": classes,
            "shape": list(labels.shape),
            "mask_png_base64": base64.b64encode(png).decode(),
            "timings": {"inference_ms": 1.5},
        }


def _seglens_app(kind: str, models: dict[str, Segmenter], api_key: str | None) -> Any:
    """The real `seglens serve` app, or the stand-in that speaks the same API (kept: it is the one that
    can also misbehave on purpose, below)."""
    if kind == "stand-in":
        return FakeSegLens(models, api_key).app
    from app.server.app import create_app

    return create_app(models, api_key=api_key)


# --- REST: same labels and same evaluation as the local model --------------------------------------


@pytest.mark.parametrize("server", ["seglens-serve", "stand-in"])
def test_rest_backend_matches_local(onnx_models, scenes, tmp_path, monkeypatch, server) -> None:
    local = OnnxSegmenter(onnx_models["logits"])
    other = OnnxSegmenter(onnx_models["labels_u8"])
    monkeypatch.setenv("SEGLENS_TEST_KEY", KEY)
    with serve(_seglens_app(server, {"logits": local, "labels": other}, KEY)) as url:
        manifest = _manifest(
            tmp_path, "hosted", kind="rest", url=url, options={"api_key_env": "SEGLENS_TEST_KEY"}
        )
        remote = load_model(manifest)
        try:
            assert isinstance(remote, RestSegmenter)
            assert remote.info.backend == "rest" and remote.info.file_size is None
            assert remote.info.class_names == local.info.class_names and remote.info.scheme == "trainids"
            assert len(remote.info.digest) == 64 and KEY not in repr(remote)
            image = np.asarray(Image.open(next(scenes.rglob("*_leftImg8bit.png"))).convert("RGB"))
            prediction = remote.predict(image)
            np.testing.assert_array_equal(prediction.labels, local.predict(image).labels)
            assert prediction.timings.total_ms > 0
            remote_run, local_run = _evaluate(scenes, remote), _evaluate(scenes, local)
            assert not remote_run.models[0].errors and len(remote_run.models[0].images) == 6
            np.testing.assert_array_equal(remote_run.models[0].matrix, local_run.models[0].matrix)
        finally:
            remote.close()
        # A manifest naming another served model switches the server to it first.
        switched = load_model(
            _manifest(
                tmp_path,
                "other",
                kind="rest",
                url=url,
                options={"api_key_env": "SEGLENS_TEST_KEY", "model": "labels"},
            )
        )
        try:
            assert switched.info.extra["served_model"] == "labels"
            np.testing.assert_array_equal(switched.predict(image).labels, other.predict(image).labels)
        finally:
            switched.close()


# --- fault injection ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fault_server(onnx_models) -> Iterator[tuple[FakeSegLens, str]]:
    fake = FakeSegLens({"logits": OnnxSegmenter(onnx_models["logits"])})
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def faulty(fault_server) -> Iterator[tuple[FakeSegLens, str, list[float]]]:
    """The fault server reset, and a RestSegmenter on it whose backoff sleeps are recorded, not slept."""
    fake, url = fault_server
    fake.plan.clear()
    fake.predicts = fake.max_in_flight = 0
    delays: list[float] = []
    client = HttpClient(
        url, settings=ClientSettings(connect_timeout=2, read_timeout=0.5, retries=2), sleep=delays.append
    )
    segmenter = RestSegmenter(url, client=client)
    fake.segmenter = segmenter  # type: ignore[attr-defined]
    yield fake, url, delays
    segmenter.close()
    fake.plan.clear()


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (40, 72, 3), dtype=np.uint8)


def test_retry_after_then_success(faulty) -> None:
    fake, _, delays = faulty
    later = formatdate(time.time() + 2, usegmt=True)
    fake.plan.extend([("status", 429, "1", "busy"), ("status", 503, later, "warming up")])
    prediction = fake.segmenter.predict(_image())
    assert prediction.labels.shape == (40, 72)
    assert fake.predicts == 3  # two refusals, then the answer
    assert delays[0] >= 1.0  # Retry-After in seconds honoured
    assert 0.0 <= delays[1] <= 2.0  # ... and as an HTTP date


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0  # in the past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_retries_are_bounded(faulty) -> None:
    fake, url, delays = faulty
    fake.plan.extend([("status", 502, None, "bad gateway")] * 5)
    with pytest.raises(PredictError) as caught:
        fake.segmenter.predict(_image())
    assert fake.predicts == 3 and len(delays) == 2  # 1 + retries=2
    assert f"{url}/predict" in str(caught.value) and "bad gateway" in str(caught.value)


def test_client_error_is_not_retried(faulty) -> None:
    fake, url, delays = faulty
    fake.plan.append(("status", 400, "1", "image is not RGB"))
    with pytest.raises(PredictError) as caught:
        fake.segmenter.predict(_image())
    assert fake.predicts == 1 and delays == []
    message = str(caught.value)
    assert f"{url}/predict" in message and "HTTP 400" in message and "image is not RGB" in message


def test_read_timeout_is_reported(faulty) -> None:
    fake, url, delays = faulty
    fake.plan.append(("slow", 2.0))
    with pytest.raises(PredictError, match="read timeout") as caught:
        fake.segmenter.predict(_image())
    assert f"{url}/predict" in str(caught.value)
    assert fake.predicts == 1 and delays == []  # a slow server is not sent the work twice


@pytest.mark.parametrize(
    ("fault", "expected"),
    [(("garbage",), "the mask is not a PNG"), (("wrong_size",), "mask is 72x20, image is 72x40")],
)
def test_bad_answers_are_reported(faulty, fault, expected) -> None:
    fake, url, _ = faulty
    fake.plan.append(fault)
    with pytest.raises(PredictError, match=expected) as caught:
        fake.segmenter.predict(_image())
    assert f"{url}/predict" in str(caught.value)


def test_connection_dropped_mid_response(faulty) -> None:
    fake, url, delays = faulty
    fake.plan.append(("close",))
    assert fake.segmenter.predict(_image()).labels.shape == (40, 72)  # resent: predict is idempotent
    assert fake.predicts == 2 and len(delays) == 1
    fake.plan.extend([("close",)] * 3)
    with pytest.raises(PredictError, match="connection problem") as caught:
        fake.segmenter.predict(_image())
    assert f"{url}/predict" in str(caught.value)


def test_evaluation_goes_on_past_failures(faulty, scenes) -> None:
    fake, url, _ = faulty
    fake.plan.extend([("status", 400, None, "nope"), ("garbage",), ("wrong_size",), ("slow", 2.0)])
    run = _evaluate(scenes, fake.segmenter)
    model = run.models[0]
    assert len(model.errors) == 4 and len(model.images) == 2  # six images: four failed, two evaluated
    assert all(url in text for text in model.errors.values())
    assert model.matrix.sum() == 2 * 96 * 192


def test_concurrency_cap_per_endpoint(onnx_models) -> None:
    fake = FakeSegLens({"logits": OnnxSegmenter(onnx_models["logits"])}, delay=0.05)
    with serve(fake.app) as url:
        settings = ClientSettings(max_concurrency=2)
        # Two segmenters on one endpoint share its slots (the evaluator and the GUI preview, say).
        segmenters = [RestSegmenter(url, client=HttpClient(url, settings=settings)) for _ in range(2)]
        threads = [
            threading.Thread(target=lambda s=s: [s.predict(_image()) for _ in range(3)])
            for s in segmenters
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for segmenter in segmenters:
            segmenter.close()
    assert not any(t.is_alive() for t in threads)
    assert fake.predicts == 18 and 1 <= fake.max_in_flight <= 2


def test_key_never_leaks(onnx_models, tmp_path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeSegLens({"logits": OnnxSegmenter(onnx_models["logits"])}, api_key="the-right-key")
    monkeypatch.setenv("SEGLENS_TEST_KEY", KEY)
    with serve(fake.app) as url:
        manifest = _manifest(
            tmp_path, "m", kind="rest", url=url, options={"api_key_env": "SEGLENS_TEST_KEY", "retries": 0}
        )
        segmenter = load_model(manifest)
        with pytest.raises(PredictError) as caught:
            segmenter.predict(_image())
        segmenter.close()
    error = caught.value
    text = "".join(traceback.format_exception(error)) + repr(error) + caplog.text + repr(segmenter)
    assert "HTTP 401" in str(error) and "bad credentials" in str(error)  # the server did echo it...
    assert KEY not in text and "***" in str(error)  # ...and we masked it
    assert KEY not in repr(Secret(KEY)) and KEY not in str(Secret(KEY))


def test_key_sources(tmp_path, monkeypatch) -> None:
    url = "http://127.0.0.1:9"  # never contacted: every case fails before a request
    with pytest.raises(ModelLoadError, match="clear text"):
        load_model(_manifest(tmp_path, "a", kind="rest", url=url, options={"api_key": KEY}))
    monkeypatch.delenv("SEGLENS_UNSET_KEY", raising=False)
    with pytest.raises(ModelLoadError, match="SEGLENS_UNSET_KEY"):
        load_model(
            _manifest(tmp_path, "b", kind="rest", url=url, options={"api_key_env": "SEGLENS_UNSET_KEY"})
        )

    class FakeKeyring:  # the keyring package's get_password, injected as the module
        @staticmethod
        def get_password(service: str, user: str) -> str | None:
            return KEY if (service, user) == ("seglens-test", "seglens") else None

    monkeypatch.setitem(sys.modules, "keyring", FakeKeyring)
    from app.inference.backends.http_client import resolve_api_key

    secret = resolve_api_key({"keyring_service": "seglens-test"}, url)
    assert secret is not None and secret.reveal() == KEY
    with pytest.raises(ModelLoadError, match="no key for service"):
        resolve_api_key({"keyring_service": "other"}, url)


# --- Open Inference Protocol v2: a real MLServer ----------------------------------------------------

RUNTIME = '''
import asyncio
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceResponse
from mlserver.utils import get_model_uri


class OnnxSegmentation(MLModel):
    """onnxruntime behind MLServer: decode the first input, run, encode every output."""

    async def load(self) -> bool:
        self._session = ort.InferenceSession(await get_model_uri(self._settings),
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        return True

    async def predict(self, payload):
        array = NumpyCodec.decode_input(payload.inputs[0])
        names = [o.name for o in self._session.get_outputs()]
        results = await asyncio.to_thread(self._session.run, names, {self._input: array})
        outputs = [NumpyCodec.encode_output(name=n, payload=r) for n, r in zip(names, results)]
        return InferenceResponse(model_name=self.name, outputs=outputs)
'''


def _mlserver_executable() -> str | None:
    candidates = [
        os.environ.get("SEGLENS_MLSERVER"),
        "/tmp/mlserver-venv/bin/mlserver",
        shutil.which("mlserver"),
    ]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def write_mlserver_repo(root: Path, models: dict[str, tuple[Path, dict[str, Any]]], port: int) -> Path:
    """An MLServer model repository: settings.json, runtime.py and one folder per model."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "runtime.py").write_text(RUNTIME, encoding="utf-8")
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": _free_port(),
        "metrics_endpoint": None,
        "parallel_workers": 0,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    for name, (onnx_path, tensors) in models.items():
        folder = root / name
        folder.mkdir(exist_ok=True)
        shutil.copy(onnx_path, folder / "model.onnx")
        doc = {
            "name": name,
            "implementation": "runtime.OnnxSegmentation",
            "parameters": {"uri": "./model.onnx"},
            **tensors,
        }
        (folder / "model-settings.json").write_text(json.dumps(doc), encoding="utf-8")
    return root


@contextmanager
def run_mlserver(root: Path, port: int, models: list[str]) -> Iterator[str]:
    """`mlserver start root` as a subprocess, until every model is ready; terminated on exit."""
    import httpx

    executable = _mlserver_executable()
    assert executable is not None
    log = (root / "mlserver.log").open("wb")
    proc = subprocess.Popen([executable, "start", str(root)], cwd=root, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # bounded: 60 s
            if proc.poll() is not None:
                break
            try:
                if all(httpx.get(f"{url}/v2/models/{m}/ready", timeout=1).status_code == 200 for m in models):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        else:
            pytest.fail("MLServer did not become ready: " + (root / "mlserver.log").read_text()[-2000:])
        assert proc.poll() is None, "MLServer exited: " + (root / "mlserver.log").read_text()[-2000:]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


V2_TENSORS = {
    "labels_u8": {
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, -1, -1, 3]}],
        "outputs": [{"name": "labels", "datatype": "UINT8", "shape": [1, -1, -1]}],
    },
    "logits": {
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 64, 128]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "shape": [1, 19, -1, -1]}],
    },
}


@pytest.fixture(scope="module")
def mlserver(onnx_models, tmp_path_factory) -> Iterator[str]:
    if _mlserver_executable() is None:
        if os.environ.get("SEGLENS_REQUIRE_MLSERVER") == "1":
            pytest.fail("MLServer not found: set SEGLENS_MLSERVER or build /tmp/mlserver-venv")
        pytest.skip("MLServer not installed (see this module's docstring)")
    port = _free_port()
    models = {name: (onnx_models[name], V2_TENSORS[name]) for name in V2_TENSORS}
    root = write_mlserver_repo(tmp_path_factory.mktemp("mlserver"), models, port)
    with run_mlserver(root, port, list(models)) as url:
        yield url


@pytest.mark.parametrize("name", ["labels_u8", "logits"])
def test_v2_mlserver_matches_local(mlserver, onnx_models, scenes, tmp_path, name) -> None:
    local = OnnxSegmenter(onnx_models[name])
    manifest = _manifest(
        tmp_path, name, kind="v2", url=mlserver, scheme="trainids", options={"read_timeout": 30}
    )
    remote = load_model(manifest)
    try:
        assert remote.info.backend == "v2" and remote.info.scheme == "trainids"
        assert remote.info.input.dtype == local.info.input.dtype
        assert remote.info.input.layout == local.info.input.layout
        image = np.asarray(Image.open(next(scenes.rglob("*_leftImg8bit.png"))).convert("RGB"))
        np.testing.assert_array_equal(remote.predict(image).labels, local.predict(image).labels)
        # The JSON numbers sent are exactly the local input tensor (table-built text, no formatting).
        body, _ = remote._request_body(remote.pixels(image))
        sent = np.asarray(json.loads(body)["inputs"][0]["data"], dtype=local.prepare(image).dtype)
        np.testing.assert_array_equal(sent, local.prepare(image).ravel())
        remote_run, local_run = _evaluate(scenes, remote), _evaluate(scenes, local)
        assert not remote_run.models[0].errors
        np.testing.assert_array_equal(remote_run.models[0].matrix, local_run.models[0].matrix)
    finally:
        remote.close()


def test_v2_errors_name_the_endpoint(mlserver, tmp_path) -> None:
    manifest = _manifest(
        tmp_path, "missing", kind="v2", url=mlserver, scheme="trainids", options={"retries": 0}
    )
    with pytest.raises(ModelLoadError) as caught:
        load_model(manifest)
    assert f"{mlserver}/v2/models/missing" in str(caught.value)
    with pytest.raises(ModelLoadError, match="names no classes"):
        load_model(_manifest(tmp_path, "labels_u8", kind="v2", url=mlserver))


# --- v2 binary tensor extension and Azure ML headers: a FastAPI implementation of the v2 REST protocol --


def fake_triton_v2(session_path: Path, seen: list[dict[str, str]]) -> Any:
    """A FastAPI implementation of the v2 REST endpoints with Triton's binary tensor extension (no Triton
    here to test against), over onnxruntime; records each request's headers."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(session_path), providers=["CPUExecutionProvider"])
    app = fastapi.FastAPI()
    meta = {
        "name": "seg",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 64, 128]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "shape": [1, 19, -1, -1]}],
    }

    @app.get("/v2/health/ready")
    def ready() -> dict[str, Any]:
        return {}

    @app.get("/v2/models/seg/versions/1")
    def metadata() -> dict[str, Any]:
        return meta

    @app.post("/v2/models/seg/versions/1/infer")
    async def infer(request: Request) -> Any:
        seen.append(dict(request.headers))
        body = await request.body()
        cut = int(request.headers["Inference-Header-Content-Length"])
        header = json.loads(body[:cut])
        tensor = np.frombuffer(body[cut:], dtype=np.float32).reshape(header["inputs"][0]["shape"])
        scores = session.run(["scores"], {"image": tensor})[0]
        raw = scores.tobytes()
        answer = json.dumps(
            {
                "model_name": "seg",
                "outputs": [
                    {
                        "name": "scores",
                        "datatype": "FP32",
                        "shape": list(scores.shape),
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
            }
        ).encode()
        return fastapi.Response(
            answer + raw,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(answer))},
        )

    return app


def test_v2_binary_extension_and_azure_headers(onnx_models, scenes, tmp_path, monkeypatch) -> None:
    local = OnnxSegmenter(onnx_models["logits"])
    seen: list[dict[str, str]] = []
    monkeypatch.setenv("SEGLENS_TEST_KEY", KEY)
    with serve(fake_triton_v2(onnx_models["logits"], seen)) as url:
        options = {
            "model": "seg",
            "version": "1",
            "binary_data": True,
            "api_key_env": "SEGLENS_TEST_KEY",
            "azureml_deployment": "blue",
        }
        remote = load_model(
            _manifest(tmp_path, "triton", kind="v2", url=url, scheme="trainids", options=options)
        )
        try:
            assert remote.info.extra["platform"] == "onnxruntime_onnx" and KEY not in repr(remote)
            remote_run, local_run = _evaluate(scenes, remote), _evaluate(scenes, local)
            assert not remote_run.models[0].errors
            np.testing.assert_array_equal(remote_run.models[0].matrix, local_run.models[0].matrix)
        finally:
            remote.close()
    headers = seen[0]
    assert headers["authorization"] == f"Bearer {KEY}" and headers["azureml-model-deployment"] == "blue"
    assert headers["accept-encoding"] == "identity"
