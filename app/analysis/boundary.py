"""Boundary quality per class: Boundary IoU (Cheng et al., CVPR 2021) and the BF score (Csurka et al.,
BMVC 2013), as additive per-class pixel counts so that dataset values are sums, like confusion matrices.

Both work on the EvalScheme's classes (id-space maps go through `scheme.id_to_class()`; ids of no class,
e.g. void, are one more label).

**Boundary IoU.** The boundary region of a class mask M is the pixels of M within distance d of M's contour:
M minus its erosion by the (2d + 1)-pixel square (d iterations of a 3x3 kernel, as the paper's reference
`mask_to_boundary`), with the image's outside counted as not-M, so a mask cut by the image edge has a
boundary there too (the reference pads with zeros). Per class: |G_d ∩ P_d| / |G_d ∪ P_d|. Default d: 2 % of
the image diagonal, rounded, at least 1 (the paper's `dilation_ratio=0.02`; 46 px at 1024x2048).

**BF score.** The contour of a class mask is its pixels with a 3x3 neighbour outside it (the image edge is
no contour here: it is where the camera stopped, not an object border). A predicted contour pixel is matched
when a ground-truth contour pixel of the same class lies within Chebyshev distance θ, and vice versa;
precision = matched predicted / predicted contour pixels, recall = matched GT / GT contour pixels,
BF = 2PR / (P + R). Default θ: 0.75 % of the image diagonal, rounded, at least 1 (17 px at 1024x2048),
the tolerance of Csurka et al. and MATLAB's bfscore; distances are Chebyshev (square windows) where they use
Euclidean ones, which makes the tolerance region a square rather than a disk.

**Ignored ground truth.** As in the Cityscapes evaluation, a pixel whose ground truth is in no evaluated
class counts in no set: predicted boundary / contour pixels there are dropped (ground-truth ones lie inside
an evaluated class by construction). Those pixels still shape the masks: a road next to void has a contour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from app.analysis.classes import class_map
from app.analysis.morphology import border_band, differs_within, dilate, window_reduce
from app.core.domain.labels import IGNORE, EvalScheme

BIOU_RATIO = 0.02  # Cheng et al. 2021: d = 2 % of the image diagonal
BF_RATIO = 0.0075  # Csurka et al. 2013 / MATLAB bfscore: θ = 0.75 % of the image diagonal


def default_width(shape: tuple[int, int], ratio: float) -> int:
    """round(ratio * image diagonal), at least 1 pixel."""
    return max(1, round(ratio * math.hypot(shape[0], shape[1])))


@dataclass(frozen=True)
class BoundaryCounts:
    """Per-class boundary pixel counts of one image or (summed) a dataset; all (K,) int64."""

    biou_inter: np.ndarray  # |G_d ∩ P_d|
    biou_union: np.ndarray  # |G_d ∪ P_d|
    bf_pred: np.ndarray  # predicted contour pixels
    bf_pred_matched: np.ndarray  # ... within θ of a GT contour pixel of the class
    bf_gt: np.ndarray  # GT contour pixels
    bf_gt_matched: np.ndarray  # ... within θ of a predicted contour pixel of the class
    width: int  # d of Boundary IoU, pixels
    tolerance: int  # θ of the BF score, pixels

    def __add__(self, other: BoundaryCounts) -> BoundaryCounts:
        """Counts of both together (same d and θ only)."""
        if not isinstance(other, BoundaryCounts):
            return NotImplemented
        if (self.width, self.tolerance) != (other.width, other.tolerance):
            raise ValueError(
                f"cannot add boundary counts of d={self.width}, θ={self.tolerance} and "
                f"d={other.width}, θ={other.tolerance}"
            )
        return BoundaryCounts(
            self.biou_inter + other.biou_inter,
            self.biou_union + other.biou_union,
            self.bf_pred + other.bf_pred,
            self.bf_pred_matched + other.bf_pred_matched,
            self.bf_gt + other.bf_gt,
            self.bf_gt_matched + other.bf_gt_matched,
            self.width,
            self.tolerance,
        )


@dataclass(frozen=True)
class BoundaryScores:
    """Boundary IoU and BF per class (NaN where the class has no boundary in GT nor prediction)."""

    class_names: tuple[str, ...]
    boundary_iou: np.ndarray  # (K,)
    bf_precision: np.ndarray
    bf_recall: np.ndarray
    bf: np.ndarray
    mean_boundary_iou: float  # mean over defined classes
    mean_bf: float
    width: int
    tolerance: int

    def to_dict(self) -> dict[str, object]:
        """JSON: `boundary_iou` (mean over classes) beside per-class values, with d and θ in pixels."""
        return {
            "boundary_iou": _num(self.mean_boundary_iou),
            "bf": _num(self.mean_bf),
            "boundary_width_px": self.width,
            "bf_tolerance_px": self.tolerance,
            "classes": {
                name: {
                    "boundary_iou": _num(self.boundary_iou[k]),
                    "bf": _num(self.bf[k]),
                    "bf_precision": _num(self.bf_precision[k]),
                    "bf_recall": _num(self.bf_recall[k]),
                }
                for k, name in enumerate(self.class_names)
            },
        }


def boundary_counts(
    gt_ids: np.ndarray,
    pred_ids: np.ndarray,
    scheme: EvalScheme,
    *,
    width: int | None = None,
    tolerance: int | None = None,
) -> BoundaryCounts:
    """Boundary IoU and BF counts of one image: GT and prediction in the scheme's id space (uint8)."""
    return boundary_counts_many(gt_ids, [pred_ids], scheme, width=width, tolerance=tolerance)[0]


