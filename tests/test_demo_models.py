"""The shipped demo models (models/demo/): they open, stay small, and keep the validation mIoU their cards
state on a freshly generated validation set (same generator, seed, split, size and count)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.core.domain.labels import eval_scheme_by_key
from app.core.io.datasets import Dataset, open_dataset
from app.core.scenes.generator import generate
from app.evaluation.engine import Evaluator
from app.evaluation.predictors import SegmenterPredictor
from app.inference.registry import load_model

DEMO = Path(__file__).resolve().parents[1] / "models" / "demo"
MODELS_LIMIT_MB = 80

pytestmark = pytest.mark.skipif(
    not (DEMO / "demo.json").is_file(), reason="no demo models shipped yet (models/demo/demo.json missing)"
)


def _expected() -> dict[str, Any]:
    path = DEMO / "expected.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The demo validation set, regenerated exactly as the cards describe it."""
    specs = {json.dumps(entry["validation"], sort_keys=True) for entry in _expected().values()}
    assert len(specs) == 1, "both demo models must be validated on the same set"
    spec = json.loads(specs.pop())
    root = tmp_path_factory.mktemp("demo-val")
    generate(root, spec["count"], tuple(spec["size"]), seed=spec["seed"], split=spec["split"])
    return open_dataset(root, spec["split"])


def test_demo_pair_points_at_shipped_models_with_manifests() -> None:
    demo = json.loads((DEMO / "demo.json").read_text(encoding="utf-8"))
    assert demo["scheme"] == "categories"
    expected = _expected()
    # A and B, and the models the demo also puts in the Leaderboard dock (an FP32 beside its INT8).
    assert {e["file"] for e in expected.values()} == {demo["a"], demo["b"], *demo.get("leaderboard", [])}
    for name, entry in expected.items():
        assert (DEMO / entry["file"]).is_file()
        # The registry finds a manifest beside a model as <file stem>.json.
        manifest = json.loads((DEMO / entry["file"]).with_suffix(".json").read_text(encoding="utf-8"))
        assert manifest["path"] == entry["file"] and manifest["name"] == name
        assert (DEMO / f"{name}.md").is_file()


def test_models_folder_stays_small() -> None:
    total = sum(p.stat().st_size for p in DEMO.parent.rglob("*") if p.is_file())
    assert total < MODELS_LIMIT_MB * 1024 * 1024


@pytest.mark.parametrize("name", sorted(_expected()))
def test_validation_miou_matches_the_card(name: str, validation: Dataset) -> None:
    entry = _expected()[name]
    segmenter = load_model(DEMO / entry["file"])  # the manifest beside it names the model and scheme
    try:
        assert segmenter.info.name == name
        for key, miou in entry["miou"].items():
            run = Evaluator(validation, [SegmenterPredictor(segmenter)], eval_scheme_by_key(key)).run()
            got = run.models[0].scores.miou
            assert got == pytest.approx(miou, abs=entry["tolerance"]), f"{name} {key} mIoU"
    finally:
        segmenter.close()
