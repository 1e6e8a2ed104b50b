"""`write_report`: one call that writes any of the HTML, PDF, CSV and JSON forms of a comparison."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.domain.errors import SegLensError
from app.core.io.fileutil import atomic_write_text
from app.evaluation.document import result_document
from app.evaluation.results import EvaluationResult
from app.report.data import MaskSource, ReportData, build_report_data

if TYPE_CHECKING:
    from app.report.figures import Figures

FORMATS: tuple[str, ...] = ("html", "pdf", "csv", "json")
_SUFFIXES = {".html": "html", ".htm": "html", ".pdf": "pdf", ".json": "json"}


def write_report(
    result: EvaluationResult,
    out: str | Path,
    *,
    formats: Iterable[str] = FORMATS,
    top_n: int = 5,
    settings: Mapping[str, Any] | None = None,
    review: Mapping[str, Mapping[str, Any]] | None = None,
    memory: Sequence[int | None] | None = None,
    masks: MaskSource | None = None,
) -> list[Path]:
    """Write the report of `result` in each of `formats`; returns the files written.

    `out` is a folder (files report.html, report.pdf, report.json, per_class.csv, per_image.csv) or a file
    path like results/run1.html, whose stem names the siblings (run1.pdf, run1_per_class.csv, ...).
    settings: what reproduces the run ({"command": "..."} or any flat dict), shown verbatim.
    review: per-image {"flagged": bool, "tags": [...], "note": str} from the GUI.
    memory: per model, RSS growth on load in bytes (None: not measured).
    masks: (model index, sample) -> id-space prediction for thumbnails; without it, thumbnails show the
        image and ground truth and mark the predictions 'not available'.
    """
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown report formats {unknown}; known: {', '.join(FORMATS)}")
    folder, stem, prefix = _targets(Path(out))
    data = build_report_data(
        result, top_n=top_n, settings=settings, review=review, memory=memory, masks=masks
    )
    written: list[Path] = []
    figures = None
    if "html" in wanted or "pdf" in wanted:
        from app.report.figures import build_figures

        figures = build_figures(data)
    for fmt in wanted:
        if fmt == "html":
            from app.report.html import write_html

            assert figures is not None
            written.append(write_html(data, figures, folder / f"{stem}.html"))
        elif fmt == "pdf":
            assert figures is not None
            written.append(pdf_writer()(data, figures, folder / f"{stem}.pdf"))
        elif fmt == "csv":
            from app.report.tables import write_csv

            written += write_csv(data, folder, prefix)
        else:
            written.append(write_json(data, folder / f"{stem}.json"))
    return written


def _targets(out: Path) -> tuple[Path, str, str]:
    """(folder, stem of html/pdf/json, prefix of the CSV files) for a folder or a file path."""
    if out.suffix.lower() in _SUFFIXES:
        folder, stem, prefix = out.parent, out.stem, f"{out.stem}_"
    else:
        folder, stem, prefix = out, "report", ""
    folder.mkdir(parents=True, exist_ok=True)
    return folder, stem, prefix


def pdf_writer() -> Callable[[ReportData, Figures, Path], Path]:
    """app.report.pdf.write_pdf, or a SegLensError naming the extra to install when fpdf2 is missing."""
    try:
        from app.report.pdf import write_pdf
    except ImportError as exc:
        raise SegLensError(f"PDF reports need fpdf2 ({exc}): pip install 'seglens[report]'") from exc
    return write_pdf


def report_document(data: ReportData) -> dict[str, Any]:
    """The full JSON: the `seglens evaluate` document plus the report's own findings."""
    return {
        **result_document(data.result),
        "report": {
            "created": data.created,
            "verdict": data.verdict,
            "class_iou_delta_points": dict(zip(data.classes, data.class_deltas, strict=False)),
            "regressions": [{"key": r.key, "delta_points": r.delta} for r in data.regressions],
            "improvements": [{"key": r.key, "delta_points": r.delta} for r in data.improvements],
            "memory_rss_bytes": data.memory,
            "review": [
                {"key": n.key, "flagged": n.flagged, "tags": list(n.tags), "note": n.note}
                for n in data.reviews
            ],
            "settings": data.settings,
        },
    }


def write_json(data: ReportData, path: str | Path) -> Path:
    """Write the full JSON atomically (NaN never appears: undefined values are null)."""
    target = Path(path)
    atomic_write_text(target, json.dumps(report_document(data), indent=2, allow_nan=False, default=str))
    return target
