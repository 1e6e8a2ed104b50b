"""The report as one self-contained HTML file: inline CSS, pictures as data: URIs, no script, no link out.

Every piece of text that comes from the user or from a file (model names, paths, image keys, class names,
notes) goes through `_e` (html.escape with quotes), and the page carries a Content-Security-Policy that
forbids scripts and every network load, so even a missed escape could not run code or phone home.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from app import __version__
from app.core.io.fileutil import atomic_write_text
from app.evaluation.results import ModelResult
from app.report.charts import mime_type
from app.report.data import (
    ReportData,
    categories,
    class_stat,
    delta_points,
    file_name,
    mapping_rows,
    ms,
    pct,
    points,
    score,
    size_text,
)
from app.report.figures import Example, Figures
from app.report.html_analysis import boundary_section, label_error_section, missed_section, seed_table
from app.report.markup import Cell
from app.report.markup import delta_cell as _delta_cell
from app.report.markup import esc as _e
from app.report.markup import table as _table

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121;
       margin: 0 auto; max-width: 1180px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px;
     border-bottom: 2px solid #e0e0e0; padding-bottom: 4px; }
.meta { color: #616161; margin: 0 0 16px; }
.verdict { background: #f5f7fb; border-left: 6px solid #1565c0; padding: 12px 18px; margin: 12px 0; }
.verdict p { margin: 4px 0; } .verdict p.headline { font-size: 20px; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #e0e0e0; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #fafafa; } td.text, th.text { text-align: left; }
td.neg { color: #c62828; font-weight: 600; } td.pos { color: #2e7d32; }
td.mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
img { max-width: 100%; height: auto; }
.strip { display: grid; grid-template-columns: repeat(4, 1fr); gap: 6px; margin: 4px 0 18px; }
.strip figure { margin: 0; } .strip figcaption { font-size: 12px; color: #616161; }
.example h3 { font-size: 15px; margin: 14px 0 2px; word-break: break-all; }
.missing { background: #eeeeee; color: #757575; padding: 30px 6px; text-align: center; font-size: 12px; }
pre { background: #f5f5f5; padding: 10px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
details { margin: 8px 0; } summary { cursor: pointer; color: #1565c0; }
.heatmaps { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
@media print { .strip { break-inside: avoid; } h2 { break-after: avoid; } }
"""


def _img(data: bytes, alt: str) -> str:
    uri = f"data:{mime_type(data)};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<img src="{uri}" alt="{_e(alt)}">'


def render_html(data: ReportData, figures: Figures) -> str:
    """The whole report page."""
    names = " vs ".join(m.info.name for m in data.models[:2])
    parts = [
        _header(data, names),
        _verdict(data, figures),
        _summary(data),
        seed_table(data),
        _per_class(data),
        _categories(data),
        boundary_section(data),
        label_error_section(data),
        missed_section(data),
        _heatmaps(data, figures),
        _examples("Largest regressions (B worse than A)", "regressions", figures.regressions, data),
        _examples("Largest improvements (B better than A)", "improvements", figures.improvements, data),
        _flagged(data, figures),
        _models(data),
        _per_image(data),
        _errors(data),
        _reproduce(data),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e('SegLens report: ' + names)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(p for p in parts if p)
        + "\n</body></html>\n"
    )


def write_html(data: ReportData, figures: Figures, path: str | Path) -> Path:
    """Render and write atomically; returns the path."""
    target = Path(path)
    atomic_write_text(target, render_html(data, figures))
    return target


def _header(data: ReportData, names: str) -> str:
    result = data.result
    split = f", split {result.dataset.split}" if result.dataset.split else ""
    return (
        f"<h1>{_e('SegLens comparison: ' + names)}</h1>"
        f'<p class="meta">{_e(result.dataset.root)}{_e(split)} &middot; {_e(result.basis())} &middot; '
        f"SegLens {_e(__version__)} &middot; {_e(data.created)}</p>"
    )


def _verdict(data: ReportData, figures: Figures) -> str:
    lines = "".join(
        f'<p class="{"headline" if i == 0 else ""}">{_e(line)}</p>' for i, line in enumerate(data.verdict)
    )
    chart = ""
    if figures.delta_chart is not None:
        chart = "<h2>Per-class IoU change</h2>" + _img(figures.delta_chart, "per-class IoU delta B - A")
    return f'<section class="verdict" id="verdict">{lines}</section>{chart}'


