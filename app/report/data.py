"""What a comparison report says, computed once from an EvaluationResult and rendered by html, pdf and csv.

Every number comes from the typed EvaluationResult (and its Comparison), the same objects the JSON document
and the CLI summary are written from, so the report, the JSON and the summary can never disagree. Model A
is the first model (the reference), B the second; deltas are B - A in percentage points.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.core.io.datasets import Sample
from app.evaluation.compare import ON_PAR_POINTS, WORSE_CLASS_POINTS, Comparison, compare, delta_points
from app.evaluation.results import EvaluationResult, ModelResult

MaskSource = Callable[[int, Sample], "np.ndarray | None"]
"""(model index, sample) -> that model's prediction of the sample in the id space, or None if unknown."""

__all__ = ["ON_PAR_POINTS", "WORSE_CLASS_POINTS", "delta_points"]


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
    models: tuple[ModelResult, ...]
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
    comparison: Comparison | None = None
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
        spec = self.models[index].info.input
        if spec.height is None or spec.width is None:
            return f"any ({spec.resize})"
        return f"{spec.height}x{spec.width} ({spec.resize})"

    def row_normalized(self, index: int) -> np.ndarray:
        """Model `index`'s confusion matrix over evaluated classes, each GT row summing to 1 (0 if empty)."""
        matrix = np.asarray(self.models[index].scores.matrix, dtype=np.float64)
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
    models = result.models
    classes = list(result.scheme.names)
    comparison = compare(result) if len(models) >= 2 else None
    class_deltas = [c.delta for c in comparison.classes] if comparison else []
    images = _image_rows(models)
    regressions, improvements = rank_images(images, top_n)
    data = ReportData(
        result=result,
        models=models,
        classes=classes,
        class_deltas=class_deltas,
        images=images,
        regressions=regressions,
        improvements=improvements,
        verdict=[],
        reviews=_reviews(review or {}),
        settings=dict(settings or {}),
        memory=list(memory) if memory is not None else [m.memory_bytes for m in models],
        masks=masks,
        comparison=comparison,
    )
    data.verdict = verdict_lines(data)
    return data


def _image_rows(models: Sequence[ModelResult]) -> list[ImageRow]:
    by_model = [m.images for m in models[:2]]
    keys = list(dict.fromkeys(k for images in by_model for k in images))
    out: list[ImageRow] = []
    for key in keys:
        evals = [images.get(key) for images in by_model]
        miou = tuple(_defined(e.miou) if e else None for e in evals)
        out.append(
            ImageRow(
                key=key,
                miou=miou,
                pixel_accuracy=tuple(_defined(e.pixel_accuracy) if e else None for e in evals),
                latency_ms=tuple(round(e.timings.total_ms, 3) if e else None for e in evals),
                delta=delta_points(miou[0], miou[1]) if len(miou) == 2 else None,
            )
        )
    return out


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else value


def class_stat(model: ModelResult, stat: str, k: int) -> float:
    """Per-class score `stat` (iou, precision, recall, f1, iiou) of class index `k`; NaN if undefined."""
    return float(getattr(model.scores, stat)[k])


def score(model: ModelResult, key: str) -> float:
    """A dataset-level score (miou, mean_category_iou, miiou, mean_category_iiou, pixel_accuracy)."""
    return float(getattr(model.scores, key))


def categories(model: ModelResult) -> list[tuple[str, float, float]]:
    """(category, IoU, iIoU) of a Cityscapes scheme; empty for custom schemes."""
    s = model.scores
    rows = zip(s.category_names, s.category_iou, s.category_iiou, strict=True)
    return [(name, float(iou), float(iiou)) for name, iou, iiou in rows]


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
    """The 30-second summary: who wins by how much, where B is worse, the worst image, speed, and what the
    numbers were computed on."""
    a = data.models[0]
    basis = f"Computed on: {data.result.basis()}."
    if data.comparison is None:
        return [f"{a.info.name}: mIoU {pct(a.scores.miou)} on {a.images_evaluated} images.", basis]
    c = data.comparison
    lines = [c.headline(), c.worse_line()]
    if data.regressions:
        worst = data.regressions[0]
        lines.append(
            f"Largest regression on image {worst.key}: {points(worst.delta, 1)} mIoU points "
            f"({pct(worst.miou[0], 1)} -> {pct(worst.miou[1], 1)})."
        )
    bootstrap = None if data.result.analysis is None else data.result.analysis.bootstrap
    if bootstrap is not None:
        from app.analysis.bootstrap import summary

        lines.append(summary(bootstrap) + ".")
    lines += [c.speed_line(), basis]
    return lines


def mapping_rows(pairs: Sequence[Sequence[str]]) -> tuple[int, list[list[str]]]:
    """How many model classes map to the id of the same name, and the (model class, target) rows that do
    not: a 19-row identity table says nothing a reader needs."""
    same = sum(1 for p in pairs if str(p[0]) == str(p[1]))
    return same, [[str(p[0]), str(p[1])] for p in pairs if str(p[0]) != str(p[1])]


def file_name(source: str) -> str:
    """The file name of a model source (path or URL) for tables."""
    return Path(source).name or source
