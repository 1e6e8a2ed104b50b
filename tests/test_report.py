"""`seglens report` and write_report on synthetic scenes with tiny real ONNX models: every format, the
numbers against the JSON document (result_document), embedded pictures, hostile names escaped everywhere."""

from __future__ import annotations

import csv
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import require
from modelzoo import centroids_from_colors, make_onnx_segmenter

from app.cli import main as seglens
from app.core.domain.labels import TRAINIDS
from app.core.io.datasets import open_dataset
from app.core.scenes.generator import generate
from app.evaluation.engine import Evaluator
from app.evaluation.predictors import SegmenterPredictor, choose_scheme
from app.evaluation.service import EvaluationRequest, evaluate
from app.inference.registry import load_model
from app.report import write_report
from app.report.cli import main as report_main
from app.report.data import build_report_data, rank_images
from app.report.run import TopMasks

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("data"), 6, size=(96, 192), seed=11)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    centroids = centroids_from_colors(TRAINIDS.colors)
    a = make_onnx_segmenter(root / "alpha.onnx", TRAINIDS.names, weights="centroid", centroids=centroids,
                            downsample=4, input_size=None)  # fmt: skip
    b = make_onnx_segmenter(root / f"{HOSTILE}.onnx", TRAINIDS.names, weights="centroid", centroids=centroids,
                            downsample=8, input_size=None)  # fmt: skip
    return a, b


