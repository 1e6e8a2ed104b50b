"""Run a two-model comparison headless, as `seglens evaluate` does, for `seglens report` and `seglens gate`.

Besides the RunResult it keeps, while the run streams, the predictions of the images that can still end up
in the report's top-N lists (bounded: 2 x top_n images), so thumbnails need no second inference.
"""

from __future__ import annotations

import bisect
import contextlib
import importlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.datasets import Dataset, Sample
from app.core.errors import InputError
from app.inference.base import Segmenter
from app.inference.evaluate import (
    Evaluator,
    FolderPredictions,
    RunResult,
    SampleOutcome,
    SamplePredictor,
    SegmenterPredictor,
    choose_scheme,
    run_with_progress,
)
from app.report.data import delta_points

ModelLoader = Callable[[str], Segmenter]


def rss_bytes() -> int | None:
    """This process's resident memory (Linux /proc); None where it cannot be read cheaply."""
    try:
        with Path("/proc/self/statm").open() as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _preimport_backends(models: Sequence[str]) -> None:
    # The first model would otherwise be charged for importing its framework (onnxruntime ~40 MB).
    from app.inference.registry import backend_for_suffix

    for model in models:
        backend = backend_for_suffix(Path(model).suffix)
        if backend is not None:
            with contextlib.suppress(ImportError):
                importlib.import_module(backend.loader.partition(":")[0])


def load_predictors(
    models: Sequence[str],
    predictions: Sequence[str],
    dataset: Dataset,
    loader: ModelLoader | None = None,
) -> tuple[list[SamplePredictor], list[int | None]]:
    """Open each model (and saved-prediction folder); also returns each one's RSS growth on load (bytes).

    On an error every model opened so far is closed before the error propagates.
    """
    if loader is None:
        from app.inference.registry import load_model

        loader = load_model
        _preimport_backends(models)
    predictors: list[SamplePredictor] = []
    memory: list[int | None] = []
    try:
        for model in models:
            before = rss_bytes()
            segmenter = loader(model)
            after = rss_bytes()
            predictors.append(SegmenterPredictor(segmenter))
            memory.append(max(0, after - before) if before is not None and after is not None else None)
        for folder in predictions:
            predictors.append(FolderPredictions(folder, dataset.gt_scheme))
            memory.append(None)
    except BaseException:
        close_all(predictors)
        raise
    return predictors, memory


def close_all(predictors: Sequence[SamplePredictor]) -> None:
    """Close the models among `predictors` (wrapped ones too)."""
    for predictor in predictors:
        inner = getattr(predictor, "predictor", predictor)  # CachedPredictor wraps one
        if isinstance(inner, SegmenterPredictor):
            inner.segmenter.close()


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
        """Feed one finished image (use as, or inside, Evaluator.run's on_image)."""
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


def run_comparison(
    dataset: Dataset,
    predictors: Sequence[SamplePredictor],
    scheme_key: str | None,
    *,
    top_n: int = 5,
    workers: int = 2,
    limit: int | None = None,
    quiet: bool = False,
) -> tuple[RunResult, TopMasks]:
    """Evaluate like `seglens evaluate` (progress on stderr unless quiet) and keep the top-N masks."""
    if not dataset.refs:
        raise InputError(dataset.root, "the dataset has no images")
    scheme = choose_scheme(scheme_key, predictors, dataset.gt_scheme)
    evaluator = Evaluator(dataset, predictors, scheme, workers=workers)
    refs = dataset.refs[:limit] if limit else dataset.refs
    keeper = TopMasks(top_n)
    result = run_with_progress(evaluator, refs, quiet=quiet, report_skipped=not quiet, on_image=keeper)
    return result, keeper


def reproduce_settings(command: str, argv: Sequence[str]) -> dict[str, str]:
    """The command as typed (shell-quoted) and the folder it ran in, for the 'reproduce' section."""
    import shlex

    return {
        "command": " ".join([command, *(shlex.quote(part) for part in argv)]),
        "cwd": str(Path.cwd()),
    }
