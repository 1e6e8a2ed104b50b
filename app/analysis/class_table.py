"""The per-class table of a comparison (the seed's report table): pixel share, IoU per model, improvement."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.core.domain.metrics import Scores


@dataclass(frozen=True)
class ClassRow:
    """One class: its share of the evaluated GT pixels, each model's IoU, and the last model's gain."""

    name: str
    pixel_share: float  # GT pixels of the class / all evaluated GT pixels (NaN with no GT pixel at all)
    iou: tuple[float, ...]  # per model, NaN where undefined
    improvement: float  # IoU of the last model − the first (points of IoU, 0..1 scale)
    relative: float  # improvement / first model's IoU (NaN when that is 0 or undefined)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (NaN -> None)."""
        return {
            "class": self.name,
            "pixel_share": _num(self.pixel_share),
            "iou": [_num(v) for v in self.iou],
            "improvement": _num(self.improvement),
            "relative_improvement": _num(self.relative),
        }


def class_rows(scores: Sequence[Scores]) -> tuple[ClassRow, ...]:
    """Rows of the per-class table for models scored on the same images and scheme (the first is the
    baseline). Pixel shares come from the first model's GT row sums, which every model shares."""
    if not scores:
        return ()
    names = scores[0].class_names
    if any(s.class_names != names for s in scores):
        raise ValueError("the models were scored on different class lists")
    gt_pixels = scores[0].matrix.sum(axis=1)
    total = int(gt_pixels.sum())
    rows = []
    for k, name in enumerate(names):
        ious = tuple(float(s.iou[k]) for s in scores)
        gain = ious[-1] - ious[0]
        relative = gain / ious[0] if ious[0] and not math.isnan(ious[0]) else math.nan
        share = int(gt_pixels[k]) / total if total else math.nan
        rows.append(ClassRow(name, share, ious, gain, relative))
    return tuple(rows)


def _num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