@pytest.fixture(scope="module")
def written(scenes, models, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    paths = {
        "html": out / "r.html", "pdf": out / "r.pdf", "csv": out / "csv", "json": out / "r.json",
        "eval": out / "eval.json",
    }  # fmt: skip
    args = ["--dataset", str(scenes), "--model", str(models[0]), "--model", str(models[1]), "-q"]
    code = report_main([*args, "--out", str(paths["html"]), "--csv", str(paths["csv"]), "--json",
                        str(paths["json"]), "--top", "3"])  # fmt: skip
    assert code == 0
    assert seglens(["evaluate", *args, "--json", str(paths["eval"])]) == 0
    return paths


class _Page(HTMLParser):
    """Collects tables (by id) as rows of cell texts, every tag with its attributes, and all text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table = dict(attrs).get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}"


def _row(table: list[list[str]], label: str) -> list[str]:
    return next(r for r in table if r and r[0] == label)


def test_html_tables_hold_the_run_numbers(written) -> None:
    doc = json.loads(written["json"].read_text())
    page = _page(written["html"])
    a, b = doc["models"]
    summary = page.tables["summary"]
    miou = _row(summary, "mIoU")
    assert miou[1:3] == [_pct(a["metrics"]["miou"]), _pct(b["metrics"]["miou"])]
    assert miou[3] == f"{(b['metrics']['miou'] - a['metrics']['miou']) * 100:+.2f}"
    assert _row(summary, "pixel accuracy")[1:3] == [_pct(m["metrics"]["pixel_accuracy"]) for m in (a, b)]
    assert _row(summary, "latency P50")[1] == f"{a['latency_ms']['p50']:.1f} ms"
    per_class = page.tables["per-class"]
    header = per_class[0]
    assert header[:4] == ["class", "IoU A", "IoU B", "IoU B - A"]
    for name in doc["classes"]:
        row = _row(per_class, name)
        cells = dict(zip(header, row, strict=True))
        for stat, key in (("IoU", "iou"), ("precision", "precision"), ("recall", "recall"), ("F1", "f1")):
            assert cells[f"{stat} A"] == _pct(a["metrics"]["classes"][name][key]), (name, stat)
            assert cells[f"{stat} B"] == _pct(b["metrics"]["classes"][name][key]), (name, stat)
    cats = page.tables["categories"]
    assert _row(cats, "vehicle")[1] == _pct(a["metrics"]["categories"]["vehicle"]["iou"])
    per_image = page.tables["per-image"]
    assert len(per_image) == 1 + doc["dataset"]["images"]
    first = a["per_image"][0]
    assert _row(per_image, first["key"])[1] == _pct(first["miou"])


def test_report_numbers_equal_seglens_evaluate(written) -> None:
    report = json.loads(written["json"].read_text())
    evaluated = json.loads(written["eval"].read_text())
    for ours, theirs in zip(report["models"], evaluated["models"], strict=True):
        # Pixel counts are exact; iIoU sums float instance weights in completion order (last bits vary).
        assert ours["metrics"]["confusion"] == theirs["metrics"]["confusion"]
        assert ours["metrics"]["classes"].keys() == theirs["metrics"]["classes"].keys()
        for name, scores in ours["metrics"]["classes"].items():
            assert scores["iou"] == theirs["metrics"]["classes"][name]["iou"]
        assert ours["metrics"]["miou"] == theirs["metrics"]["miou"]
        assert ours["metrics"]["miiou"] == pytest.approx(theirs["metrics"]["miiou"], rel=1e-9, abs=1e-15)
        assert ours["digest"] == theirs["digest"]
    assert report["report"]["verdict"][0].startswith("B ")
    assert len(report["report"]["regressions"]) <= 3


def test_html_is_self_contained_and_never_scripted(written) -> None:
    source = written["html"].read_text(encoding="utf-8")
    page = _page(written["html"])
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "<script" not in source.lower()
    assert "link" not in tags and "iframe" not in tags and "object" not in tags
    for tag, attrs in page.tags:
        assert not [k for k in attrs if k.startswith("on")], (tag, attrs)
        for key in ("src", "href"):
            if key in attrs:
                assert str(attrs[key]).startswith("data:image/"), (tag, attrs[key][:40])
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    # delta chart + 2 heatmaps + legend + 4 pictures per example (at least one regression or improvement)
    assert len(images) >= 4 + 4
    assert "http://" not in source and "https://" not in source
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in str(csp[0]["content"])


def test_hostile_model_name_is_escaped_everywhere(written) -> None:
    source = written["html"].read_text(encoding="utf-8")
    assert HOSTILE not in source  # never as markup...
    page = _page(written["html"])
    text = "".join(page.text)
    assert HOSTILE in text  # ...but shown as text (title, summary, models, verdict)
    assert [t for t, a in page.tags if t == "img" and a.get("src") == "x"] == []
    assert _row(page.tables["models"], "name")[2] == HOSTILE


def test_pdf_pages_and_text(scenes, models, written) -> None:
    require("fpdf")
    pypdf = require("pypdf")
    args = ["--dataset", str(scenes), "--model", str(models[0]), "--model", str(models[1]), "-q"]
    assert report_main([*args, "--pdf", str(written["pdf"]), "--top", "3"]) == 0
    data = written["pdf"].read_bytes()
    assert data.startswith(b"%PDF")
    reader = pypdf.PdfReader(str(written["pdf"]))
    # summary + chart, per-class, confusion matrices, regressions, improvements, dataset and models
    assert len(reader.pages) == 6
    text = "\n".join(page.extract_text() for page in reader.pages)
    doc = json.loads(written["json"].read_text())
    assert "alpha" in text and HOSTILE in text
    for model in doc["models"]:
        assert _pct(model["metrics"]["miou"]) in text
    assert "Reproduce" in text and "seglens report" in text


def test_csv_columns_and_values(written) -> None:
    doc = json.loads(written["json"].read_text())
    a, b = doc["models"]
    with (written["csv"] / "per_class.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "class", "iou_a", "iou_b", "precision_a", "precision_b", "recall_a", "recall_b", "f1_a", "f1_b",
        "iiou_a", "iiou_b", "delta_iou_points",
    ]  # fmt: skip
    assert [r["class"] for r in rows] == doc["classes"]
    for row in rows:
        for role, model in (("a", a), ("b", b)):
            expected = model["metrics"]["classes"][row["class"]]["iou"]
            assert (row[f"iou_{role}"] == "") if expected is None else float(row[f"iou_{role}"]) == expected
    with (written["csv"] / "per_image.csv").open(newline="") as handle:
        images = list(csv.DictReader(handle))
    assert [r["image"] for r in images] == [r["key"] for r in a["per_image"]]
    for row, ra, rb in zip(images, a["per_image"], b["per_image"], strict=True):
        assert float(row["miou_a"]) == ra["miou"] and float(row["miou_b"]) == rb["miou"]
        assert math.isclose(float(row["delta_miou_points"]), (rb["miou"] - ra["miou"]) * 100)


@pytest.fixture(scope="module")
def run(scenes, models):
    dataset = open_dataset(scenes)
    predictors = [SegmenterPredictor(load_model(m)) for m in models]
    try:
        yield Evaluator(dataset, predictors, choose_scheme(None, predictors, dataset.gt_scheme)).run()
    finally:
        for p in predictors:
            p.segmenter.close()


def test_write_report_api_with_review(run, tmp_path) -> None:
    require("fpdf")
    pypdf = require("pypdf")
    key = run.dataset.refs[1].key
    review = {key: {"flagged": True, "tags": ["=HYPERLINK(1)", "night"], "note": "<script>alert(1)</script>"}}
    paths = write_report(
        run, tmp_path / "out", review=review, settings={"command": "seglens open x"}, top_n=2
    )
    assert sorted(p.name for p in paths) == sorted(
        ["report.html", "report.pdf", "per_class.csv", "per_image.csv", "report.json"]
    )
    source = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script" not in source and "&lt;script&gt;alert(1)&lt;/script&gt;" in source
    page = _page(tmp_path / "out" / "report.html")
    assert _row(page.tables["flagged"], key)[1:] == [
        "yes",
        "=HYPERLINK(1), night",
        "<script>alert(1)</script>",
    ]
    assert "not available" in source  # no masks given: predictions are marked, not invented
    assert "seglens open x" in "".join(page.text)
    with (tmp_path / "out" / "per_image.csv").open(newline="") as handle:
        flagged = next(r for r in csv.DictReader(handle) if r["image"] == key)
    assert flagged["flagged"] == "1" and flagged["tags"].startswith("'=")  # no formula for spreadsheets
    reader = pypdf.PdfReader(str(tmp_path / "out" / "report.pdf"))
    assert len(reader.pages) == 7  # the six of a comparison plus one of flagged images
    single = write_report(run, tmp_path / "one" / "x.html", formats=("html", "csv"))
    assert [p.name for p in single] == ["x.html", "x_per_class.csv", "x_per_image.csv"]
    with pytest.raises(ValueError, match="unknown report formats"):
        write_report(run, tmp_path, formats=("docx",))


def test_verdict_and_ranking(run) -> None:
    data = build_report_data(run, top_n=2)
    a, b = (m.scores.miou for m in data.models)
    word = "better" if b > a else "worse"
    assert f"is {word} than A" in data.verdict[0]
    assert f"{abs(b - a) * 100:.2f} mIoU points" in data.verdict[0]
    deltas = [r.delta for r in data.images if r.delta is not None]
    if any(d < 0 for d in deltas):
        assert data.regressions[0].delta == min(deltas)
        assert data.regressions[0].key in data.verdict[2]
    worst = rank_images(data.images, len(data.images))[0]
    assert [r.key for r in data.regressions] == [r.key for r in worst[:2]]


def test_kept_masks_are_exactly_the_top_images(scenes, models) -> None:
    dataset = open_dataset(scenes)
    keeper = TopMasks(1)
    result = evaluate(EvaluationRequest(dataset=scenes, models=tuple(map(str, models))), on_image=keeper)
    data = build_report_data(result, top_n=1)
    shown = [r.key for r in (*data.regressions, *data.improvements)]
    assert keeper.kept == len(shown) >= 1
    for key in shown:
        ref = dataset.find(key)
        assert ref is not None
        sample = dataset.load(ref)
        assert all(keeper.mask(i, sample) is not None for i in (0, 1))


def test_report_refuses_three_models(scenes, models, capsys) -> None:
    args = ["--dataset", str(scenes), *(x for m in (*models, models[0]) for x in ("--model", str(m)))]
    assert report_main(args) == 2
    assert "two in all" in capsys.readouterr().err
