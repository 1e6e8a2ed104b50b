"""Confusion matrices and the official Cityscapes scores (evalPixelLevelSemanticLabeling, 2.3.0).

Everything starts from one confusion matrix in the ground truth's id space (for Cityscapes the official
34x34 labelIds matrix, plus one column for predicted values outside the id space). Every score of every
EvalScheme is an exact function of that matrix (and, for iIoU, of per-instance counts), so per-image
matrices can be summed, cached and re-scored under another scheme without touching pixels again.

For a class k with member ids S and the scheme's evaluated ids E:
    tp = M[S, S].sum();  fn = M[S, :].sum() - tp;  fp = M[E \\ S, S].sum()
which is the official class IoU for the trainids scheme and the official category IoU for categories.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.domain.errors import InputError, SchemeError
from app.core.domain.labels import (
    AVG_CLASS_SIZE,
    CATEGORY_NAMES,
    EVAL_CATEGORIES,
    LABEL_BY_ID,
    LABELS,
    NUM_LABEL_IDS,
    EvalScheme,
)

# Instance classes of the official generateInstanceStats: has instances and not ignoreInEval.
INSTANCE_CLASS_IDS: tuple[int, ...] = tuple(
    lb.id for lb in LABELS if lb.id >= 0 and lb.has_instances and not lb.ignore_in_eval
)
# Instance categories: every label of the category (id >= 0) has instances. As in the official script their
# id lists keep the *ignored* caravan/trailer (29, 30): predicting them counts as 'vehicle' for category iIoU.
INSTANCE_CATEGORIES: tuple[str, ...] = tuple(
    cat
    for cat in CATEGORY_NAMES
    if all(lb.has_instances for lb in LABELS if lb.category == cat and lb.id >= 0)
    and any(lb.category == cat for lb in LABELS)
)
INSTANCE_CATEGORY_IDS: tuple[tuple[int, ...], ...] = tuple(
    tuple(lb.id for lb in LABELS if lb.category == cat and lb.id >= 0) for cat in INSTANCE_CATEGORIES
)
# The official 'notIgnored' labels: the rows whose pixels count at all.
CITYSCAPES_EVALUATED_IDS: tuple[int, ...] = tuple(
    lb.id for lb in LABELS if lb.id >= 0 and not lb.ignore_in_eval
)

_INSTANCE_DIVISOR = 1000  # Cityscapes instanceIds: labelId * 1000 + instance number; <= 1000 is no instance
_MAX_INSTANCE_ID = NUM_LABEL_IDS * _INSTANCE_DIVISOR  # first id whose label does not exist
_OUTSIDE = NUM_LABEL_IDS  # column of the instance/prediction histogram for predictions outside labelIds
# Per labelId: its index in INSTANCE_CLASS_IDS (-1: not counted) and its instance category (C: none).
_LABEL_CLASS = np.full(NUM_LABEL_IDS, -1, dtype=np.intp)
_LABEL_CLASS[list(INSTANCE_CLASS_IDS)] = np.arange(len(INSTANCE_CLASS_IDS))
_LABEL_CATEGORY = np.full(NUM_LABEL_IDS, len(INSTANCE_CATEGORIES), dtype=np.intp)
for _c, _cat in enumerate(INSTANCE_CATEGORIES):
    _LABEL_CATEGORY[[i for i in INSTANCE_CLASS_IDS if LABEL_BY_ID[i].category == _cat]] = _c
# [category, predicted labelId or _OUTSIDE] -> the prediction is in the category's id list (last row: none).
_CATEGORY_MEMBER = np.zeros((len(INSTANCE_CATEGORIES) + 1, NUM_LABEL_IDS + 1), dtype=bool)
for _c, _ids in enumerate(INSTANCE_CATEGORY_IDS):
    _CATEGORY_MEMBER[_c, list(_ids)] = True
_AVG_SIZE = np.array([AVG_CLASS_SIZE[LABEL_BY_ID[i].name] for i in INSTANCE_CLASS_IDS], dtype=np.float64)

# Label maps are mostly long runs of equal pixels. Counting one entry per run (weighted by its length) is
# ~4x faster than one per pixel, as long as runs average at least this many pixels; noisy maps fall back.
_MIN_MEAN_RUN = 8


def _run_starts(*flats: np.ndarray) -> np.ndarray | None:
    """Start index of every run over which all `flats` stay constant, or None when runs are too short."""
    size = flats[0].size
    if size < 2 * _MIN_MEAN_RUN:
        return None
    change = flats[0][1:] != flats[0][:-1]
    for flat in flats[1:]:
        change |= flat[1:] != flat[:-1]
    runs = int(np.count_nonzero(change)) + 1
    if runs * _MIN_MEAN_RUN > size:
        return None
    starts = np.empty(runs, dtype=np.intp)
    starts[0] = 0
    np.add(np.flatnonzero(change), 1, out=starts[1:])
    return starts


def _run_lengths(starts: np.ndarray, size: int) -> np.ndarray:
    return np.diff(starts, append=size)


def confusion(gt: np.ndarray, pred: np.ndarray, n: int, *, path: str | Path | None = None) -> np.ndarray:
    """Confusion matrix of one image in the id space: (n, n + 1) int64, rows = GT id, cols = predicted id.

    GT values >= n (and < 0) are not counted; predicted values outside 0..n-1 are counted in column n
    ('outside'). For Cityscapes (n = 34) rows/cols 0..33 equal the official confMatrix.
    `path` names the image in errors.
    """
    if gt.shape != pred.shape:
        raise InputError(path, f"prediction has shape {pred.shape} but the ground truth has {gt.shape}")
    if gt.dtype.kind not in "iub" or pred.dtype.kind not in "iub":
        raise InputError(path, f"label maps must hold integers, got {gt.dtype} and {pred.dtype}")
    if n < 1:
        raise ValueError(f"id space size must be at least 1, got {n}")
    g, p = gt.ravel(), pred.ravel()
    starts = _run_starts(g, p)
    if starts is None and n <= 255 and (g.dtype != np.uint8 or p.dtype != np.uint8):
        g, p = _as_uint8_if_lossless(g), _as_uint8_if_lossless(p)
    if starts is not None:
        counts = _pair_counts(g[starts], p[starts], n, _run_lengths(starts, g.size))
    elif g.dtype == np.uint8 and p.dtype == np.uint8 and n <= 255:
        # uint16 suffices: 255 * (n + 1) + n < 65536. GT values >= n land past n * (n + 1) and are cut off.
        index = np.multiply(g, np.uint16(n + 1), dtype=np.uint16)
        np.add(index, p if int(p.max(initial=0)) < n else np.minimum(p, np.uint8(n)), out=index)
        counts = np.bincount(index, minlength=256 * (n + 1))
    else:
        counts = _pair_counts(g, p, n, None)
    return counts[: n * (n + 1)].reshape(n, n + 1).astype(np.int64)


def _as_uint8_if_lossless(values: np.ndarray) -> np.ndarray:
    # Wider label maps holding 0..255 take the fast uint8 path instead of int64 arithmetic.
    if values.dtype == np.uint8 or values.size == 0 or values.min() < 0 or values.max() > 255:
        return values
    return values.astype(np.uint8)


def _pair_counts(g: np.ndarray, p: np.ndarray, n: int, weights: np.ndarray | None) -> np.ndarray:
    g = g.astype(np.int64)
    p = p.astype(np.int64)
    keep = (g >= 0) & (g < n)
    g, p = g[keep], p[keep]
    p[(p < 0) | (p > n)] = n
    # Weighted counts come back as float64: exact, as pixel counts stay far below 2**53.
    return np.bincount(g * (n + 1) + p, None if weights is None else weights[keep], minlength=n * (n + 1))


@dataclass(frozen=True, eq=False)
class SparseCounts:
    """A confusion matrix stored as its non-zero cells: one image's matrix over the 34 labelIds has
    1,190 cells of which a few dozen are used, so a 5,000-image evaluation keeps ~1 MB per model instead
    of ~24 MB (what drill-down and failure mining need per image)."""

    shape: tuple[int, int]
    cells: np.ndarray  # flat indices of the non-zero cells, ascending (uint16, or int64 past 65,535 cells)
    counts: np.ndarray  # their values, int64

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> SparseCounts:
        flat = np.asarray(matrix).ravel()
        cells = np.flatnonzero(flat)
        dtype = np.uint16 if flat.size <= np.iinfo(np.uint16).max + 1 else np.int64
        rows, cols = matrix.shape
        return cls((int(rows), int(cols)), cells.astype(dtype), flat[cells].astype(np.int64))

    def dense(self) -> np.ndarray:
        """The full (rows, cols) int64 matrix."""
        out = np.zeros(self.shape[0] * self.shape[1], dtype=np.int64)
        out[self.cells] = self.counts
        return out.reshape(self.shape)

    def add_to(self, matrix: np.ndarray) -> None:
        """matrix += self, in place (cells are unique: a plain fancy-index add is exact)."""
        if matrix.shape != self.shape:
            raise ValueError(f"cannot add a {self.shape} matrix to one of {matrix.shape}")
        matrix.reshape(-1)[self.cells] += self.counts


@dataclass(frozen=True)
class InstanceCounts:
    """Instance statistics for iIoU (one image, or summed): weighted and raw TP/FN per class and category."""

    class_tp_w: np.ndarray  # (num instance classes,) float64, in INSTANCE_CLASS_IDS order
    class_fn_w: np.ndarray
    class_tp: np.ndarray  # int64
    class_fn: np.ndarray
    cat_tp_w: np.ndarray  # (num instance categories,) float64, in INSTANCE_CATEGORIES order
    cat_fn_w: np.ndarray
    cat_tp: np.ndarray
    cat_fn: np.ndarray

    def __add__(self, other: InstanceCounts) -> InstanceCounts:
        """Element-wise sum: the counts of both images (or datasets) together."""
        if not isinstance(other, InstanceCounts):
            return NotImplemented
        return InstanceCounts(
            self.class_tp_w + other.class_tp_w,
            self.class_fn_w + other.class_fn_w,
            self.class_tp + other.class_tp,
            self.class_fn + other.class_fn,
            self.cat_tp_w + other.cat_tp_w,
            self.cat_fn_w + other.cat_fn_w,
            self.cat_tp + other.cat_tp,
            self.cat_fn + other.cat_fn,
        )

    @staticmethod
    def zeros() -> InstanceCounts:
        """Counts of an image without instances (the neutral element of +)."""
        k, c = len(INSTANCE_CLASS_IDS), len(INSTANCE_CATEGORIES)
        return InstanceCounts(
            np.zeros(k), np.zeros(k), np.zeros(k, np.int64), np.zeros(k, np.int64),
            np.zeros(c), np.zeros(c), np.zeros(c, np.int64), np.zeros(c, np.int64),
        )  # fmt: skip


def instance_counts(
    instances: np.ndarray, pred_ids: np.ndarray, *, path: str | Path | None = None
) -> InstanceCounts:
    """Official instance statistics of one image: `instances` the instanceIds map (int32), `pred_ids` the
    prediction in labelIds. Only instances with id > 1000 of non-ignored instance classes count.

    One histogram of (instance id, predicted id) over runs of equal pixels (or over the instance pixels of
    noisy maps) instead of the official full-image mask per instance. `path` names the file in errors.
    """
    if instances.shape != pred_ids.shape:
        raise InputError(path, f"instance map is {instances.shape} but the prediction is {pred_ids.shape}")
    if instances.dtype.kind not in "iu" or pred_ids.dtype.kind not in "iu":
        raise InputError(
            path, f"instances and prediction must be integers: {instances.dtype}, {pred_ids.dtype}"
        )
    flat_ids, flat_pred = instances.ravel(), pred_ids.ravel()
    starts = _run_starts(flat_ids, flat_pred)
    weights: np.ndarray | None = None
    if starts is not None:
        ids, pred, weights = flat_ids[starts], flat_pred[starts], _run_lengths(starts, flat_ids.size)
        selected = ids > _INSTANCE_DIVISOR
        ids, pred, weights = ids[selected], pred[selected], weights[selected]
    else:
        selected = flat_ids > _INSTANCE_DIVISOR
        ids, pred = flat_ids[selected], flat_pred[selected]
    if ids.size == 0:
        return InstanceCounts.zeros()
    top, low = int(ids.max()), int(ids.min())
    if top >= _MAX_INSTANCE_ID:
        raise InputError(
            path, f"instance id {top} names labelId {top // _INSTANCE_DIVISOR}, which is unknown"
        )
    pred = pred.astype(np.intp)
    pred[(pred < 0) | (pred > _OUTSIDE)] = _OUTSIDE
    width = _OUTSIDE + 1
    key = (ids.astype(np.intp) - low) * width + pred
    hist = np.bincount(key, weights, minlength=(top - low + 1) * width).reshape(-1, width)
    sizes = hist.sum(axis=1)
    present = np.flatnonzero(sizes)
    return _counts_from_histogram(hist[present], present + low, path)


def _counts_from_histogram(hist: np.ndarray, inst_ids: np.ndarray, path: str | Path | None) -> InstanceCounts:
    """Official per-instance TP/FN and weights from one (instance, predicted labelId) histogram row each."""
    labels = inst_ids // _INSTANCE_DIVISOR
    cls = _LABEL_CLASS[labels]
    counted = cls >= 0
    _check_instance_labels(labels[~counted], path)
    hist, labels, cls = hist[counted].astype(np.int64), labels[counted], cls[counted]
    size = hist.sum(axis=1)
    tp = hist[np.arange(len(labels)), labels]
    cat = _LABEL_CATEGORY[labels]
    cat_tp = (hist * _CATEGORY_MEMBER[cat]).sum(axis=1)
    weight = _AVG_SIZE[cls] / size
    has_cat = cat < len(INSTANCE_CATEGORIES)
    k, c = len(INSTANCE_CLASS_IDS), len(INSTANCE_CATEGORIES)
    return InstanceCounts(
        np.bincount(cls, weights=tp * weight, minlength=k),
        np.bincount(cls, weights=(size - tp) * weight, minlength=k),
        np.bincount(cls, weights=tp, minlength=k).astype(np.int64),
        np.bincount(cls, weights=size - tp, minlength=k).astype(np.int64),
        np.bincount(cat[has_cat], weights=(cat_tp * weight)[has_cat], minlength=c),
        np.bincount(cat[has_cat], weights=((size - cat_tp) * weight)[has_cat], minlength=c),
        np.bincount(cat[has_cat], weights=cat_tp[has_cat], minlength=c).astype(np.int64),
        np.bincount(cat[has_cat], weights=(size - cat_tp)[has_cat], minlength=c).astype(np.int64),
    )


def _check_instance_labels(labels: np.ndarray, path: str | Path | None) -> None:
    # Ignored labels (caravan, trailer, void) are skipped as the official script does; instances of a label
    # that has none (e.g. 7001 'road') make the official script crash, so they are refused here.
    for label_id in np.unique(labels).tolist():
        label = LABEL_BY_ID[label_id]
        if not label.ignore_in_eval:
            raise InputError(
                path, f"instance ids {label_id}xxx are {label.name!r}, a class without instances"
            )


@dataclass(frozen=True)
class Scores:
    """Scores of one image or a whole dataset under one EvalScheme. NaN where undefined."""

    class_names: tuple[str, ...]
    iou: np.ndarray  # (K,) float64
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    iiou: np.ndarray  # (K,) NaN for classes without instances
    miou: float  # mean over non-NaN iou
    miiou: float
    pixel_accuracy: float
    category_names: tuple[str, ...]  # Cityscapes only, else ()
    category_iou: np.ndarray  # (C,)
    category_iiou: np.ndarray
    mean_category_iou: float
    mean_category_iiou: float
    matrix: np.ndarray  # (K, K + 1) int64 aggregated to the evaluated classes; col K = not an evaluated class

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict keyed by class name (NaN -> None)."""
        classes = {
            name: {
                "iou": _json_float(self.iou[k]),
                "precision": _json_float(self.precision[k]),
                "recall": _json_float(self.recall[k]),
                "f1": _json_float(self.f1[k]),
                "iiou": _json_float(self.iiou[k]),
            }
            for k, name in enumerate(self.class_names)
        }
        categories = {
            name: {"iou": _json_float(self.category_iou[c]), "iiou": _json_float(self.category_iiou[c])}
            for c, name in enumerate(self.category_names)
        }
        return {
            "classes": classes,
            "miou": _json_float(self.miou),
            "miiou": _json_float(self.miiou),
            "pixel_accuracy": _json_float(self.pixel_accuracy),
            "categories": categories,
            "mean_category_iou": _json_float(self.mean_category_iou),
            "mean_category_iiou": _json_float(self.mean_category_iiou),
            "confusion": {
                "rows": list(self.class_names),
                "columns": [*self.class_names, "(not evaluated)"],
                "matrix": self.matrix.tolist(),
            },
        }


