"""Paired bootstrap by image: is candidate B's mIoU gain over baseline A real, or noise of the image set?

Images are the unit of resampling (pixels of one image are not independent). Resample r draws the row
`rng.integers(0, n, size=(resamples, n))[r]` of image indices (seed `seed`, numpy's default_rng), sums those
images' confusion matrices for A and for B, and scores both exactly as app.core.domain.metrics.compute_scores
does (class IoU tp / (tp + fp + fn) of the scheme's aggregated matrix; NaN classes left out of the mean, the
mean summed in class order). Both models see the same resampled images: the interval is for the paired
difference B − A, much narrower than two separate intervals.

Fast because every class's tp, fp and fn are linear in the matrix: per image they form one row of a
(n, 3K) table, and all resamples' sums are one (R, n) x (n, 6K + 4) product of resample counts (made 250
resamples at a time).

Interval: the 2.5 and 97.5 percentiles of the resampled differences (linear interpolation). With fewer than
`MIN_IMAGES` images, or when two halves of the resamples disagree about the interval (Monte Carlo noise),
the result says `too_small` and why: the gate then does not decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.core.domain.labels import EvalScheme
from app.core.domain.metrics import SparseCounts, aggregate, compute_scores

DEFAULT_RESAMPLES = 2000
MIN_RESAMPLES = 1000
MIN_IMAGES = 5
# An interval is 'unstable' when its two halves' end points differ by more than this share of its width
# (after at least STABLE_FLOOR mIoU points, so zero-width intervals of identical models stay stable).
UNSTABLE_SHARE = 0.25
STABLE_FLOOR = 1e-3
MIN_DEFINED_SHARE = 0.95  # a class's interval needs the class in this share of the resamples
_RESAMPLE_CHUNK = 250  # resamples drawn at once: 250 x n x 8 bytes (10 MB at 5,000 images)
_CHUNK = 256  # images made dense at once (256 x 1,190 cells x 8 bytes = 2.4 MB for labelIds)


@dataclass(frozen=True)
class Interval:
    """A point estimate of B − A and its percentile interval; NaN where undefined."""

    value: float
    low: float
    high: float
    defined: float  # share of resamples where the difference was defined (a class absent from one: NaN)

    def to_dict(self) -> dict[str, object]:
        """`{"value": B − A, "ci95": [lo, hi]}` (null where undefined)."""
        return {"value": _num(self.value), "ci95": [_num(self.low), _num(self.high)]}


@dataclass(frozen=True, eq=False)
class PairedBootstrap:
    """The paired bootstrap of B − A over one image set (see the module docstring)."""

    baseline: str  # model A
    candidate: str  # model B
    scheme: str
    images: int
    resamples: int
    seed: int
    confidence: float
    class_names: tuple[str, ...]
    delta_miou: Interval  # pooled mIoU (one matrix summed over the images)
    delta_mean_image_miou: Interval  # mean over images of each image's own mIoU
    classes: tuple[Interval, ...]  # per class IoU, in class_names order
    pooled_miou: tuple[float, float]  # (A, B)
    mean_image_miou: tuple[float, float]  # (A, B)
    too_small: bool
    reason: str | None
    samples: np.ndarray  # (R,) resampled pooled ΔmIoU, sorted: other confidences without recomputing
    class_samples: np.ndarray  # (R, K) resampled per-class ΔIoU (NaN where undefined), resample order

    def to_dict(self) -> dict[str, object]:
        """The JSON `comparison` section: B − A with 95 % intervals, per class too."""
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "scheme": self.scheme,
            "images": self.images,
            "resamples": self.resamples,
            "seed": self.seed,
            "confidence": self.confidence,
            "method": "paired bootstrap by image, percentile interval",
            "delta_miou": self.delta_miou.to_dict(),
            "delta_mean_image_miou": self.delta_mean_image_miou.to_dict(),
            "classes": {n: c.to_dict() for n, c in zip(self.class_names, self.classes, strict=True)},
            "pooled_miou": {"baseline": _num(self.pooled_miou[0]), "candidate": _num(self.pooled_miou[1])},
            "mean_image_miou": {
                "baseline": _num(self.mean_image_miou[0]),
                "candidate": _num(self.mean_image_miou[1]),
            },
            "too_small": self.too_small,
            "reason": self.reason,
        }


def class_totals(matrix: np.ndarray, scheme: EvalScheme) -> np.ndarray:
    """(3, K): tp, tp + fn (GT pixels) and tp + fp (predicted pixels on evaluated GT) per class of one
    id-space matrix (n, n + 1), as compute_scores counts them."""
    flat = np.asarray(matrix, dtype=np.float64).reshape(1, -1)
    return (flat @ _totals_weights(scheme)).reshape(3, scheme.num_classes)


def _totals_weights(scheme: EvalScheme) -> np.ndarray:
    """(n * (n + 1), 3K) 0/1 weights: a flattened id-space matrix times this is its tp | gt | predicted
    row. Built through aggregate() (the grouping compute_scores uses) applied to every unit matrix."""
    n, k = scheme.id_space.num_classes, scheme.num_classes
    aggregate(np.zeros((n, n + 1), dtype=np.int64), scheme.members)  # refuses malformed schemes
    group = np.full(n + 1, k, dtype=np.intp)
    for index, ids in enumerate(scheme.members):
        group[list(ids)] = index
    rows, cols = group[:n, None], group[None, :]  # the class of each cell's GT id and predicted id
    weights = np.zeros((n, n + 1, 3 * k))
    for c in range(k):
        weights[:, :, c] = (rows == c) & (cols == c)
        weights[:, :, k + c] = np.broadcast_to(rows == c, (n, n + 1))
        weights[:, :, 2 * k + c] = (rows < k) & (cols == c)
    return weights.reshape(n * (n + 1), 3 * k)


def paired_bootstrap(
    matrices_a: Sequence[SparseCounts | np.ndarray],
    matrices_b: Sequence[SparseCounts | np.ndarray],
    scheme: EvalScheme,
    *,
    names: tuple[str, str] = ("A", "B"),
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedBootstrap:
    """Paired bootstrap of B − A from per-image id-space matrices of the same images, in the same order."""
    _check_arguments(len(matrices_a), len(matrices_b), resamples, confidence)
    n = len(matrices_a)
    table_a, table_b = _image_table(matrices_a, scheme), _image_table(matrices_b, scheme)
    image_a, image_b = class_mean(_iou(table_a)), class_mean(_iou(table_b))
    # One product for everything resampled: both models' class totals and per-image mIoU sums and counts.
    width = table_a.shape[1]
    per_image = np.stack(
        [np.nan_to_num(image_a), ~np.isnan(image_a), np.nan_to_num(image_b), ~np.isnan(image_b)], 1
    )
    sums = resample_sums(np.hstack([table_a, table_b, per_image]), resamples, seed)
    iou_a, iou_b = _iou(sums[:, :width]), _iou(sums[:, width : 2 * width])
    miou_a, miou_b = class_mean(iou_a), class_mean(iou_b)
    mean_a, mean_b = (_ratio(sums[:, 2 * width + c], sums[:, 2 * width + c + 1]) for c in (0, 2))
    point_a = compute_scores(_dense_sum(matrices_a, scheme), scheme)
    point_b = compute_scores(_dense_sum(matrices_b, scheme), scheme)
    point_mean = (_mean_defined(image_a), _mean_defined(image_b))
    deltas = miou_b - miou_a
    class_deltas = iou_b - iou_a
    delta_miou = percentile_interval(point_b.miou - point_a.miou, deltas, confidence)
    classes = tuple(
        percentile_interval(float(point_b.iou[k] - point_a.iou[k]), class_deltas[:, k], confidence)
        for k in range(scheme.num_classes)
    )
    too_small, reason = _too_small(n, deltas, confidence)
    return PairedBootstrap(
        baseline=names[0],
        candidate=names[1],
        scheme=scheme.key,
        images=n,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
        class_names=scheme.names,
        delta_miou=delta_miou,
        delta_mean_image_miou=percentile_interval(point_mean[1] - point_mean[0], mean_b - mean_a, confidence),
        classes=classes,
        pooled_miou=(point_a.miou, point_b.miou),
        mean_image_miou=point_mean,
        too_small=too_small,
        reason=reason,
        samples=np.sort(deltas[~np.isnan(deltas)]),
        class_samples=class_deltas,
    )


def _check_arguments(images_a: int, images_b: int, resamples: int, confidence: float) -> None:
    if images_a != images_b:
        raise ValueError(f"paired bootstrap needs the same images: {images_a} vs {images_b}")
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"at least {MIN_RESAMPLES} resamples are needed, got {resamples}")
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")


def paired_by_key(
    counts_a: Mapping[str, SparseCounts | None], counts_b: Mapping[str, SparseCounts | None]
) -> tuple[list[str], list[SparseCounts], list[SparseCounts]]:
    """The images both models were counted on (sorted keys) and their matrices, aligned for the bootstrap;
    images one model failed on (or without ground truth) are left out: the caller reports how many."""
    pairs = [
        (key, a, b)
        for key in sorted(counts_a.keys() & counts_b.keys())
        if (a := counts_a[key]) is not None and (b := counts_b[key]) is not None
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs]


def resample_sums(table: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(R, m): for each resample, the column sums of `table` (n, m) over the images it drew, with
    multiplicity. Resample r draws row r of default_rng(seed).integers(0, n, size=(R, n)); the rows are made
    _RESAMPLE_CHUNK at a time (the same stream), so memory stays bounded for any n."""
    n = table.shape[0]
    out = np.zeros((resamples, table.shape[1]))
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, _RESAMPLE_CHUNK):
        rows = min(_RESAMPLE_CHUNK, resamples - start)
        draws = rng.integers(0, n, size=(rows, n))
        draws += np.arange(rows, dtype=draws.dtype)[:, None] * n
        counts = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)
        out[start : start + rows] = counts.astype(np.float64) @ table
    return out


