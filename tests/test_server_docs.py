"""`seglens serve`'s /docs and /redoc work offline: the page names no CDN, and every script, style and icon
it loads comes from the running server itself (the assets shipped in the fastapi-offline wheel)."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import require
from modelzoo import make_onnx_segmenter

from app.core.domain.labels import CATEGORY_NAMES

httpx = require("httpx")
require("fastapi")
require("fastapi_offline")

KEY = "docs-test-key-1234"


def test_docs_and_assets_come_from_the_server(tmp_path: Path) -> None:
    from app.server.docs import assets_folder

    model = make_onnx_segmenter(tmp_path / "cat.onnx", CATEGORY_NAMES, input_size=(32, 64))
    cmd = [
        sys.executable,
        "-m",
        "app.server",
        "--model",
        f"cat={model}",
        "--port",
        "0",
        "--api-key-env",
        "SEGLENS_DOCS_KEY",
    ]
    proc = subprocess.Popen(
        cmd, env={**os.environ, "SEGLENS_DOCS_KEY": KEY}, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [*map(lines.put, proc.stderr or ()), lines.put(None)], daemon=True
    )
    reader.start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=60)
            assert line is not None, "server exited early"
            if "Uvicorn running on " in line:
                url = line.split("Uvicorn running on ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=30) as client:
            for page_path, wanted in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
                page = client.get(page_path)  # public: no key needed for the API description
                assert page.status_code == 200, page.text[:200]
                html = page.text
                assert "://" not in html, re.findall(r"[a-z]+://[^\"' ]+", html)  # no CDN, no absolute URL
                policy = page.headers["content-security-policy"]
                assert "script-src 'self'" in policy and "default-src 'none'" in policy
                sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
                assert any(s.endswith(wanted) for s in sources), sources
                for source in sources:
                    asset = client.get(source)
                    assert asset.status_code == 200, source
                    shipped = assets_folder() / source.rsplit("/", 1)[1]  # type: ignore[operator]
                    assert asset.content == shipped.read_bytes()
                assert client.get("/openapi.json").json()["info"]["title"] == "SegLens"
            # Only the listed files are served (and only they are public): nothing else under the folder.
            assert client.get("/docs-assets/..%2Fpyproject.toml").status_code in (401, 404)
            assert client.get("/docs-assets/nothing.js", headers={"X-API-Key": KEY}).status_code == 404
            assert client.get("/info").status_code == 401  # the data stays behind the key
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("server did not stop")
