"""What a comparison report says, computed once from an EvaluationResult and rendered by html, pdf and csv.

Every number comes from `result_document(result)` (the JSON document of `seglens evaluate`), so the report,
the JSON and the CLI summary can never disagree. Model A is the first model (the reference), B the second;
deltas are B - A in percentage points.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.core.datasets import Sample
from app.evaluation.document import result_document
from app.evaluation.results import EvaluationResult

MaskSource = Callable[[int, Sample], "np.ndarray | None"]
"""(model index, sample) -> that model's prediction of the sample in the id space, or None if unknown."""

WORSE_CLASS_POINTS = 1.0  # a class counts as 'worse' in the verdict from this IoU drop (points) on
ON_PAR_POINTS = 0.05  # mIoU differences below this are reported as 'on par' (rounding noise)


def pct(value: float | None, digits: int = 2) -> str:
    """A score 0..1 as a percentage string, '-' where undefined (NaN/None)."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value * 100:.{digits}f}"


def points(value: float | None, digits: int = 2) -> str:
    """A delta already in percentage points, signed, '-' where undefined."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}"


def delta_points(a: float | None, b: float | None) -> float | None:
    """B - A in percentage points; None when either is undefined."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return (b - a) * 100


def ms(value: float | None) -> str:
    """Milliseconds for a table cell."""
    return "-" if value is None else f"{value:.1f} ms"


def size_text(value: int | float | None) -> str:
    """Bytes as KB/MB for a table cell; 'not measured' when unknown."""
    if value is None:
        return "not measured"
    return f"{value / 1e3:.1f} KB" if value < 1e6 else f"{value / 1e6:.1f} MB"


@dataclass(frozen=True)
class ImageRow:
    """One image compared: per-image mIoU of A and B and the delta (points)."""

    key: str
    miou: tuple[float | None, ...]
    pixel_accuracy: tuple[float | None, ...]
    latency_ms: tuple[float | None, ...]
    delta: float | None


@dataclass(frozen=True)
class ReviewNote:
    """A reviewer's flag, tags and note on one image (from the GUI's review dict)."""

    key: str
    flagged: bool
    tags: tuple[str, ...]
    note: str


@dataclass
class ReportData:
    """Everything the renderers need; built by `build_report_data`."""

    result: EvaluationResult
    doc: dict[str, Any]
    models: list[dict[str, Any]]
    classes: list[str]
    class_deltas: list[float | None]
    images: list[ImageRow]
    regressions: list[ImageRow]
    improvements: list[ImageRow]
    verdict: list[str]
    reviews: list[ReviewNote]
    settings: dict[str, Any]
    memory: list[int | None]
    masks: MaskSource | None
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))

    @property
    def two(self) -> bool:
        """True when there is a B to compare with A."""
        return len(self.models) >= 2

    def role(self, index: int) -> str:
        """'A' or 'B' (or a number beyond two models)."""
        return "AB"[index] if index < 2 else str(index + 1)

    def input_size(self, index: int) -> str:
        """The model's input size as the user knows it, e.g. '512x1024 (fixed)'."""
        spec = self.result.models[index].info.input
        if spec.height is None or spec.width is None:
            return f"any ({spec.resize})"
        return f"{spec.height}x{spec.width} ({spec.resize})"

    def row_normalized(self, index: int) -> np.ndarray:
        """Model `index`'s confusion matrix over evaluated classes, each GT row summing to 1 (0 if empty)."""
        matrix = np.asarray(self.models[index]["metrics"]["confusion"]["matrix"], dtype=np.float64)
        sums = matrix.sum(axis=1, keepdims=True)
        return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)


def build_report_data(
    result: EvaluationResult,
    *,
    top_n: int = 5,
    settings: Mapping[str, Any] | None = None,
    review: Mapping[str, Mapping[str, Any]] | None = None,
    memory: Sequence[int | None] | None = None,
    masks: MaskSource | None = None,
) -> ReportData:
    """Collect the report's content from a finished run (1 or 2 models; more are listed, not compared)."""
    if not result.models:
        raise ValueError("a report needs at least one evaluated model")
    doc = result_document(result)
    models: list[dict[str, Any]] = list(doc["models"])  # type: ignore[call-overload]
    classes = [str(c) for c in doc["classes"]]  # type: ignore[attr-defined]
    class_deltas: list[float | None] = []
    if len(models) >= 2:
        a, b = (m["metrics"]["classes"] for m in models[:2])
        class_deltas = [delta_points(a[c]["iou"], b[c]["iou"]) for c in classes]
    images = _image_rows(models)
    regressions, improvements = rank_images(images, top_n)
    data = ReportData(
        result=result,
        doc=doc,
        models=models,
        classes=classes,
        class_deltas=class_deltas,
        images=images,
        regressions=regressions,
        improvements=improvements,
        verdict=[],
        reviews=_reviews(review or {}),
        settings=dict(settings or {}),
        memory=list(memory) if memory is not None else [m.memory_bytes for m in result.models],
        masks=masks,
    )
    data.verdict = verdict_lines(data)
    return data