def _json_float(value: float | np.floating) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def compute_scores(matrix: np.ndarray, scheme: EvalScheme, inst: InstanceCounts | None = None) -> Scores:
    """Scores from an id-space confusion matrix (n, n + 1) and optional instance counts.

    An (n, n) matrix (the official confMatrix) is accepted too. Without `inst` every iIoU is NaN.
    F1 is computed as 2tp / (2tp + fp + fn): equal to 2PR / (P + R) where that is defined, 0 for a class
    that was predicted or present but never hit, NaN exactly where IoU is NaN.
    """
    m = _check_matrix(matrix, scheme)
    agg = aggregate(m, scheme.members)
    num = scheme.num_classes
    tp, fp, fn = _tp_fp_fn(agg)
    iou = _ratio(tp, tp + fp + fn)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    pixel_accuracy = float(_ratio(np.array([tp.sum()]), np.array([agg.sum()]))[0])
    iiou = np.full(num, np.nan)
    category_names: tuple[str, ...] = ()
    category_iou = category_iiou = np.zeros(0)
    if scheme.is_cityscapes:
        category_names = EVAL_CATEGORIES.names
        cat_tp, cat_fp, cat_fn = _tp_fp_fn(aggregate(m, EVAL_CATEGORIES.members))
        category_iou = _ratio(cat_tp, cat_tp + cat_fp + cat_fn)
        class_iiou, category_iiou = _instance_ious(m, inst)
        iiou = _scheme_iiou(scheme, class_iiou, category_iiou)
    return Scores(
        class_names=scheme.names,
        iou=iou,
        precision=precision,
        recall=recall,
        f1=f1,
        iiou=iiou,
        miou=_nanmean(iou),
        miiou=_nanmean(iiou),
        pixel_accuracy=pixel_accuracy,
        category_names=category_names,
        category_iou=category_iou,
        category_iiou=category_iiou,
        mean_category_iou=_nanmean(category_iou),
        mean_category_iiou=_nanmean(category_iiou),
        matrix=agg,
    )


