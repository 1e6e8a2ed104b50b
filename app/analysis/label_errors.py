"""Likely label errors: regions where two models agree with each other and both disagree with the ground
truth, ranked by area (the shortest path from "this metric looks bad" to "the label is wrong").

Per pixel (in the EvalScheme's classes; ground truth in no evaluated class never counts): A == B != GT, and,
when both models gave confidence maps, min(conf A, conf B) >= `min_confidence`. The mask is then opened by a
square of radius `smoothing` (default 0.1 % of the image diagonal, at least 1 px: 2 px at 1024x2048) so the
one-or-two-pixel slivers where both models draw a border slightly off the annotation do not chain into long
"regions"; what is left splits into 4-connected regions of one (GT class, predicted class) pair, and regions
smaller than `min_area` (default 0.01 % of the image, at least 16 px: 210 px at 1024x2048) are dropped.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from app.analysis.classes import class_map
from app.analysis.morphology import connected_components, open_mask
from app.core.domain.labels import IGNORE, EvalScheme
from app.core.io.fileutil import atomic_write_text

NOT_EVALUATED = "(not evaluated)"
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_LIMIT = 1000  # dataset list; per image at most PER_IMAGE_LIMIT regions are kept
PER_IMAGE_LIMIT = 50


@dataclass(frozen=True)
class LabelErrorRegion:
    """One region where both models say `predicted` and the ground truth says `ground_truth`."""

    key: str  # the image (dataset sample key)
    ground_truth: str
    predicted: str
    area: int  # pixels (after the opening)
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1; x1 and y1 exclusive
    image_share: float  # area / image pixels
    confidence: float | None  # mean over the region of min(conf A, conf B); None without score maps

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (bbox as a list)."""
        data = asdict(self)
        data["bbox"] = list(self.bbox)
        return data


def default_smoothing(shape: tuple[int, int]) -> int:
    """0.1 % of the image diagonal, rounded, at least 1 pixel."""
    return max(1, round(0.001 * math.hypot(shape[0], shape[1])))


def default_min_area(shape: tuple[int, int]) -> int:
    """0.01 % of the image's pixels, at least 16."""
    return max(16, round(1e-4 * shape[0] * shape[1]))


