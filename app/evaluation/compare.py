"""Model B against model A in one run: who is better, by how much, where B is worse, on what basis.

The window's verdict line, the report's verdict and the gate read the same Comparison, so they can never
disagree. Deltas are B - A in percentage points.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from app.evaluation.results import EvaluationResult, ModelResult

WORSE_CLASS_POINTS = 1.0  # a class counts as 'worse' from this IoU drop (points) on
ON_PAR_POINTS = 0.05  # mIoU differences below this are 'on par' (rounding noise)


@dataclass(frozen=True)
class ClassDelta:
    name: str
    a: float  # IoU 0..1, NaN where undefined
    b: float
    delta: float | None  # points; None where either is undefined


@dataclass(frozen=True)
class Comparison:
    """B - A on one run (same images, same scheme, same ground truth)."""

    a_name: str
    b_name: str
    miou_a: float
    miou_b: float
    delta_miou: float | None  # points
    classes: tuple[ClassDelta, ...]
    latency_a: float | None  # P50 ms
    latency_b: float | None
    basis: str  # what the numbers were computed on (scheme, ground truth, images, skipped)
    interval: tuple[float, float] | None = None  # 95 % paired-bootstrap interval of delta_miou (points)
    too_small: bool = False  # the bootstrap says the image set is too small to tell

    @property
    def worse(self) -> list[ClassDelta]:
        """Classes where B loses at least WORSE_CLASS_POINTS, worst first."""
        dropped = [c for c in self.classes if c.delta is not None and c.delta <= -WORSE_CLASS_POINTS]
        return sorted(dropped, key=lambda c: (c.delta, c.name))

    @property
    def better(self) -> list[ClassDelta]:
        """Classes where B gains at least WORSE_CLASS_POINTS, largest gain first."""
        gained = [c for c in self.classes if c.delta is not None and c.delta >= WORSE_CLASS_POINTS]
        return sorted(gained, key=lambda c: (-(c.delta or 0.0), c.name))

    def headline(self) -> str:
        """'B (name) is better than A (name) by 4.50 mIoU points (mIoU A 63.00, B 67.50).'"""
        scores = f"(mIoU A {_pct(self.miou_a)}, B {_pct(self.miou_b)})"
        if self.delta_miou is None:
            return f"B and A cannot be compared: a mIoU is undefined {scores}."
        if abs(self.delta_miou) < ON_PAR_POINTS:
            return f"B is on par with A {scores}."
        word = "better" if self.delta_miou > 0 else "worse"
        margin = f"{abs(self.delta_miou):.2f} mIoU points"
        return f"B ({self.b_name}) is {word} than A ({self.a_name}) by {margin} {scores}."

    def worse_line(self) -> str:
        worse = self.worse
        if not worse:
            return f"B loses no class by {WORSE_CLASS_POINTS:g} IoU points or more."
        listed = ", ".join(f"{c.name} ({c.delta:+.1f})" for c in worse[:5])
        more = f" and {len(worse) - 5} more" if len(worse) > 5 else ""
        return f"B is worse on {len(worse)} classes by {WORSE_CLASS_POINTS:g}+ points: {listed}{more}."

    def speed_line(self) -> str:
        pa, pb = self.latency_a, self.latency_b
        if not pa or not pb:
            return "Latency: not measured."
        ratio = pb / pa
        word = "slower" if ratio >= 1 else "faster"
        factor = ratio if ratio >= 1 else 1 / ratio
        return f"B is {factor:.2f}x {word} than A (latency P50 {pb:.1f} ms vs {pa:.1f} ms)."

    def one_line(self) -> str:
        """The window's verdict: winner, margin, where worse, and the basis, in one line."""
        if self.delta_miou is None:
            head = "A and B cannot be compared (a mIoU is undefined)"
        elif abs(self.delta_miou) < ON_PAR_POINTS:
            head = f"B on par with A ({_pct(self.miou_b)} vs {_pct(self.miou_a)} mIoU)"
        else:
            winner = "B" if self.delta_miou > 0 else "A"
            head = (
                f"{winner} better by {abs(self.delta_miou):.1f} mIoU points "
                f"(B {_pct(self.miou_b, 1)} vs A {_pct(self.miou_a, 1)})"
            )
        if self.interval is not None:
            low, high = self.interval
            head += f", 95 % CI {low:+.1f} to {high:+.1f}"
            head += " (too few images to tell)" if self.too_small else ""
        worse = self.worse
        where = f"; B worse on {', '.join(c.name for c in worse[:3])}" if worse else ""
        if len(worse) > 3:
            where += f" +{len(worse) - 3}"
        return f"{head}{where} — {self.basis}"


def compare(result: EvaluationResult, a: int = 0, b: int = 1) -> Comparison:
    """Model `b` against model `a` of `result` (with the run's bootstrap interval for A and B)."""
    comparison = compare_models(result.models[a], result.models[b], result.basis())
    bootstrap = None if result.analysis is None else result.analysis.bootstrap
    if bootstrap is None or (a, b) != (0, 1):
        return comparison
    delta = bootstrap.delta_miou
    interval = (delta.low * 100, delta.high * 100)
    return dataclasses.replace(comparison, interval=interval, too_small=bootstrap.too_small)


def compare_models(a: ModelResult, b: ModelResult, basis: str) -> Comparison:
    """B against A from two results of one run (their schemes must be the same)."""
    if a.scheme.key != b.scheme.key:
        raise ValueError(f"models scored on different schemes: {a.scheme.key} vs {b.scheme.key}")
    classes = tuple(
        ClassDelta(name, float(ia), float(ib), delta_points(float(ia), float(ib)))
        for name, ia, ib in zip(a.scheme.names, a.scores.iou, b.scores.iou, strict=True)
    )
    return Comparison(
        a_name=a.info.name,
        b_name=b.info.name,
        miou_a=a.scores.miou,
        miou_b=b.scores.miou,
        delta_miou=delta_points(a.scores.miou, b.scores.miou),
        classes=classes,
        latency_a=a.latency.p50,
        latency_b=b.latency.p50,
        basis=basis,
    )


def delta_points(a: float | None, b: float | None) -> float | None:
    """B - A in percentage points; None when either is undefined."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return (b - a) * 100


def _pct(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.{digits}f}"
