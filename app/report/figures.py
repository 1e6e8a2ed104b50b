"""All pictures of one report, drawn once and shared by the HTML and PDF renderers."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.domain.errors import SegLensError
from app.report import charts
from app.report.data import ImageRow, ReportData


@dataclass(frozen=True)
class Example:
    """One image of the top-N (or flagged) lists: its numbers and [image, GT, A, B] thumbnails."""

    row: ImageRow | None
    key: str
    pictures: tuple[bytes | None, ...]
    problem: str | None = None  # why there are no pictures (image no longer readable, ...)


@dataclass
class Figures:
    """PNG bytes of every chart and thumbnail in the report."""

    delta_chart: bytes | None
    heatmaps: list[bytes]
    legend: bytes
    regressions: list[Example] = field(default_factory=list)
    improvements: list[Example] = field(default_factory=list)
    flagged: list[Example] = field(default_factory=list)


def build_figures(data: ReportData) -> Figures:
    """Draw the charts and the thumbnails of the top-N and flagged images."""
    scheme = data.result.scheme
    names = list(data.classes)
    columns = [*names, "(not evaluated)"]
    heatmaps = [
        charts.heatmap(data.row_normalized(i), names, columns, f"{data.role(i)}: {m.info.name}")
        for i, m in enumerate(data.models[:2])
    ]
    figures = Figures(
        delta_chart=charts.delta_chart(names, data.class_deltas) if data.two else None,
        heatmaps=heatmaps,
        legend=charts.legend(scheme),
    )
    rows = {row.key: row for row in data.images}
    figures.regressions = [_example(data, row.key, row) for row in data.regressions]
    figures.improvements = [_example(data, row.key, row) for row in data.improvements]
    figures.flagged = [_example(data, note.key, rows.get(note.key)) for note in data.reviews]
    return figures


def _example(data: ReportData, key: str, row: ImageRow | None) -> Example:
    ref = data.result.dataset.find(key)
    if ref is None:
        return Example(row, key, (), "image not in the dataset")
    try:
        sample = data.result.dataset.load(ref)
    except SegLensError as exc:
        return Example(row, key, (), str(exc))
    count = min(2, len(data.models))
    masks = [data.masks(i, sample) if data.masks is not None else None for i in range(count)]
    pictures = charts.thumbnails(sample.image, sample.gt, masks, data.result.scheme)
    return Example(row, key, tuple(pictures))
