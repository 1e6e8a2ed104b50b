"""`seglens serve --evaluate DATASET`: /metrics/{model} shows numbers the evaluation service computed at
start-up, equal to `seglens evaluate`'s for the same models, with what they were computed on."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

from conftest import require
from modelzoo import make_onnx_segmenter

from app.cli import main as seglens
from app.core.domain.labels import CATEGORY_NAMES, TRAINIDS
from app.core.scenes.generator import generate

httpx = require("httpx")
require("fastapi")


def _serve(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, env=dict(os.environ), stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    def read() -> None:
        for line in proc.stderr or ():
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        line = lines.get(timeout=120)
        assert line is not None, "server exited early"
        if "Uvicorn running on " in line:
            return proc, line.split("Uvicorn running on ")[1].split()[0]


def test_serve_evaluates_its_models_with_the_service(tmp_path: Path) -> None:
    data = generate(tmp_path / "data", 3, size=(64, 128), seed=4)
    cat = make_onnx_segmenter(tmp_path / "cat.onnx", CATEGORY_NAMES, input_size=(32, 64), seed=1)
    city = make_onnx_segmenter(tmp_path / "city.onnx", TRAINIDS.names, input_size=(32, 64), seed=2)
    out = tmp_path / "ev.json"
    assert seglens(["evaluate", "--dataset", str(data), "--model", str(cat), "--model", str(city),
                    "--json", str(out), "-q"]) == 0  # fmt: skip
    expected = {m["name"]: m for m in json.loads(out.read_text())["models"]}
    cmd = [sys.executable, "-m", "app.server", "--model", f"a={cat}", "--model", f"b={city}", "--port", "0",
           "--evaluate", str(data)]  # fmt: skip
    proc, url = _serve(cmd)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for served, path in (("a", cat), ("b", city)):
                evaluation = client.get(f"/metrics/{served}").json()["evaluation"]
                entry = expected[path.stem]
                assert evaluation["metrics"]["miou"] == entry["metrics"]["miou"]
                assert evaluation["scheme"] == "categories" and evaluation["digest_matches"] is True
                assert "scheme categories, original labels, 3 images" in evaluation["source"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