def _image_rows(models: list[dict[str, Any]]) -> list[ImageRow]:
    by_model = [{row["key"]: row for row in m["per_image"]} for m in models[:2]]
    keys = list(dict.fromkeys(k for rows in by_model for k in rows))
    out: list[ImageRow] = []
    for key in keys:
        rows = [r.get(key) for r in by_model]
        miou = tuple(r["miou"] if r else None for r in rows)
        out.append(
            ImageRow(
                key=key,
                miou=miou,
                pixel_accuracy=tuple(r["pixel_accuracy"] if r else None for r in rows),
                latency_ms=tuple(r["latency_ms"] if r else None for r in rows),
                delta=delta_points(miou[0], miou[1]) if len(miou) == 2 else None,
            )
        )
    return out


def rank_images(images: Sequence[ImageRow], top_n: int) -> tuple[list[ImageRow], list[ImageRow]]:
    """The `top_n` largest per-image mIoU drops (B < A) and gains (B > A); ties broken by image key."""
    with_delta = [r for r in images if r.delta is not None]
    worse = sorted((r for r in with_delta if r.delta is not None and r.delta < 0), key=_delta_key)
    better = sorted((r for r in with_delta if r.delta is not None and r.delta > 0), key=_gain_key)
    return worse[: max(0, top_n)], better[: max(0, top_n)]


def _delta_key(row: ImageRow) -> tuple[float, str]:
    return (row.delta if row.delta is not None else 0.0, row.key)


def _gain_key(row: ImageRow) -> tuple[float, str]:
    return (-(row.delta if row.delta is not None else 0.0), row.key)


def _reviews(review: Mapping[str, Mapping[str, Any]]) -> list[ReviewNote]:
    # The GUI's per-image dict, read leniently: {"flag"/"flagged": bool, "tags": [...], "note"/"notes": str}.
    notes: list[ReviewNote] = []
    for key, entry in review.items():
        flagged = bool(entry.get("flagged", entry.get("flag", False)))
        raw_tags = entry.get("tags") or ()
        tags = (raw_tags,) if isinstance(raw_tags, str) else tuple(str(t) for t in raw_tags)
        note = str(entry.get("note", entry.get("notes", "")) or "")
        if flagged or tags or note:
            notes.append(ReviewNote(str(key), flagged, tags, note))
    return sorted(notes, key=lambda n: n.key)


def verdict_lines(data: ReportData) -> list[str]:
    """The 30-second summary: who wins by how much, where B is worse, the worst image, speed."""
    models = data.models
    a = models[0]
    if not data.two:
        return [f"{a['name']}: mIoU {pct(a['metrics']['miou'])} on {a['images_evaluated']} images."]
    b = models[1]
    lines = [_headline(a, b)]
    worse = sorted(
        ((d, c) for c, d in zip(data.classes, data.class_deltas, strict=True) if d is not None),
        key=lambda item: item[0],
    )
    worse = [(d, c) for d, c in worse if d <= -WORSE_CLASS_POINTS]
    if worse:
        listed = ", ".join(f"{c} ({d:+.1f})" for d, c in worse[:5])
        more = f" and {len(worse) - 5} more" if len(worse) > 5 else ""
        lines.append(f"B is worse on {len(worse)} classes by {WORSE_CLASS_POINTS:g}+ points: {listed}{more}.")
    else:
        lines.append(f"B loses no class by {WORSE_CLASS_POINTS:g} IoU points or more.")
    if data.regressions:
        worst = data.regressions[0]
        lines.append(
            f"Largest regression on image {worst.key}: {points(worst.delta, 1)} mIoU points "
            f"({pct(worst.miou[0], 1)} -> {pct(worst.miou[1], 1)})."
        )
    lines.append(_speed_line(a, b))
    return lines


def _headline(a: dict[str, Any], b: dict[str, Any]) -> str:
    delta = delta_points(a["metrics"]["miou"], b["metrics"]["miou"])
    scores = f"(mIoU A {pct(a['metrics']['miou'])}, B {pct(b['metrics']['miou'])})"
    if delta is None:
        return f"B and A cannot be compared: a mIoU is undefined {scores}."
    if abs(delta) < ON_PAR_POINTS:
        return f"B is on par with A {scores}."
    word = "better" if delta > 0 else "worse"
    return f"B ({b['name']}) is {word} than A ({a['name']}) by {abs(delta):.2f} mIoU points {scores}."


def _speed_line(a: dict[str, Any], b: dict[str, Any]) -> str:
    pa, pb = a["latency_ms"]["p50"], b["latency_ms"]["p50"]
    if not pa or not pb:
        return "Latency: not measured."
    ratio = pb / pa
    word = "slower" if ratio >= 1 else "faster"
    factor = ratio if ratio >= 1 else 1 / ratio
    return f"B is {factor:.2f}x {word} than A (latency P50 {pb:.1f} ms vs {pa:.1f} ms)."


def mapping_rows(pairs: Sequence[Sequence[str]]) -> tuple[int, list[list[str]]]:
    """How many model classes map to the id of the same name, and the (model class, target) rows that do
    not: a 19-row identity table says nothing a reader needs."""
    same = sum(1 for p in pairs if str(p[0]) == str(p[1]))
    return same, [[str(p[0]), str(p[1])] for p in pairs if str(p[0]) != str(p[1])]


def file_name(source: str) -> str:
    """The file name of a model source (path or URL) for tables."""
    return Path(source).name or source