@dataclass(frozen=True)
class _Side:
    """One label map's part of the counts: its classes, boundary region, contour and matching targets."""

    labels: np.ndarray  # scheme classes (IGNORE: none)
    region: np.ndarray  # boundary region within d, counted pixels only
    contour: np.ndarray  # contour pixels, counted pixels only
    near: np.ndarray  # (words, H, W) class bits of contours within θ (all contour pixels)


def _side(labels: np.ndarray, valid: np.ndarray, band: np.ndarray, d: int, theta: int, k: int) -> _Side:
    edges = differs_within(labels, 1)
    counted = valid & (labels != IGNORE)
    # Matching targets are whole contours; only the pixels counted skip ignored ground truth.
    near = _near(edges, labels, theta, k)
    return _Side(labels, (dilate(edges, d - 1) | band) & counted, edges & counted, near)


def boundary_counts_many(
    gt_ids: np.ndarray,
    predictions: Sequence[np.ndarray],
    scheme: EvalScheme,
    *,
    width: int | None = None,
    tolerance: int | None = None,
) -> tuple[BoundaryCounts, ...]:
    """boundary_counts of several models' predictions of one image, the ground truth's part made once."""
    shape = (int(gt_ids.shape[0]), int(gt_ids.shape[-1]))
    if gt_ids.ndim != 2 or any(p.shape != gt_ids.shape for p in predictions):
        raise ValueError(
            f"GT {gt_ids.shape} and predictions {[p.shape for p in predictions]} must be equal 2-D shapes"
        )
    d = default_width(shape, BIOU_RATIO) if width is None else width
    theta = default_width(shape, BF_RATIO) if tolerance is None else tolerance
    if d < 1 or theta < 0:
        raise ValueError(f"boundary width must be >= 1 and tolerance >= 0, got {d} and {theta}")
    k = scheme.num_classes
    band = border_band(shape, d)
    gt_classes = class_map(gt_ids, scheme, what="ground truth")
    valid = gt_classes != IGNORE
    gt = _side(gt_classes, valid, band, d, theta, k)
    gt_n = _region_counts(gt.labels, gt.region, k)
    gt_contour_n = _per_class(gt.contour, gt.labels, k)
    out = []
    for pred_ids in predictions:
        pred = _side(class_map(pred_ids, scheme, what="prediction"), valid, band, d, theta, k)
        inter = _region_counts(gt.labels, gt.region & pred.region & (gt.labels == pred.labels), k)
        pred_n = _region_counts(pred.labels, pred.region, k)
        out.append(
            BoundaryCounts(
                biou_inter=inter,
                biou_union=gt_n + pred_n - inter,
                bf_pred=_per_class(pred.contour, pred.labels, k),
                bf_pred_matched=_matched(pred.contour, pred.labels, gt.near, k),
                bf_gt=gt_contour_n,
                bf_gt_matched=_matched(gt.contour, gt.labels, pred.near, k),
                width=d,
                tolerance=theta,
            )
        )
    return tuple(out)


def _per_class(mask: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels.ravel()[np.flatnonzero(mask)], minlength=256)[:k].astype(np.int64)


def _histogram(values: np.ndarray, length: int) -> np.ndarray:
    """np.bincount(values, minlength=length), counted per run of equal values where runs are long (label
    maps are: ~7x faster at 1024x2048), per pixel where they are not."""
    starts = np.flatnonzero(values[1:] != values[:-1]) + 1
    if (starts.size + 1) * 8 > values.size:
        return np.bincount(values, minlength=length)
    starts = np.concatenate([np.zeros(1, dtype=starts.dtype), starts])
    lengths = np.diff(starts, append=values.size)
    return np.bincount(values[starts], weights=lengths, minlength=length).astype(np.int64)


