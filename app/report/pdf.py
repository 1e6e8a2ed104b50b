"""The report as a PDF (A4 landscape) with fpdf2: pure Python, no system libraries, ~1 s to install.

Why fpdf2: reportlab needs its Paragraph mini-markup escaped for every user string (a name like
`<font ...>` is markup there) and matplotlib is a 10+ MB compiled dependency for what are, here, tables
and a few PNGs that Pillow already draws. fpdf2 writes plain text cells (markdown off), takes the PNGs as
bytes (never a path or URL it would open), and splits long tables over pages with repeated headings.

The built-in PDF fonts cover Latin-1 only: other characters are written as '?', which keeps any name safe
and the PDF valid (the HTML report shows them exactly).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from app import __version__
from app.core.io.fileutil import atomic_write_bytes
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

_PAGE_W = 297.0
_MARGIN = 10.0
_CONTENT_W = _PAGE_W - 2 * _MARGIN
_HEAD = FontFace(emphasis="BOLD", fill_color=(240, 240, 240))
_SUMMARY_SCORES = (
    ("mIoU", "miou"),
    ("category mIoU", "mean_category_iou"),
    ("iIoU (mean)", "miiou"),
    ("category iIoU", "mean_category_iiou"),
    ("pixel accuracy", "pixel_accuracy"),
)


# Typography the core fonts lack, written as the nearest Latin-1 (a '?' in a verdict reads as a doubt).
_PLAIN = str.maketrans(
    {
        "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u2192": "->",
        "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ",
    }
)  # fmt: skip


def _t(text: object) -> str:
    """Text the core fonts can show: Latin-1 (minus signs, dashes and quotes as their plain forms),
    anything else as '?'."""
    return str(text).translate(_PLAIN).encode("latin-1", "replace").decode("latin-1")


class _Pdf(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self._title = _t(title)
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(auto=True, margin=12)
        self.set_title(self._title)
        self.set_creator("SegLens")

    def footer(self) -> None:
        self.set_y(-9)
        self.set_font("Helvetica", size=7)
        self.set_text_color(120, 120, 120)
        self.cell(0, 4, f"{self._title}  -  page {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0, 0, 0)

    def heading(self, text: str, size: int = 14) -> None:
        self.set_font("Helvetica", "B", size)
        self.multi_cell(0, size * 0.5, _t(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(1.5)
        self.set_font("Helvetica", size=9)

    def para(self, text: str, size: int = 9, style: str = "") -> None:
        self.set_font("Helvetica", style, size)
        self.multi_cell(0, size * 0.48, _t(text), new_x="LMARGIN", new_y="NEXT")

    def png(self, data: bytes, w: float, x: float | None = None, y: float | None = None) -> None:
        self.image(io.BytesIO(data), x=x, y=y, w=w)

    def grid(self, headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float],
             size: float = 8, numeric: bool = True) -> None:  # fmt: skip
        self.set_font("Helvetica", size=size)
        align = ["LEFT"] + ["RIGHT" if numeric else "LEFT"] * (len(headers) - 1)
        with self.table(
            col_widths=tuple(widths),
            width=sum(widths),
            align="LEFT",
            text_align=tuple(align),
            headings_style=_HEAD,
            line_height=size * 0.5,
            markdown=False,
            first_row_as_headings=True,
        ) as table:
            for values in [headers, *rows]:
                row = table.row()
                for value in values:
                    row.cell(_t(value))
        self.ln(3)


def render_pdf(data: ReportData, figures: Figures) -> bytes:
    """The whole report as PDF bytes."""
    names = " vs ".join(m.info.name for m in data.models[:2])
    pdf = _Pdf(f"SegLens comparison: {names}")
    pdf.alias_nb_pages()
    _page_summary(pdf, data, names)
    if figures.delta_chart is not None:
        _delta_chart(pdf, figures.delta_chart)
    _page_classes(pdf, data)
    _page_heatmaps(pdf, data, figures)
    if data.two:
        _examples(pdf, data, "Largest regressions (B worse than A)", figures.regressions)
        _examples(pdf, data, "Largest improvements (B better than A)", figures.improvements)
    if data.reviews:
        _flagged(pdf, data, figures)
    _page_models(pdf, data)
    return bytes(pdf.output())


def write_pdf(data: ReportData, figures: Figures, path: str | Path) -> Path:
    """Render and write atomically; returns the path."""
    target = Path(path)
    atomic_write_bytes(target, render_pdf(data, figures))
    return target


def _page_summary(pdf: _Pdf, data: ReportData, names: str) -> None:
    pdf.add_page()
    pdf.heading(f"SegLens comparison: {names}", 18)
    result = data.result
    split = f", split {result.dataset.split}" if result.dataset.split else ""
    pdf.para(f"{result.dataset.root}{split} - {result.basis()} - "
             f"SegLens {__version__} - {data.created}", 8)  # fmt: skip
    pdf.ln(3)
    pdf.set_fill_color(240, 244, 251)
    # The basis ("Computed on: ...") is in the line above; the page keeps room for the chart below.
    for i, line in enumerate(v for v in data.verdict if not v.startswith("Computed on:")):
        pdf.set_font("Helvetica", "B" if i == 0 else "", 13 if i == 0 else 10)
        pdf.multi_cell(0, 6.5 if i == 0 else 5.2, _t(line), fill=True, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    models = data.models[:2]
    headers = ["metric", *(f"{data.role(i)}: {m.info.name}" for i, m in enumerate(models))]
    headers += ["B - A (points)"] if data.two else []
    rows: list[list[str]] = []
    for label, key in _SUMMARY_SCORES:
        values = [score(m, key) for m in models]
        rows.append([label, *(pct(v) for v in values)])
        if data.two:
            rows[-1].append(points(delta_points(values[0], values[1])))
    extra = [
        (f"latency {q.upper()}", [ms(getattr(m.latency, q)) for m in models]) for q in ("p50", "p95", "p99")
    ]
    extra += [
        ("model file size", [size_text(m.info.file_size) for m in models]),
        ("memory (RSS growth on load)", [size_text(v) for v in data.memory[:2]]),
        ("images evaluated / failed", [f"{m.images_evaluated} / {len(m.errors)}" for m in models]),
    ]
    rows += [[label, *cells, *([""] if data.two else [])] for label, cells in extra]
    pdf.grid(headers, rows, [55, *([70] * len(models)), *([30] if data.two else [])], size=8.5)


def _delta_chart(pdf: _Pdf, png: bytes) -> None:
    # On the first page, below the verdict, when it fits at a readable size; else on a page of its own.
    aspect = _png_aspect(png)
    width = min(170.0, (pdf.h - 14 - pdf.get_y() - 8) / aspect)
    if width < 120:
        pdf.add_page()
        width = min(190.0, (pdf.h - 14 - pdf.get_y() - 8) / aspect)
    pdf.para("Per-class IoU change, B - A (percentage points)", 10, "B")
    pdf.png(png, w=width, x=_MARGIN + (_CONTENT_W - width) / 2)


def _png_aspect(data: bytes) -> float:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.height / img.width


def _page_classes(pdf: _Pdf, data: ReportData) -> None:
    pdf.add_page()
    pdf.heading("Per-class scores (percent; deltas in points)")
    metrics = data.models[:2]
    roles = [data.role(i) for i in range(len(metrics))]
    headers = ["class"]
    for stat in ("IoU", "Prec", "Rec", "F1", "iIoU"):
        headers += [f"{stat} {r}" for r in roles]
        headers += ["IoU B-A"] if stat == "IoU" and data.two else []
    rows = []
    for k, name in enumerate(data.classes):
        row = [name]
        for stat in ("iou", "precision", "recall", "f1", "iiou"):
            row += [pct(class_stat(m, stat, k)) for m in metrics]
            row += [points(data.class_deltas[k])] if stat == "iou" and data.two else []
        rows.append(row)
    cell_w = min(20.0, (_CONTENT_W - 45) / (len(headers) - 1))
    pdf.grid(headers, rows, [45, *([cell_w] * (len(headers) - 1))], size=8)
    cats = [categories(m) for m in data.models[:2]]
    if cats and cats[0]:
        pdf.heading("Category scores", 12)
        headers = ["category", *(f"IoU {r}" for r in roles), *(["IoU B-A"] if data.two else [])]
        rows = []
        for c, (name, _, _) in enumerate(cats[0]):
            values = [cat[c][1] for cat in cats]
            rows.append([name, *(pct(v) for v in values)])
            rows[-1] += [points(delta_points(values[0], values[1]))] if data.two else []
        pdf.grid(headers, rows, [45, *([22.0] * (len(headers) - 1))], size=8)


def _page_heatmaps(pdf: _Pdf, data: ReportData, figures: Figures) -> None:
    pdf.add_page()
    pdf.heading("Confusion matrices (rows: ground truth, normalized to 100%)")
    top = pdf.get_y()
    aspect = _png_aspect(figures.heatmaps[0])
    room = pdf.h - 14 - top - 14  # 14 mm for the legend
    width = min((_CONTENT_W - 8) / max(1, len(figures.heatmaps)), room / aspect)
    for i, png in enumerate(figures.heatmaps):
        pdf.png(png, w=width, x=_MARGIN + i * (width + 8), y=top)
    pdf.set_y(top + width * aspect + 2)
    pdf.png(figures.legend, w=_CONTENT_W * 0.75)


def _caption(data: ReportData, example: Example) -> str:
    if example.row is None:
        return f"{example.key} (not evaluated)"
    scores = ", ".join(f"{data.role(i)} {pct(v)}" for i, v in enumerate(example.row.miou))
    return f"{example.key}  -  mIoU {scores}; change {points(example.row.delta)} points"


def _examples(pdf: _Pdf, data: ReportData, title: str, examples: list[Example]) -> None:
    pdf.add_page()
    pdf.heading(title)
    if not examples:
        pdf.para("None.")
        return
    labels = [
        "image",
        "ground truth",
        *(f"{data.role(i)}: {m.info.name}" for i, m in enumerate(data.models[:2])),
    ]
    for example in examples:
        _example(pdf, data, example, labels)


def _example(pdf: _Pdf, data: ReportData, example: Example, labels: list[str]) -> None:
    gap = 3.0
    width = (_CONTENT_W - 3 * gap) / 4
    aspect = _png_aspect(example.pictures[0]) if example.pictures and example.pictures[0] else 0.5
    needed = 5 + width * aspect + 5
    if pdf.get_y() + needed > pdf.h - 14:
        pdf.add_page()
    pdf.para(_caption(data, example), 9, "B")
    if example.problem is not None:
        pdf.para(example.problem, 8)
        pdf.ln(3)
        return
    top = pdf.get_y() + 1
    for i, (label, png) in enumerate(zip(labels, example.pictures, strict=False)):
        x = _MARGIN + i * (width + gap)
        if png is not None:
            pdf.png(png, w=width, x=x, y=top)
        else:
            pdf.set_xy(x, top)
            pdf.set_fill_color(235, 235, 235)
            pdf.cell(width, width * aspect, "not available", align="C", fill=True)
        pdf.set_xy(x, top + width * aspect + 0.5)
        pdf.set_font("Helvetica", size=7)
        pdf.cell(width, 3.5, _t(label)[:70])
    pdf.set_xy(_MARGIN, top + width * aspect + 4.5)


def _flagged(pdf: _Pdf, data: ReportData, figures: Figures) -> None:
    pdf.add_page()
    pdf.heading("Flagged images")
    rows = [[n.key, "yes" if n.flagged else "", ", ".join(n.tags), n.note] for n in data.reviews]
    pdf.grid(["image", "flagged", "tags", "note"], rows, [90, 18, 60, 109], size=8)
    labels = [
        "image",
        "ground truth",
        *(f"{data.role(i)}: {m.info.name}" for i, m in enumerate(data.models[:2])),
    ]
    for example in figures.flagged:
        _example(pdf, data, example, labels)


def _page_models(pdf: _Pdf, data: ReportData) -> None:
    pdf.add_page()
    pdf.heading("Dataset and models")
    result = data.result
    pdf.grid(["dataset", ""], [
        ["path", str(result.dataset.root)], ["layout", str(result.dataset.kind)],
        ["split", str(result.dataset.split or "-")], ["images", str(result.images_total)],
        ["scheme", f"{result.scheme.key} ({len(data.classes)} classes)"],
        ["ground truth", result.ground_truth.describe()], ["wall time", f"{round(result.wall_s, 3)} s"],
    ], [45, 232], numeric=False)  # fmt: skip
    models = data.models[:2]
    rows = [
        ["name", *(m.info.name for m in models)],
        ["backend", *(m.info.backend for m in models)],
        ["file", *(file_name(m.info.source) for m in models)],
        ["size", *(size_text(m.info.file_size) for m in models)],
        ["sha256", *(m.info.digest or "-" for m in models)],
        ["classes", *(f"{len(m.info.class_names)} ({m.info.scheme})" for m in models)],
        ["input size", *(data.input_size(i) for i in range(len(models)))],
        ["memory", *(size_text(v) for v in data.memory[: len(models)])],
    ]
    width = (_CONTENT_W - 45) / len(models)
    headers = ["", *(f"model {data.role(i)}" for i in range(len(models)))]
    pdf.grid(headers, rows, [45, *([width] * len(models))], numeric=False)
    for i, m in enumerate(models):
        same, others = mapping_rows(m.mapping.describe())
        pdf.para(f"Class mapping of {data.role(i)} ({m.info.name}): {same} classes map to the class of the "
                 f"same name" + (f"; {len(others)} others:" if others else "."), 9)  # fmt: skip
        if others:
            pdf.grid(["model class", "evaluated as"], others, [70, 70], size=7, numeric=False)
    pdf.ln(2)
    pdf.heading("Reproduce", 12)
    settings = dict(data.settings)
    lines = [f"cd {settings.pop('cwd')}"] if settings.get("cwd") else []
    lines += [str(settings.pop("command"))] if settings.get("command") else []
    lines += [f"{k}: {v}" for k, v in sorted(settings.items())]
    pdf.set_font("Courier", size=8)
    pdf.multi_cell(0, 4, _t("\n".join(lines) or "(settings not recorded)"), new_x="LMARGIN", new_y="NEXT")