def _summary_rows(data: ReportData) -> list[list[str | Cell]]:
    models = data.models[:2]
    rows: list[list[str | Cell]] = []
    for label, key in (
        ("mIoU", "miou"),
        ("category mIoU", "mean_category_iou"),
        ("iIoU (mean)", "miiou"),
        ("category iIoU", "mean_category_iiou"),
        ("pixel accuracy", "pixel_accuracy"),
    ):
        values = [score(m, key) for m in models]
        row: list[str | Cell] = [label, *(pct(v) for v in values)]
        if data.two:
            row.append(_delta_cell(delta_points(values[0], values[1])))
        rows.append(row)
    extra: list[tuple[str, list[str]]] = [
        (f"latency {q.upper()}", [ms(getattr(m.latency, q)) for m in models]) for q in ("p50", "p95", "p99")
    ]
    extra += [
        ("model file size", [size_text(m.info.file_size) for m in models]),
        ("memory (RSS growth on load)", [size_text(v) for v in data.memory[:2]]),
        ("images evaluated", [str(m.images_evaluated) for m in models]),
        ("images failed", [str(len(m.errors)) for m in models]),
    ]
    for label, cells in extra:
        rows.append([label, *cells, *([""] if data.two else [])])
    return rows


def _summary(data: ReportData) -> str:
    headers = ["metric", *(f"{data.role(i)}: {m.info.name}" for i, m in enumerate(data.models[:2]))]
    if data.two:
        headers.append("B - A (points)")
    return "<h2>Summary</h2>" + _table("summary", headers, _summary_rows(data))


def _per_class(data: ReportData) -> str:
    metrics = data.models[:2]
    roles = [data.role(i) for i in range(len(metrics))]
    headers = ["class"]
    for stat in ("IoU", "precision", "recall", "F1", "iIoU"):
        headers += [f"{stat} {r}" for r in roles]
        if stat == "IoU" and data.two:
            headers.append("IoU B - A")
    rows: list[list[str | Cell]] = []
    for k, name in enumerate(data.classes):
        row: list[str | Cell] = [name]
        for stat in ("iou", "precision", "recall", "f1", "iiou"):
            row += [pct(class_stat(m, stat, k)) for m in metrics]
            if stat == "iou" and data.two:
                row.append(_delta_cell(data.class_deltas[k]))
        rows.append(row)
    note = '<p class="meta">Scores in percent; deltas in percentage points; "-" = undefined.</p>'
    return "<h2>Per-class scores</h2>" + note + _table("per-class", headers, rows)


def _categories(data: ReportData) -> str:
    cats = [categories(m) for m in data.models[:2]]
    if not cats or not cats[0]:
        return ""
    roles = [data.role(i) for i in range(len(cats))]
    headers = ["category", *(f"IoU {r}" for r in roles)]
    headers += ["IoU B - A"] if data.two else []
    headers += [f"iIoU {r}" for r in roles]
    rows: list[list[str | Cell]] = []
    for c, (name, _, _) in enumerate(cats[0]):
        values = [cat[c][1] for cat in cats]
        row: list[str | Cell] = [name, *(pct(v) for v in values)]
        if data.two:
            row.append(_delta_cell(delta_points(values[0], values[1])))
        rows.append(row + [pct(cat[c][2]) for cat in cats])
    return "<h2>Category scores</h2>" + _table("categories", headers, rows)


def _heatmaps(data: ReportData, figures: Figures) -> str:
    images = "".join(
        f"<div>{_img(png, f'confusion matrix of {data.role(i)}')}</div>"
        for i, png in enumerate(figures.heatmaps)
    )
    return (
        "<h2>Confusion matrices (row-normalized)</h2>"
        f'<div class="heatmaps">{images}</div>{_img(figures.legend, "class colours")}'
    )


def _example_html(example: Example, data: ReportData) -> str:
    row = example.row
    if row is not None:
        scores = ", ".join(f"{data.role(i)} {pct(v)}" for i, v in enumerate(row.miou))
        caption = f"mIoU {scores}; change {points(row.delta)} points"
    else:
        caption = "not evaluated"
    labels = [
        "image",
        "ground truth",
        *(f"{data.role(i)}: {m.info.name}" for i, m in enumerate(data.models[:2])),
    ]
    if example.problem is not None:
        strip = f'<p class="missing">{_e(example.problem)}</p>'
    else:
        figures = []
        for label, png in zip(labels, example.pictures, strict=False):
            inner = _img(png, label) if png is not None else '<div class="missing">not available</div>'
            figures.append(f"<figure>{inner}<figcaption>{_e(label)}</figcaption></figure>")
        strip = f'<div class="strip">{"".join(figures)}</div>'
    return f'<div class="example"><h3>{_e(example.key)}</h3><p class="meta">{_e(caption)}</p>{strip}</div>'


def _examples(title: str, anchor: str, examples: list[Example], data: ReportData) -> str:
    if not data.two:
        return ""
    if not examples:
        return f'<h2 id="{anchor}">{_e(title)}</h2><p>None.</p>'
    return f'<h2 id="{anchor}">{_e(title)}</h2>' + "".join(_example_html(x, data) for x in examples)


