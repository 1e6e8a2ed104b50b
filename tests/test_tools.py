"""Tools menu: hosted models added from the GUI, benchmark, export and quantize wiring."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from conftest import require
from modelzoo import make_onnx_segmenter

from app.core.domain.errors import InputError
from app.core.domain.labels import TRAINIDS
from app.core.scenes.generator import generate
from app.inference.backends.remote_models import RemoteModelRequest, remote_manifest, save_remote


def _request(**overrides) -> RemoteModelRequest:
    fields = dict(
        name="seg-prod",
        protocol="rest",
        url="http://127.0.0.1:9",
        model="",
        key_env="",
        key="",
        azureml_deployment="",
        scheme="",
        slot=0,
    )
    fields.update(overrides)
    return RemoteModelRequest(**fields)


def test_manifest_never_holds_the_key(tmp_path, monkeypatch) -> None:
    stored = {}
    fake = types.ModuleType("keyring")
    fake.set_password = lambda service, user, key: stored.__setitem__((service, user), key)
    monkeypatch.setitem(sys.modules, "keyring", fake)
    path = save_remote(_request(key="s3cr3t-key", model="segformer", protocol="v2"), tmp_path)
    text = path.read_text()
    assert "s3cr3t-key" not in text
    manifest = json.loads(text)
    assert manifest == {
        "name": "seg-prod",
        "kind": "v2",
        "url": "http://127.0.0.1:9",
        "options": {"model": "segformer", "keyring_service": "seglens:seg-prod"},
    }
    assert stored == {("seglens:seg-prod", "seglens"): "s3cr3t-key"}


def test_env_variable_key_and_validation() -> None:
    manifest = remote_manifest(_request(key_env="SEG_KEY", azureml_deployment="blue", scheme="trainids"))
    assert manifest["options"] == {"api_key_env": "SEG_KEY", "azureml_deployment": "blue"}
    assert manifest["scheme"] == "trainids"
    with pytest.raises(InputError, match="http"):
        remote_manifest(_request(url="ftp://x"))
    with pytest.raises(InputError, match="name"):
        remote_manifest(_request(name="bad name/.."))


@pytest.mark.gui
def test_hosted_model_from_the_gui_evaluates_like_local(qtbot, tmp_path, monkeypatch) -> None:
    require("fastapi")
    from servers import serve_app

    from app.controllers.main_controller import MainController
    from app.evaluation.engine import Evaluator
    from app.evaluation.predictors import SegmenterPredictor
    from app.inference.registry import load_model
    from app.server.app import create_app

    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    data = generate(tmp_path / "data", 3, size=(64, 128), seed=2)
    path = make_onnx_segmenter(tmp_path / "served.onnx", TRAINIDS.names, input_size=None, seed=5)
    local = load_model(path)
    with serve_app(create_app({"served": local})) as url:
        ctrl = MainController()
        qtbot.addWidget(ctrl.window)
        ctrl.auto_evaluate = False
        try:
            manifest = save_remote(_request(name="hosted", url=url), tmp_path / "remote")
            with qtbot.waitSignal(ctrl.dataset_loaded, timeout=20_000):
                ctrl.open_dataset(data)
            with qtbot.waitSignal(ctrl.model_loaded, timeout=20_000):
                ctrl.set_model(0, manifest)
            assert ctrl.predictors[0].info.backend == "rest"
            with qtbot.waitSignal(ctrl.evaluation_finished, timeout=60_000):
                ctrl.evaluate()
            reference = Evaluator(ctrl.dataset, [SegmenterPredictor(local)], ctrl.scheme).run()
            np.testing.assert_array_equal(ctrl.live[0].matrix, reference.models[0].matrix)
            # Benchmark from the Tools menu lands in the log as a table.
            ctrl.window.benchmark_action.trigger()
            qtbot.waitUntil(lambda: "P50" in ctrl.window.log.toPlainText(), timeout=60_000)
        finally:
            ctrl.shutdown()
    local.close()