def _region_counts(labels: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Per class, the pixels of a large mask: one run-length histogram of label * 2 + in-mask."""
    code = labels.astype(np.uint16) << 1
    code |= mask
    return _histogram(code.ravel(), 512).reshape(256, 2)[:k, 1].astype(np.int64)


def _near(contour: np.ndarray, labels: np.ndarray, theta: int, k: int) -> np.ndarray:
    """Per pixel, a bit set for each class with a contour pixel within Chebyshev distance θ (the classes'
    contours as bit planes, dilated together by one OR filter)."""
    # The narrowest word that holds one bit per class (19 classes: uint32), 64-class words past that.
    dtype = np.dtype(np.uint8 if k <= 8 else np.uint16 if k <= 16 else np.uint32 if k <= 32 else np.uint64)
    planes = []
    for start in range(0, k, 64):
        classes = np.arange(start, min(k, start + 64))
        bits = np.zeros(256, dtype=dtype)
        bits[classes] = np.left_shift(np.uint64(1), (classes - start).astype(np.uint64)).astype(dtype)
        plane = np.zeros(labels.shape, dtype=dtype)
        where = np.flatnonzero(contour)  # contours are a few % of the pixels: fill only those
        plane.ravel()[where] = bits[labels.ravel()[where]]
        planes.append(window_reduce(plane, theta, np.bitwise_or, 0))
    return planes[0][None] if len(planes) == 1 else np.stack(planes)


def _matched(contour: np.ndarray, labels: np.ndarray, near: np.ndarray, k: int) -> np.ndarray:
    """Per class, the contour pixels whose own class's bit is set in `near`."""
    where = np.flatnonzero(contour)
    cls = labels.ravel()[where].astype(np.int64)
    word, bit = np.divmod(cls, 64)
    flat_near = near.reshape(near.shape[0], -1)
    hit = (flat_near[word, where].astype(np.uint64) >> bit.astype(np.uint64)) & np.uint64(1)
    return np.bincount(cls, weights=hit.astype(np.float64), minlength=k)[:k].astype(np.int64)


def boundary_scores(counts: BoundaryCounts, scheme: EvalScheme) -> BoundaryScores:
    """Scores of one image's (or the summed dataset's) counts: the pooled values."""
    biou = _ratio(counts.biou_inter, counts.biou_union)
    precision = _ratio(counts.bf_pred_matched, counts.bf_pred)
    recall = _ratio(counts.bf_gt_matched, counts.bf_gt)
    f1 = _f1(precision, recall)
    f1[(counts.bf_pred == 0) ^ (counts.bf_gt == 0)] = 0.0  # contour on one side only: nothing matched
    return BoundaryScores(
        class_names=scheme.names,
        boundary_iou=biou,
        bf_precision=precision,
        bf_recall=recall,
        bf=f1,
        mean_boundary_iou=_nanmean(biou),
        mean_bf=_nanmean(f1),
        width=counts.width,
        tolerance=counts.tolerance,
    )


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """2PR / (P + R); 0 where both are 0; NaN where either is undefined."""
    out = np.full(precision.shape, math.nan)
    defined = ~np.isnan(precision) & ~np.isnan(recall)
    total = np.where(defined, precision + recall, 0.0)
    out[defined] = 0.0
    np.divide(2 * precision * recall, total, out=out, where=defined & (total > 0))
    return out


def sum_counts(counts: Iterable[BoundaryCounts]) -> BoundaryCounts | None:
    """The dataset's counts (None for no image)."""
    total: BoundaryCounts | None = None
    for item in counts:
        total = item if total is None else total + item
    return total


def mean_image_scores(counts: Iterable[BoundaryCounts], scheme: EvalScheme) -> tuple[float, float]:
    """(mean over images of each image's mean Boundary IoU, same for BF): Csurka et al. average the BF
    score per image, then over images; images where it is undefined are left out."""
    biou, bf = [], []
    for item in counts:
        scores = boundary_scores(item, scheme)
        biou.append(scores.mean_boundary_iou)
        bf.append(scores.mean_bf)
    return _nanmean(np.array(biou)), _nanmean(np.array(bf))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), math.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    valid = values[~np.isnan(values)]
    return float(sum(valid.tolist()) / len(valid)) if len(valid) else math.nan


def _num(value: float | np.floating) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number
