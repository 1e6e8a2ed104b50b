"""Hosted APIs as deployed (issue 17), over real HTTP on 127.0.0.1: the team's P9 and P8 apps (REST presets),
three other teams' APIs through the generic HTTP adapter, and what every remote client must refuse
(unknown colours, another served model, oversized and endless bodies, PNGs declaring huge sizes).

The stand-ins (hosted_standins.py) run the same ONNX model as the local comparison. Where the format is
lossless (P8, team A, team B: masks at the upload's size) the hosted evaluation must equal the local one
exactly. P9 answers at 512x256 and team C at 224x224 whatever the upload: there the hosted labels must
equal the local labels nearest-resized to the server's size and back (that is all the format loses), and
the confusion matrices may differ by at most two counts per pixel that resize round trip changed (one
count leaves a cell, one arrives in another).
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require
from modelzoo import make_onnx_segmenter
from servers import serve_app

from app.core.domain.errors import ModelLoadError, PredictError
from app.core.domain.labels import eval_scheme_by_key
from app.core.io.datasets import open_dataset
from app.core.io.imageio import read_image
from app.core.scenes.generator import generate
from app.evaluation.engine import Evaluator
from app.evaluation.predictors import SegmenterPredictor
from app.inference.backends.http_backend import HttpSegmenter
from app.inference.backends.http_client import ClientSettings, HttpClient, RemoteTimings
from app.inference.backends.onnx_backend import OnnxSegmenter
from app.inference.backends.rest_presets import APP_CLASSES, APP_COLOURS
from app.inference.base import Segmenter
from app.inference.postprocess import resize_labels_nearest
from app.inference.registry import load_model

fastapi = require("fastapi")
require("uvicorn")
require("python_multipart")
from hosted_standins import HostedStandIns, endless, huge_png  # noqa: E402  (needs fastapi)

# Module level on purpose: FastAPI resolves the (string) annotations of routes in the module's globals.
Request = fastapi.Request


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hosted-model")
    # uint8 NHWC in, labels out, any size: what the scoring scripts and stand-ins run, and the local peer.
    return make_onnx_segmenter(
        root / "app8.onnx",
        APP_CLASSES,
        input_size=None,
        seed=7,
        output="labels",
        input_dtype="uint8",
        layout="NHWC",
        hidden=16,
    )


@pytest.fixture(scope="module")
def local(model_path: Path) -> Any:
    model = OnnxSegmenter(model_path)
    yield model
    model.close()


@pytest.fixture(scope="module")
def small_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("hosted-small"), 4, size=(96, 192), seed=11)


@pytest.fixture(scope="module")
def large_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Larger than P9's 512x256: the server's resize loses detail here.
    return generate(tmp_path_factory.mktemp("hosted-large"), 3, size=(300, 600), seed=12)


@pytest.fixture(scope="module")
def standins(local: Segmenter) -> HostedStandIns:
    return HostedStandIns(local, models=("segformer_b0_fp32", "segformer_b0_int8"))


def _manifest(tmp_path: Path, name: str, **fields: Any) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, **fields}), encoding="utf-8")
    return path


def _evaluate(root: Path, model: Segmenter) -> Any:
    run = Evaluator(
        open_dataset(root), [SegmenterPredictor(model)], eval_scheme_by_key("categories"), workers=2
    ).run()
    assert not run.models[0].errors, run.models[0].errors
    return run.models[0]


def _images(root: Path) -> list[np.ndarray]:
    return [read_image(p) for p in sorted(root.rglob("*_leftImg8bit.png"))]


def _same_evaluation(root: Path, remote: Segmenter, local: Segmenter) -> None:
    hosted, here = _evaluate(root, remote), _evaluate(root, local)
    assert len(hosted.images) == len(here.images) > 0
    np.testing.assert_array_equal(hosted.matrix, here.matrix)


def _within_resize_loss(root: Path, remote: Segmenter, local: Segmenter, server_size: tuple[int, int]) -> int:
    changed = 0
    for image in _images(root):
        labels = local.predict(image).labels
        round_trip = resize_labels_nearest(resize_labels_nearest(labels, server_size), labels.shape)
        np.testing.assert_array_equal(remote.predict(image).labels, round_trip)
        changed += int((round_trip != labels).sum())
    hosted, here = _evaluate(root, remote), _evaluate(root, local)
    difference = int(np.abs(hosted.matrix.astype(np.int64) - here.matrix.astype(np.int64)).sum())
    assert difference <= 2 * changed
    return changed


# --- P9 -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p9(standins: HostedStandIns) -> Any:
    with serve_app(standins.p9()) as url:
        yield url


def _p9(tmp_path: Path, url: str, model: str = "segformer_b0_fp32", **options: Any) -> Segmenter:
    return load_model(
        _manifest(tmp_path, "p9", kind="rest", url=url, options={"api": "p9", "model": model, **options})
    )


def test_p9_request_format_timing_and_lossless_evaluation(
    p9, standins, local, small_scenes, tmp_path
) -> None:
    remote = _p9(tmp_path, p9)
    again = _p9(tmp_path, p9)
    # The same model id on the same server: the same digest (cache key), though /health's clock moved.
    other = _p9(tmp_path, p9, "segformer_b0_int8")
    assert again.info.digest == remote.info.digest != other.info.digest
    again.close()
    other.close()
    try:
        assert isinstance(remote, HttpSegmenter) and remote.info.backend == "rest-p9"
        assert remote.info.class_names == APP_CLASSES
        assert remote.info.extra["served_model"] == "segformer_b0_fp32"
        image = _images(small_scenes)[0]
        standins.seen.clear()
        prediction = remote.predict(image)
        # multipart field `image`, ?model=ID: what the app reads
        assert standins.seen == [{"fields": ["image"], "model": "segformer_b0_fp32"}]
        assert prediction.labels.shape == image.shape[:2]
        assert len(np.unique(prediction.labels)) > 1
        timings = prediction.timings
        assert isinstance(timings, RemoteTimings) and timings.server_reported
        assert timings.inference_ms > 0 and timings.network_ms >= 0
        # 96x192 up to 256x512 and back is exact: the evaluation equals the local one.
        _same_evaluation(small_scenes, remote, local)
    finally:
        remote.close()


def test_p9_larger_images_within_resize_loss(p9, local, large_scenes, tmp_path) -> None:
    remote = _p9(tmp_path, p9)
    try:
        assert _within_resize_loss(large_scenes, remote, local, (256, 512)) > 0  # the loss is real
    finally:
        remote.close()


def test_p9_checks_the_served_model(p9, standins, tmp_path) -> None:
    with pytest.raises(
        ModelLoadError, match=r"no model 'segformer_b9'.*segformer_b0_fp32, segformer_b0_int8"
    ):
        _p9(tmp_path, p9, model="segformer_b9")
    with pytest.raises(ModelLoadError, match=r"needs options.model"):
        load_model(_manifest(tmp_path, "p9x", kind="rest", url=p9, options={"api": "p9"}))
    remote = _p9(tmp_path, p9, retries=0)
    try:
        standins.faults.append("wrong_model")
        with pytest.raises(
            PredictError, match=r"answered by model 'segformer_b1_fp32', expected 'segformer_b0_fp32'"
        ):
            remote.predict(np.zeros((32, 64, 3), np.uint8))
        standins.faults.append(("error", 400, "Format d'image non supporté"))
        with pytest.raises(PredictError, match=r"HTTP 400.*Format d'image non supporté"):
            remote.predict(np.zeros((32, 64, 3), np.uint8))
    finally:
        standins.faults.clear()
        remote.close()


def test_unknown_colour_is_named(p9, standins, tmp_path) -> None:
    remote = _p9(tmp_path, p9, retries=0)
    try:
        standins.faults.append("stray_colour")
        with pytest.raises(PredictError, match=r"\(1, 2, 3\) on 15 pixels"):
            remote.predict(np.zeros((32, 64, 3), np.uint8))
    finally:
        standins.faults.clear()
        remote.close()


def test_huge_png_refused_before_decoding(p9, standins, tmp_path) -> None:
    remote = _p9(tmp_path, p9, retries=0)
    try:
        standins.faults.append("huge_png")
        with pytest.raises(PredictError, match=r"declares 13000x13000 pixels; refused before decoding"):
            remote.predict(np.zeros((32, 64, 3), np.uint8))
    finally:
        standins.faults.clear()
        remote.close()


def test_endless_body_is_cut_at_the_cap(p9, standins, tmp_path) -> None:
    remote = _p9(tmp_path, p9, retries=0, max_response_bytes=1 << 20)
    try:
        standins.faults.append("endless")
        tracemalloc.start()
        try:
            with pytest.raises(PredictError, match=r"longer than 1,048,576 bytes"):
                remote.predict(np.zeros((32, 64, 3), np.uint8))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20  # the cap (1 MB) and its join, not the body (which never ends)
        # The connection was dropped, not drained: the next request works.
        assert remote.predict(np.zeros((32, 64, 3), np.uint8)).labels.shape == (32, 64)
    finally:
        standins.faults.clear()
        remote.close()


# --- P8 -----------------------------------------------------------------------------------------------


def test_p8_json_base64_and_lossless_evaluation(standins, local, small_scenes, tmp_path) -> None:
    with serve_app(standins.p8()) as url:
        remote = load_model(_manifest(tmp_path, "p8", kind="rest", url=url, options={"api": "p8"}))
        try:
            assert remote.info.backend == "rest-p8"
            standins.seen.clear()
            prediction = remote.predict(_images(small_scenes)[0])
            assert standins.seen == [{"keys": ["image"]}]
            assert isinstance(prediction.timings, RemoteTimings) and prediction.timings.server_reported
            _same_evaluation(small_scenes, remote, local)
            _same_evaluation(small_scenes, remote, local)  # and again: nothing cached wrongly
        finally:
            remote.close()


# --- other teams through the generic adapter ----------------------------------------------------------


def test_team_a_multipart_file_form_field_png_body(standins, local, small_scenes, tmp_path) -> None:
    with serve_app(standins.team_a()) as url:
        options = {
            "path": "/predict/mask",
            "request": {"format": "multipart", "field": "file", "form": {"model_name": "unet"}},
            "response": {"format": "png"},
            "encoding": "indices",
        }
        manifest = _manifest(
            tmp_path, "team-a", kind="http", url=url, class_names=list(APP_CLASSES), options=options
        )
        remote = load_model(manifest)
        try:
            assert remote.info.backend == "http"
            _same_evaluation(small_scenes, remote, local)
            standins.faults.extend(["huge_png", "error_200"])
            with pytest.raises(PredictError, match="13000x13000"):
                remote.predict(_images(small_scenes)[0])
            with pytest.raises(PredictError, match="reports an error: modèle non chargé"):
                remote.predict(_images(small_scenes)[0])
        finally:
            standins.faults.clear()
            remote.close()
        wrong = {**options, "request": {"field": "file", "form": {"model_name": "vgg"}}, "retries": 0}
        remote = load_model(
            _manifest(tmp_path, "team-a2", kind="http", url=url, class_names=list(APP_CLASSES), options=wrong)
        )
        try:
            with pytest.raises(PredictError, match=r"HTTP 400.*unknown model_name vgg"):
                remote.predict(_images(small_scenes)[0])
        finally:
            remote.close()


def test_team_b_trailing_slash_json_colour_png(standins, local, small_scenes, tmp_path) -> None:
    with serve_app(standins.team_b()) as url:
        options = {
            "path": "/predict/",
            "response": {"format": "json_png", "key": "image_base64"},
            "encoding": "palette",
            "colors": [list(c) for c in APP_COLOURS],
        }
        remote = load_model(
            _manifest(
                tmp_path, "team-b", kind="http", url=url, class_names=list(APP_CLASSES), options=options
            )
        )
        try:
            _same_evaluation(small_scenes, remote, local)
        finally:
            remote.close()


def test_team_c_nested_index_list_at_224(standins, local, small_scenes, tmp_path) -> None:
    with serve_app(standins.team_c()) as url:
        options = {"path": "/segment", "response": {"format": "json_indices", "key": "mask"}}
        remote = load_model(
            _manifest(
                tmp_path, "team-c", kind="http", url=url, class_names=list(APP_CLASSES), options=options
            )
        )
        try:
            _within_resize_loss(small_scenes, remote, local, (224, 224))
        finally:
            remote.close()


def test_http_manifest_mistakes_are_named(tmp_path) -> None:
    url = "http://127.0.0.1:9"
    cases = [
        ({"request": {"format": "xml"}}, "options.request.format must be one of multipart, json, raw"),
        ({"response": {"format": "json_png"}}, "options.response.key is needed"),
        ({"headers": {"Authorization": "Bearer x"}}, "stored in clear text"),
        ({"path": "https://elsewhere/predict"}, "a path on the server"),
        ({"colors": [[0, 0, 0], [0, 0, 0]]}, "two classes share a colour"),
    ]
    for options, message in cases:
        with pytest.raises(ModelLoadError, match=message):
            load_model(_manifest(tmp_path, "bad", kind="http", url=url, scheme="categories", options=options))


# --- the cap and the PNG header check for every client ------------------------------------------------


def test_cap_applies_to_every_client(tmp_path) -> None:
    """An endless answer on /v2 (the v2 backend's client) and a declared oversize body are refused."""
    app = fastapi.FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> Any:
        return fastapi.responses.StreamingResponse(endless(), media_type="application/json")

    @app.get("/big")
    def big() -> Any:
        return fastapi.responses.Response(b"x" * 300_000, media_type="application/octet-stream")

    with serve_app(app) as url:
        manifest = _manifest(
            tmp_path,
            "m",
            kind="v2",
            url=url,
            scheme="categories",
            options={"retries": 0, "max_response_bytes": 100_000},
        )
        with pytest.raises(ModelLoadError, match=r"longer than 100,000 bytes"):
            load_model(manifest)
        client = HttpClient(url, settings=ClientSettings(retries=0, max_response_bytes=100_000))
        try:
            with pytest.raises(PredictError, match=r"declares 300,000 bytes; the limit is 100,000"):
                client.request("GET", "/big")
        finally:
            client.close()


def test_png_header_check_unit() -> None:
    from app.inference.backends.remote_masks import check_png_size, decode_png

    assert check_png_size(huge_png(300, 200), "x") == (300, 200)
    with pytest.raises(PredictError, match=r"13000x13000"):
        decode_png(huge_png(), "x")
    with pytest.raises(PredictError, match=r"not a PNG"):
        decode_png(b"GIF89a" + b"\0" * 40, "x")


# --- Azure ML conventions: /score, Bearer key, deployment header; the dialog's typed key ----------------

AZURE_KEY = "aml-secret-DO-NOT-LEAK-5150"


def _azure_like(standins: HostedStandIns) -> Any:
    """/score as azmlinfsrv answers it (run()'s return value as JSON; here json.dumps of it, as scoring
    scripts often return a string), behind an endpoint's key and deployment routing."""
    import base64

    from hosted_standins import png_bytes

    app = fastapi.FastAPI()
    seen: list[dict[str, str]] = []

    @app.get("/")
    def healthy() -> Any:
        return fastapi.responses.PlainTextResponse("Healthy")

    @app.post("/score")
    async def score(request: Request) -> Any:
        seen.append({k: v for k, v in request.headers.items() if k.startswith(("authorization", "azureml"))})
        if request.headers.get("authorization") != f"Bearer {AZURE_KEY}":
            return fastapi.responses.JSONResponse({"message": "key_auth_access_denied"}, 401)
        body = await request.json()
        labels = standins.labels(base64.b64decode(body["image"]))
        return json.dumps({"mask": base64.b64encode(png_bytes(labels)).decode()})

    app.state.seen = seen
    return app


def test_azureml_key_deployment_header_and_string_answers(
    standins, local, small_scenes, tmp_path, monkeypatch, caplog
) -> None:
    app = _azure_like(standins)
    monkeypatch.setenv("AML_TEST_KEY", AZURE_KEY)
    with serve_app(app) as url:
        options = {"api_key_env": "AML_TEST_KEY", "azureml_deployment": "green", "encoding": "indices"}
        manifest = _manifest(
            tmp_path, "aml", kind="azureml", url=url, class_names=list(APP_CLASSES), options=options
        )
        remote = load_model(manifest)
        try:
            _same_evaluation(small_scenes, remote, local)
        finally:
            remote.close()
        assert app.state.seen[0] == {
            "authorization": f"Bearer {AZURE_KEY}",
            "azureml-model-deployment": "green",
        }
        monkeypatch.setenv("AML_TEST_KEY", "wrong-key")
        denied = load_model(manifest)
        try:
            with pytest.raises(PredictError, match="HTTP 401: key_auth_access_denied") as caught:
                denied.predict(_images(small_scenes)[0])
            assert "wrong-key" not in str(caught.value) and "wrong-key" not in repr(denied)
        finally:
            denied.close()
    assert AZURE_KEY not in caplog.text and "wrong-key" not in caplog.text


def test_connection_check_with_a_typed_key(standins, tmp_path) -> None:
    """The dialog's key (not yet in the keyring) reaches the server as Bearer and no further."""
    import os

    from app.inference.backends.remote_check import try_connection

    app = _azure_like(standins)
    before = dict(os.environ)
    with serve_app(app) as url:
        document = {
            "name": "aml",
            "kind": "azureml",
            "url": url,
            "class_names": list(APP_CLASSES),
            "options": {"keyring_service": "seglens:aml", "encoding": "indices"},
        }
        check = try_connection(document, np.zeros((48, 96, 3), np.uint8), key=AZURE_KEY)
        assert check.backend == "azureml" and check.image_size == (48, 96)
        assert AZURE_KEY not in check.describe()
        with pytest.raises(ModelLoadError, match=r"needs the 'keyring' package|no key for service"):
            try_connection(document, np.zeros((48, 96, 3), np.uint8))  # no typed key: the keyring is asked
    assert dict(os.environ) == before  # the key's variable is gone again


def test_v2_output_shape_checked_before_decoding() -> None:
    from app.inference.backends.v2_backend import _decode_tensor

    with pytest.raises(PredictError, match=r"declares shape \[1, 13000, 13000\].*refused before decoding"):
        _decode_tensor({"name": "labels", "datatype": "UINT8", "shape": [1, 13000, 13000]}, b"\0" * 16, "x")
    with pytest.raises(PredictError, match="16 bytes of data for shape"):
        _decode_tensor({"name": "labels", "datatype": "UINT8", "shape": [1, 8, 4]}, b"\0" * 16, "x")


def test_health_problems_are_named(standins, tmp_path) -> None:
    app = fastapi.FastAPI()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "healthy", "model_loaded": False}

    with serve_app(standins.team_b()) as url:
        manifest = _manifest(
            tmp_path,
            "b",
            kind="http",
            url=url,
            scheme="categories",
            options={"health": "/status", "retries": 0},
        )
        with pytest.raises(ModelLoadError, match=r"/status: HTTP 404.*null skips the check"):
            load_model(manifest)
    with serve_app(app) as url, pytest.raises(ModelLoadError, match="not loaded or not ready"):
        load_model(_manifest(tmp_path, "c", kind="http", url=url, scheme="categories"))


def test_raw_body_with_query_and_headers(standins, local, small_scenes, tmp_path) -> None:
    with serve_app(standins.team_a()) as url:
        options = {
            "path": "/predict/raw",
            "params": {"version": 3},
            "headers": {"X-Client": "seglens"},
            "request": {"format": "raw", "content_type": "image/png"},
        }
        remote = load_model(
            _manifest(tmp_path, "raw", kind="http", url=url, class_names=list(APP_CLASSES), options=options)
        )
        try:
            standins.seen.clear()
            _same_evaluation(small_scenes, remote, local)
            assert standins.seen[0] == {"type": "image/png", "version": "3", "client": "seglens"}
        finally:
            remote.close()
