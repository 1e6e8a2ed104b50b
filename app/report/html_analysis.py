"""The report's sections on what the statistics found (app/analysis): the per-class table of the seed's
report (pixel share, IoU per model, improvement), boundary quality, likely label errors, missed objects.
A section is left out when its numbers were not computed (one model, or `--no-analysis`)."""

from __future__ import annotations

import math

from app.analysis.class_table import class_rows
from app.report.data import ReportData, pct
from app.report.markup import Cell, delta_cell, esc, table

_SHOWN = 20  # rows of the label-error and missed-object lists in the page (all of them in the CSV/JSON)


def seed_table(data: ReportData) -> str:
    """Pixel share per class, IoU per model and B's improvement (points and relative)."""
    if not data.two:
        return ""
    rows: list[list[str | Cell]] = []
    for row in class_rows([m.scores for m in data.models[:2]]):
        gain = None if math.isnan(row.improvement) else row.improvement * 100
        relative = "-" if math.isnan(row.relative) else f"{row.relative * 100:+.0f} %"
        rows.append(
            [row.name, pct(row.pixel_share, 1), *(pct(v, 1) for v in row.iou), delta_cell(gain), relative]
        )
    headers = ["class", "pixel share", "IoU A", "IoU B", "B - A (points)", "relative"]
    note = '<p class="meta">Pixel share: the class\'s part of the evaluated ground-truth pixels.</p>'
    return "<h2>Per-class comparison</h2>" + note + table("seed-table", headers, rows)


def boundary_section(data: ReportData) -> str:
    """Boundary IoU and boundary F1 per model, and the interval of B - A's Boundary IoU."""
    analysis = data.result.analysis
    if analysis is None or not any(b is not None for b in analysis.boundary):
        return ""
    rows: list[list[str | Cell]] = []
    for role, name, scores in zip("AB", analysis.models, analysis.boundary, strict=False):
        if scores is not None:
            rows.append([f"{role}: {name}", pct(scores.mean_boundary_iou), pct(scores.mean_bf)])
    text = ""
    boot = analysis.boundary_bootstrap
    if boot is not None:
        delta = boot.delta_boundary_iou
        text = (
            f'<p class="meta">B - A Boundary IoU: {delta.value * 100:+.2f} points, 95 % interval '
            f"{delta.low * 100:+.2f} to {delta.high * 100:+.2f} ({esc(boot.images)} images).</p>"
        )
    return (
        "<h2>Boundary quality</h2>" + table("boundary", ["model", "Boundary IoU", "boundary F1"], rows) + text
    )


def label_error_section(data: ReportData) -> str:
    """The largest regions where both models agree with each other against the ground truth."""
    analysis = data.result.analysis
    if analysis is None or not analysis.label_errors:
        return ""
    rows: list[list[str | Cell]] = [
        [
            r.key,
            r.ground_truth,
            r.predicted,
            str(r.area),
            f"{r.image_share * 100:.2f} %",
            ", ".join(map(str, r.bbox)),
        ]
        for r in analysis.label_errors[:_SHOWN]
    ]
    headers = ["image", "labelled as", "both models say", "pixels", "of the image", "box x0, y0, x1, y1"]
    more = len(analysis.label_errors) - _SHOWN
    tail = f"<p>... and {more} more (see the JSON or the CSV).</p>" if more > 0 else ""
    note = (
        '<p class="meta">Where A and B agree with each other and not with the ground truth: the first '
        "places to check for a wrong label.</p>"
    )
    return "<h2>Likely label errors</h2>" + note + table("label-errors", headers, rows) + tail


def missed_section(data: ReportData) -> str:
    """Instances one model finds and the other misses, by class and size."""
    analysis = data.result.analysis
    missed = None if analysis is None else analysis.missed
    if missed is None:
        return ""
    rows: list[list[str | Cell]] = [
        [
            t.class_name,
            t.size,
            str(t.instances),
            *(str(f) for f in t.found),
            str(t.only_first),
            str(t.only_second),
        ]
        for t in missed.tallies
        if t.only_first or t.only_second
    ]
    headers = [
        "class",
        "size",
        "instances",
        "found by A",
        "found by B",
        "A finds, B misses",
        "B finds, A misses",
    ]
    summary = (
        f"<p>A finds {len(missed.a_finds_b_misses)} instances that B misses; B finds "
        f"{len(missed.b_finds_a_misses)} that A misses (found: recall of the instance's pixels at least "
        f"{missed.threshold:g}).</p>"
    )
    return "<h2>Missed objects</h2>" + summary + (table("missed", headers, rows) if rows else "")