def find_label_errors(
    gt_ids: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    scheme: EvalScheme,
    *,
    key: str,
    scores: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    smoothing: int | None = None,
    min_area: int | None = None,
    limit: int = PER_IMAGE_LIMIT,
) -> tuple[LabelErrorRegion, ...]:
    """The likely label errors of one image, largest first: GT and both predictions in the id space."""
    shape = (int(gt_ids.shape[0]), int(gt_ids.shape[1]))
    mask, gt, a, confidence = _error_pixels(
        gt_ids, pred_a, pred_b, scheme, key, scores, min_confidence, smoothing
    )
    keys = np.full(shape, -1, dtype=np.int32)
    where = np.flatnonzero(mask)  # a few % of the pixels at most
    keys.ravel()[where] = gt.ravel()[where].astype(np.int32) * 256 + a.ravel()[where]
    regions = connected_components(keys, with_labels=confidence is not None)
    smallest = default_min_area(shape) if min_area is None else min_area
    keep = np.flatnonzero(regions.areas >= smallest)
    keep = keep[np.lexsort((keep, -regions.areas[keep]))][:limit]
    mean_conf = None
    if confidence is not None and regions.labels is not None:
        inside = regions.labels >= 0
        total = np.bincount(regions.labels[inside], weights=confidence[inside], minlength=regions.count)
        mean_conf = total / np.maximum(regions.areas, 1)
    names = scheme.names
    pixels = shape[0] * shape[1]
    return tuple(
        LabelErrorRegion(
            key=key,
            ground_truth=_name(names, int(regions.keys[i]) // 256),
            predicted=_name(names, int(regions.keys[i]) % 256),
            area=int(regions.areas[i]),
            bbox=(int(regions.bboxes[i, 0]), int(regions.bboxes[i, 1]), int(regions.bboxes[i, 2]),
                  int(regions.bboxes[i, 3])),
            image_share=float(regions.areas[i]) / pixels,
            confidence=None if mean_conf is None else float(mean_conf[i]),
        )
        for i in keep.tolist()
    )  # fmt: skip


def label_error_mask(
    gt_ids: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    scheme: EvalScheme,
    *,
    key: str,
    scores: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    smoothing: int | None = None,
) -> np.ndarray:
    """Bool map of the pixels find_label_errors groups into regions (for an overlay; regions under
    `min_area` are still in it)."""
    return _error_pixels(gt_ids, pred_a, pred_b, scheme, key, scores, min_confidence, smoothing)[0]


def _error_pixels(
    gt_ids: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    scheme: EvalScheme,
    key: str,
    scores: tuple[np.ndarray | None, np.ndarray | None],
    min_confidence: float,
    smoothing: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(opened mask, GT classes, A's classes, min confidence map or None)."""
    if not gt_ids.shape == pred_a.shape == pred_b.shape or gt_ids.ndim != 2:
        raise ValueError(f"{key}: GT {gt_ids.shape} and predictions {pred_a.shape}, {pred_b.shape} differ")
    shape = (int(gt_ids.shape[0]), int(gt_ids.shape[1]))
    gt = class_map(gt_ids, scheme, what=f"{key}: ground truth")
    a = class_map(pred_a, scheme, what=f"{key}: prediction A")
    b = class_map(pred_b, scheme, what=f"{key}: prediction B")
    mask = (a == b) & (a != gt) & (gt != IGNORE)
    confidence = _min_confidence(scores, shape, key)
    if confidence is not None:
        mask &= confidence >= min_confidence
    mask = open_mask(mask, default_smoothing(shape) if smoothing is None else smoothing)
    return mask, gt, a, confidence


def _min_confidence(
    scores: tuple[np.ndarray | None, np.ndarray | None], shape: tuple[int, int], key: str
) -> np.ndarray | None:
    # Confidence only when both models gave one: one model's confidence alone is not agreement.
    first, second = scores
    if first is None or second is None:
        return None
    for score in (first, second):
        if score.shape != shape:
            raise ValueError(f"{key}: score map is {score.shape}, the image is {shape}")
    return np.minimum(first, second).astype(np.float32, copy=False)


def _name(names: tuple[str, ...], index: int) -> str:
    return names[index] if index < len(names) and index != IGNORE else NOT_EVALUATED


def rank_label_errors(
    regions: Iterable[LabelErrorRegion], limit: int = DEFAULT_LIMIT
) -> tuple[LabelErrorRegion, ...]:
    """One dataset-wide list, largest first (ties: image key, then position), at most `limit` long."""
    ordered = sorted(regions, key=lambda r: (-r.area, r.key, r.bbox[1], r.bbox[0]))
    return tuple(ordered[:limit])


_CSV_FIELDS = ("rank", "key", "ground_truth", "predicted", "area", "x0", "y0", "x1", "y1", "image_share",
               "confidence")  # fmt: skip


def label_errors_csv(regions: Sequence[LabelErrorRegion]) -> str:
    """The ranked list as CSV text (rank from 1; bbox as x0, y0, x1, y1 with x1, y1 exclusive)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_FIELDS)
    for rank, r in enumerate(regions, start=1):
        conf = "" if r.confidence is None else f"{r.confidence:.4f}"
        writer.writerow(
            [rank, r.key, r.ground_truth, r.predicted, r.area, *r.bbox, f"{r.image_share:.6f}", conf]
        )
    return out.getvalue()


def write_label_errors(
    path: str | Path, regions: Sequence[LabelErrorRegion], *, context: dict[str, object]
) -> None:
    """Write the ranked list atomically: CSV for a .csv path, else JSON with `context` (models, scheme...)."""
    target = Path(path)
    if target.suffix.lower() == ".csv":
        atomic_write_text(target, label_errors_csv(regions))
        return
    document = {**context, "label_errors": [r.to_dict() for r in regions]}
    atomic_write_text(target, json.dumps(document, indent=2) + "\n")
