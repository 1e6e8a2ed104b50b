"""Comparison reports of two models on one dataset: self-contained HTML, PDF, CSV and JSON.

`write_report(result, out)` is what the GUI calls; `seglens report` (app.report.cli) runs an evaluation and
writes one. Renderers share one ReportData (app.report.data) and one set of pictures (app.report.figures).
"""

from __future__ import annotations

from app.report.writer import FORMATS, write_report

__all__ = ["FORMATS", "write_report"]
