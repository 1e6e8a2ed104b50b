"""CSV exports of a report: per-class and per-image metrics (raw fractions, not percent; empty = undefined).

Column names use the roles a/b, not model names, so scripts reading the CSV do not depend on them. Text
that a spreadsheet would run as a formula (=, +, -, @ first) gets a leading apostrophe (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from app.core.io.fileutil import atomic_write_text
from app.report.data import ReportData, class_stat

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _csv(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def per_class_csv(data: ReportData) -> str:
    """One row per evaluated class: iou/precision/recall/f1/iiou of a (and b) and the IoU delta (points)."""
    roles = [data.role(i).lower() for i in range(min(2, len(data.models)))]
    stats = ("iou", "precision", "recall", "f1", "iiou")
    headers = ["class", *(f"{s}_{r}" for s in stats for r in roles)]
    headers += ["delta_iou_points"] if data.two else []
    metrics = data.models[:2]
    rows = []
    for k, name in enumerate(data.classes):
        row = [_text(name), *(_num(class_stat(m, s, k)) for s in stats for m in metrics)]
        row += [_num(data.class_deltas[k])] if data.two else []
        rows.append(row)
    return _csv(headers, rows)


def per_image_csv(data: ReportData) -> str:
    """One row per image: mIoU, pixel accuracy and latency of a (and b), the mIoU delta and review notes."""
    roles = [data.role(i).lower() for i in range(min(2, len(data.models)))]
    headers = ["image", *(f"miou_{r}" for r in roles)]
    headers += ["delta_miou_points"] if data.two else []
    headers += [*(f"pixel_accuracy_{r}" for r in roles), *(f"latency_ms_{r}" for r in roles)]
    headers += ["flagged", "tags", "note"]
    notes = {n.key: n for n in data.reviews}
    rows = []
    for r in data.images:
        row = [_text(r.key), *(_num(v) for v in r.miou)]
        row += [_num(r.delta)] if data.two else []
        row += [*(_num(v) for v in r.pixel_accuracy), *(_num(v) for v in r.latency_ms)]
        note = notes.get(r.key)
        row += [
            "1" if note and note.flagged else "",
            _text(";".join(note.tags)) if note else "",
            _text(note.note) if note else "",
        ]
        rows.append(row)
    return _csv(headers, rows)


def write_csv(data: ReportData, folder: str | Path, prefix: str = "") -> list[Path]:
    """Write `<prefix>per_class.csv` and `<prefix>per_image.csv` into `folder`, and with the run's analysis
    `label_errors.csv` and `missed_objects.csv` (the full ranked lists); returns the paths written."""
    root = Path(folder)
    paths = [root / f"{prefix}per_class.csv", root / f"{prefix}per_image.csv"]
    atomic_write_text(paths[0], per_class_csv(data))
    atomic_write_text(paths[1], per_image_csv(data))
    analysis = data.result.analysis
    if analysis is not None and analysis.label_errors:
        from app.analysis.label_errors import label_errors_csv

        paths.append(root / f"{prefix}label_errors.csv")
        atomic_write_text(paths[-1], label_errors_csv(analysis.label_errors))
    if analysis is not None and analysis.missed is not None:
        from app.analysis.instances import missed_objects_csv

        paths.append(root / f"{prefix}missed_objects.csv")
        atomic_write_text(paths[-1], missed_objects_csv(analysis.missed))
    return paths