def _flagged(data: ReportData, figures: Figures) -> str:
    if not data.reviews:
        return ""
    rows: list[list[str | Cell]] = [
        [n.key, "yes" if n.flagged else "", ", ".join(n.tags), n.note] for n in data.reviews
    ]
    table = _table("flagged", ["image", "flagged", "tags", "note"], rows)
    return "<h2>Flagged images</h2>" + table + "".join(_example_html(x, data) for x in figures.flagged)


def _models(data: ReportData) -> str:
    result = data.result
    dataset_rows: list[list[str | Cell]] = [
        ["path", Cell(str(result.dataset.root), "text mono")],
        ["layout", Cell(str(result.dataset.kind), "text")],
        ["split", Cell(str(result.dataset.split or "-"), "text")],
        ["images", Cell(str(result.images_total), "text")],
        ["evaluation scheme", Cell(f"{result.scheme.key} ({len(data.classes)} classes)", "text")],
        ["ground truth", Cell(result.ground_truth.describe(), "text")],
        ["wall time", Cell(f"{round(result.wall_s, 3)} s", "text")],
    ]
    fields: list[tuple[str, Any]] = [
        ("name", lambda i, m: m.info.name),
        ("backend", lambda i, m: m.info.backend),
        ("file", lambda i, m: file_name(m.info.source)),
        ("source", lambda i, m: m.info.source),
        ("size", lambda i, m: size_text(m.info.file_size)),
        ("sha256", lambda i, m: m.info.digest or "-"),
        ("classes", lambda i, m: f"{len(m.info.class_names)} ({m.info.scheme})"),
        ("input size", lambda i, m: data.input_size(i)),
        ("memory (RSS growth on load)", lambda i, m: size_text(data.memory[i])),
    ]
    models = data.models[:2]
    rows: list[list[str | Cell]] = [
        [label, *(Cell(str(get(i, m)), "text mono") for i, m in enumerate(models))] for label, get in fields
    ]
    mapping = "".join(_mapping(data.role(i), m) for i, m in enumerate(models))
    headers = ["", *(f"model {data.role(i)}" for i in range(len(models)))]
    return (
        "<h2>Dataset and models</h2>"
        + _table("dataset", ["dataset", ""], dataset_rows)
        + _table("models", headers, rows)
        + mapping
    )


def _mapping(role: str, model: ModelResult) -> str:
    same, rows = mapping_rows(model.mapping.describe())
    text = f"Class mapping of {role} ({model.info.name}): {same} classes map to the class of the same name"
    if not rows:
        return f"<p>{_e(text)}.</p>"
    table = _table(f"mapping-{role}", ["model class", "evaluated as"], [list(r) for r in rows])
    return f"<details><summary>{_e(text)}; {len(rows)} others</summary>{table}</details>"


def _per_image(data: ReportData) -> str:
    roles = [data.role(i) for i in range(min(2, len(data.models)))]
    headers = ["image", *(f"mIoU {r}" for r in roles)]
    headers += ["B - A"] if data.two else []
    headers += [f"latency {r}" for r in roles]
    rows: list[list[str | Cell]] = []
    for r in data.images:
        row: list[str | Cell] = [r.key, *(pct(v) for v in r.miou)]
        if data.two:
            row.append(_delta_cell(r.delta))
        rows.append(row + [ms(v) for v in r.latency_ms])
    return (
        f"<details><summary>Per-image scores ({len(rows)} images)</summary>"
        + _table("per-image", headers, rows)
        + "</details>"
    )


def _errors(data: ReportData) -> str:
    roles = {m.info.name: data.role(i) for i, m in enumerate(data.models)}
    items = [
        f"{roles.get(s.model, s.model)} on {s.key}: {s.reason}" if s.model else f"{s.key}: {s.reason}"
        for s in data.result.skipped()
    ]
    if not items:
        return ""
    listed = "".join(f"<li>{_e(item)}</li>" for item in items[:200])
    more = f"<p>... and {len(items) - 200} more (see the JSON).</p>" if len(items) > 200 else ""
    return f"<h2>Skipped images</h2><ul>{listed}</ul>{more}"


def _reproduce(data: ReportData) -> str:
    settings = dict(data.settings)
    command = settings.pop("command", None)
    cwd = settings.pop("cwd", None)
    parts = [f"cd {cwd}" if cwd else "", str(command) if command else ""]
    if settings:
        parts.append(json.dumps(settings, indent=2, sort_keys=True, default=str))
    text = "\n".join(p for p in parts if p) or "(settings not recorded)"
    return f'<h2>Reproduce</h2><pre id="reproduce">{_e(text)}</pre>'