def _image_table(matrices: Sequence[SparseCounts | np.ndarray], scheme: EvalScheme) -> np.ndarray:
    """(n, 3K) float64 per-image tp | gt | predicted sums: exact, as pixel counts stay far below 2**53.
    Dense matrices are made CHUNK at a time, so memory stays bounded for any number of images."""
    weights = _totals_weights(scheme)
    cells, n = weights.shape[0], scheme.id_space.num_classes
    table = np.zeros((len(matrices), weights.shape[1]))
    for start in range(0, len(matrices), _CHUNK):
        part = matrices[start : start + _CHUNK]
        dense = np.zeros((len(part), cells))
        for row, matrix in enumerate(part):
            if matrix.shape != (n, n + 1):
                raise ValueError(f"scheme {scheme.key!r} needs ({n}, {n + 1}) matrices, got {matrix.shape}")
            if isinstance(matrix, SparseCounts):
                dense[row, matrix.cells] = matrix.counts
            else:
                dense[row] = np.asarray(matrix).ravel()
        table[start : start + len(part)] = dense @ weights
    return table


def _dense_sum(matrices: Sequence[SparseCounts | np.ndarray], scheme: EvalScheme) -> np.ndarray:
    n = scheme.id_space.num_classes
    total = np.zeros((n, n + 1), dtype=np.int64)
    for matrix in matrices:
        if isinstance(matrix, SparseCounts):
            matrix.add_to(total)
        else:
            total += matrix
    return total