def _check_matrix(matrix: np.ndarray, scheme: EvalScheme) -> np.ndarray:
    n = scheme.id_space.num_classes
    m = np.asarray(matrix)
    if m.shape == (n, n):
        m = np.concatenate([m, np.zeros((n, 1), dtype=m.dtype)], axis=1)
    if m.shape != (n, n + 1):
        raise ValueError(f"scheme {scheme.key!r} needs a ({n}, {n + 1}) matrix, got {m.shape}")
    return m.astype(np.int64, copy=False)


def aggregate(matrix: np.ndarray, members: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Sum an id-space matrix (n, n + 1) into groups: out[a, b] = matrix[S_a, S_b].sum(), shape (K, K + 1).

    Column K collects everything predicted outside the groups (ignored ids and column n included); rows of
    ids in no group are dropped.
    """
    n = matrix.shape[0]
    k = len(members)
    group = np.full(matrix.shape[1], k, dtype=np.intp)
    for index, ids in enumerate(members):
        if any(not 0 <= i < n for i in ids) or np.any(group[list(ids)] != k):
            raise SchemeError(f"class {index}: ids {ids} are outside 0..{n - 1} or in two classes")
        group[list(ids)] = index
    if all(len(ids) == 1 and ids[0] == index for index, ids in enumerate(members)) and k == n:
        return matrix.astype(np.int64, copy=True)  # identity grouping (custom schemes): nothing to sum
    rows = np.zeros((k + 1, matrix.shape[1]), dtype=np.int64)
    np.add.at(rows, group[:n], matrix)
    out = np.zeros((k + 1, k + 1), dtype=np.int64)
    np.add.at(out.T, group, rows.T)
    return out[:k]


def _tp_fp_fn(agg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = agg.shape[0]
    tp = np.diagonal(agg).copy()
    fn = agg.sum(axis=1) - tp
    fp = agg[:, :k].sum(axis=0) - tp
    return tp, fp, fn


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    valid = values[~np.isnan(values)]
    # Python's sum in index order, as the official getScoreAverage, so averages match to the last bit.
    return sum(valid.tolist()) / len(valid) if len(valid) else math.nan


def _instance_ious(m: np.ndarray, inst: InstanceCounts | None) -> tuple[dict[int, float], np.ndarray]:
    """Official class iIoU (by labelId) and category iIoU (INSTANCE_CATEGORIES order)."""
    if inst is None:
        return {}, _category_vector({})
    evaluated = list(CITYSCAPES_EVALUATED_IDS)
    class_iiou: dict[int, float] = {}
    for c, label_id in enumerate(INSTANCE_CLASS_IDS):
        fp = int(m[evaluated, label_id].sum() - m[label_id, label_id])
        class_iiou[label_id] = _weighted_iou(inst.class_tp_w[c], fp, inst.class_fn_w[c])
    by_category: dict[str, float] = {}
    for c, (cat, ids) in enumerate(zip(INSTANCE_CATEGORIES, INSTANCE_CATEGORY_IDS, strict=True)):
        rows = [i for i in evaluated if LABEL_BY_ID[i].category != cat]
        fp = int(m[np.ix_(rows, list(ids))].sum())
        by_category[cat] = _weighted_iou(inst.cat_tp_w[c], fp, inst.cat_fn_w[c])
    return class_iiou, _category_vector(by_category)


def _weighted_iou(tp: float, fp: int, fn: float) -> float:
    den = tp + fp + fn
    return float(tp) / den if den != 0 else math.nan


def _category_vector(by_category: dict[str, float]) -> np.ndarray:
    return np.array([by_category.get(name, math.nan) for name in CATEGORY_NAMES], dtype=np.float64)


def _scheme_iiou(scheme: EvalScheme, class_iiou: dict[int, float], category_iiou: np.ndarray) -> np.ndarray:
    # A class that is one instance label gets its class iIoU; a class that is exactly an instance category's
    # evaluated ids (the categories scheme) gets the category iIoU; anything else has none.
    out = np.full(scheme.num_classes, np.nan)
    category_members = dict(zip(EVAL_CATEGORIES.names, EVAL_CATEGORIES.members, strict=True))
    for k, (name, ids) in enumerate(zip(scheme.names, scheme.members, strict=True)):
        if len(ids) == 1 and ids[0] in class_iiou:
            out[k] = class_iiou[ids[0]]
        elif name in INSTANCE_CATEGORIES and set(ids) == set(category_members[name]):
            out[k] = category_iiou[CATEGORY_NAMES.index(name)]
    return out


class ConfusionAccumulator:
    """Sums the per-image matrices (and instance counts) of one run; safe to feed from worker threads."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._matrix = np.zeros((n, n + 1), dtype=np.int64)
        self._instances: InstanceCounts | None = None
        self.images = 0
        self.instance_images = 0
        self._lock = threading.Lock()

    def add(
        self,
        gt: np.ndarray,
        pred: np.ndarray,
        instances: np.ndarray | None = None,
        *,
        path: str | Path | None = None,
    ) -> np.ndarray:
        """Count one image (GT and prediction in the id space); returns its (n, n + 1) matrix."""
        matrix = confusion(gt, pred, self.n, path=path)
        counts = None
        if instances is not None:
            if self.n != NUM_LABEL_IDS:
                raise ValueError("instance counts need predictions in Cityscapes labelIds")
            counts = instance_counts(instances, pred, path=path)
        self.merge(matrix, counts)
        return matrix

    def merge(self, matrix: np.ndarray, instances: InstanceCounts | None = None) -> None:
        """Add a per-image matrix computed earlier (e.g. cached) and its instance counts."""
        if matrix.shape != self._matrix.shape:
            raise ValueError(f"expected a {self._matrix.shape} matrix, got {matrix.shape}")
        with self._lock:
            self._matrix += matrix
            self.images += 1
            if instances is not None:
                self.instance_images += 1
                base = self._instances if self._instances is not None else InstanceCounts.zeros()
                self._instances = base + instances

    @property
    def matrix(self) -> np.ndarray:
        """The dataset matrix so far (a copy)."""
        with self._lock:
            return self._matrix.copy()

    @property
    def instances(self) -> InstanceCounts | None:
        """Summed instance counts, or None when no image came with instances."""
        with self._lock:
            return self._instances

    def scores(self, scheme: EvalScheme) -> Scores:
        """Scores of everything added so far."""
        with self._lock:
            matrix, instances = self._matrix.copy(), self._instances
        return compute_scores(matrix, scheme, instances)
