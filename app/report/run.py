"""What a report keeps while an evaluation streams: the predictions of the images that can still end up
in its top-N lists (bounded: 2 x top_n images), so thumbnails need no second inference; and the command
that reproduces the run.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.io.datasets import Sample
from app.evaluation.results import SampleOutcome
from app.report.data import delta_points


@dataclass
class TopMasks:
    """Keeps the id-space predictions of the images that may be in the top-N regressions/improvements.

    Ranks exactly as `app.report.data.rank_images` (by delta, then key), so the kept set is the report's.
    """

    top_n: int
    _worse: list[tuple[float, str]] = field(default_factory=list)
    _better: list[tuple[float, str]] = field(default_factory=list)
    _masks: dict[str, tuple[np.ndarray | None, ...]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, outcome: SampleOutcome) -> None:
        """Feed one finished image (use as, or inside, a session's on_image)."""
        if len(outcome.evals) < 2 or outcome.evals[0] is None or outcome.evals[1] is None:
            return
        delta = delta_points(outcome.evals[0].miou, outcome.evals[1].miou)
        if delta is None or delta == 0 or self.top_n <= 0:
            return
        key = outcome.ref.key
        ranked = self._worse if delta < 0 else self._better
        entry = (delta, key) if delta < 0 else (-delta, key)
        with self._lock:
            bisect.insort(ranked, entry)
            if len(ranked) > self.top_n:
                dropped = ranked.pop()
                if dropped[1] != key:
                    self._masks.pop(dropped[1], None)
            if entry in ranked:
                self._masks[key] = outcome.predictions[:2]

    def mask(self, index: int, sample: Sample) -> np.ndarray | None:
        """A MaskSource: the kept prediction of model `index` on `sample`, or None."""
        with self._lock:
            kept = self._masks.get(sample.ref.key)
        return kept[index] if kept is not None and index < len(kept) else None

    @property
    def kept(self) -> int:
        """How many images' predictions are held (at most 2 x top_n)."""
        with self._lock:
            return len(self._masks)


def reproduce_settings(command: str, argv: Sequence[str]) -> dict[str, str]:
    """The command as typed (shell-quoted) and the folder it ran in, for the 'reproduce' section."""
    import shlex

    return {
        "command": " ".join([command, *(shlex.quote(part) for part in argv)]),
        "cwd": str(Path.cwd()),
    }