def _iou(totals: np.ndarray) -> np.ndarray:
    """IoU per class from (..., 3K) rows of tp | gt | predicted sums: tp / (gt + predicted − tp)."""
    k = totals.shape[-1] // 3
    tp, gt, pred = totals[..., :k], totals[..., k : 2 * k], totals[..., 2 * k :]
    den = gt + pred - tp
    out = np.full(tp.shape, np.nan)
    np.divide(tp, den, out=out, where=den != 0)
    return out


def class_mean(iou: np.ndarray) -> np.ndarray:
    """Mean over the defined classes of each row, summed in class order as compute_scores does, so a
    resample's mIoU equals compute_scores(...).miou to the last bit."""
    total = np.zeros(iou.shape[0])
    count = np.zeros(iou.shape[0])
    for k in range(iou.shape[1]):
        column = iou[:, k]
        defined = ~np.isnan(column)
        total[defined] += column[defined]
        count += defined
    out = np.full(iou.shape[0], np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _mean_defined(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def percentile_interval(value: float, samples: np.ndarray, confidence: float) -> Interval:
    """`value` with the percentile interval of the defined (non-NaN) `samples` at `confidence`."""
    defined = samples[~np.isnan(samples)]
    share = defined.size / samples.size if samples.size else 0.0
    if defined.size == 0:
        return Interval(value, math.nan, math.nan, share)
    tail = (100 - 100 * confidence) / 2  # 0.95 -> 2.5 exactly ((1 - 0.95) * 50 is 2.5000000000000022)
    low, high = np.percentile(defined, [tail, 100 - tail])
    return Interval(value, float(low), float(high), share)


def interval_at(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of resampled differences at `confidence` (NaN, NaN when none is defined)."""
    interval = percentile_interval(math.nan, samples, confidence)
    return interval.low, interval.high


def _too_small(n: int, deltas: np.ndarray, confidence: float) -> tuple[bool, str | None]:
    if n < MIN_IMAGES:
        return True, f"{n} image(s): at least {MIN_IMAGES} are needed to tell noise from a difference"
    defined = deltas[~np.isnan(deltas)]
    if defined.size < deltas.size:
        return True, f"mIoU undefined in {deltas.size - defined.size} of {deltas.size} resamples"
    half = defined.size // 2
    first, second = interval_at(defined[:half], confidence), interval_at(defined[half:], confidence)
    low, high = interval_at(defined, confidence)
    spread = max(abs(first[0] - second[0]), abs(first[1] - second[1]))
    if spread > max(UNSTABLE_SHARE * (high - low), STABLE_FLOOR):
        return True, (
            f"interval unstable: two halves of the resamples give [{first[0]:.4f}, {first[1]:.4f}] and "
            f"[{second[0]:.4f}, {second[1]:.4f}]; more images (or resamples) are needed"
        )
    return False, None


def summary(result: PairedBootstrap) -> str:
    """One line for the window's verdict and the report, in mIoU points (x100), saying what it is from."""
    delta = result.delta_miou
    text = (
        f"{result.candidate} − {result.baseline}: {100 * delta.value:+.1f} mIoU points "
        f"(95 % interval {100 * delta.low:+.1f} to {100 * delta.high:+.1f}; paired bootstrap over "
        f"{result.images} images, {result.resamples} resamples, {result.scheme})"
    )
    if result.too_small:
        text += f"; too small to tell: {result.reason}"
    return text


@dataclass(frozen=True)
class Verdict:
    """What the gate decides from a bootstrap: fail only on a significant drop."""

    status: str  # "significant_drop", "no_significant_drop" or "too_small"
    confidence: float
    value: float
    low: float
    high: float
    message: str

    @property
    def fails(self) -> bool:
        return self.status == "significant_drop"


def significant_drop(
    result: PairedBootstrap, confidence: float = 0.95, *, class_name: str | None = None
) -> Verdict:
    """Whether B − A (pooled mIoU, or one class's IoU) is significantly below 0 at `confidence`: the upper
    end of the two-sided percentile interval (the one the report quotes) is below zero. With too few images,
    or a class absent from more than 5 % of the resamples, the status is 'too_small' and nothing fails."""
    reason = result.reason
    if class_name is None:
        label, point, samples = "mIoU", result.delta_miou.value, result.samples
    else:
        index = result.class_names.index(class_name)
        label, point = f"IoU of {class_name!r}", result.classes[index].value
        samples = result.class_samples[:, index]
        share = result.classes[index].defined
        if reason is None and share < MIN_DEFINED_SHARE:
            reason = f"{class_name!r} is in only {share:.0%} of the resampled image sets"
    low, high = interval_at(samples, confidence)
    where = f"{result.candidate} − {result.baseline} {label} on {result.images} images"
    span = f"{point:+.4f}, {confidence:.0%} interval [{low:+.4f}, {high:+.4f}]"
    if reason is not None or math.isnan(high):
        reason = reason or "the difference is undefined on this image set"
        return Verdict("too_small", confidence, point, low, high, f"{where}: too small to tell ({reason})")
    if high < 0:
        return Verdict("significant_drop", confidence, point, low, high, f"{where}: {span}: significant drop")
    return Verdict(
        "no_significant_drop", confidence, point, low, high, f"{where}: {span}: no significant drop"
    )


def _num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
