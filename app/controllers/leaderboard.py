"""The leaderboard dock: models A and B (live) and any number of other models, all scored on the window's
scheme and ground truth in one run on the worker pool; any row can become A or B."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.controllers.scoring import live_basis
from app.core.domain.errors import SegLensError
from app.evaluation.engine import Evaluator
from app.evaluation.predictors import SegmenterPredictor, mapping_for
from app.evaluation.results import EvaluationResult, ModelAccumulator, ModelResult
from app.inference.registry import load_model
from app.views.leaderboard_panel import LeaderRow

if TYPE_CHECKING:
    from app.controllers.workbench import Workbench


@dataclass
class _Entry:
    predictor: SegmenterPredictor
    result: ModelResult | None = None
    note: str = ""
    basis: tuple[str, str] | None = None  # (scheme key, ground truth) the result was computed on


def _row(
    predictor: SegmenterPredictor,
    role: str,
    scores: ModelResult | ModelAccumulator | None,
    note: str,
    classes: int,
) -> LeaderRow:
    info = predictor.info
    size = math.nan if info.file_size is None else info.file_size / 1e6
    nan = math.nan
    if scores is None:
        return LeaderRow(
            info.name, role, nan, nan, nan, nan, nan, nan, size, [nan] * classes, info.source, note
        )
    s = scores.scores if isinstance(scores, ModelResult) else scores.scores()
    latency = scores.latency if isinstance(scores, ModelResult) else scores.latency()

    def mean(values: object) -> float:
        arr = [float(v) for v in values if not math.isnan(float(v))]  # type: ignore[attr-defined]
        return sum(arr) / len(arr) if arr else nan

    return LeaderRow(
        info.name,
        role,
        s.miou,
        mean(s.precision),
        mean(s.recall),
        mean(s.f1),
        nan if latency.p50 is None else latency.p50,
        nan if latency.p95 is None else latency.p95,
        size,
        list(s.iou),
        info.source,
        note,
    )


class LeaderboardController(QObject):
    """Owns the models beyond A and B (opened here, closed here) and their results."""

    def __init__(self, main: Workbench) -> None:
        super().__init__(main)  # type: ignore[arg-type]
        self.main = main
        self.entries: list[_Entry] = []
        panel = main.window.leaderboard
        panel.add_requested.connect(self.ask_models)
        panel.evaluate_requested.connect(self.evaluate)
        panel.use_requested.connect(self._use)
        main.window.leaderboard_action.triggered.connect(lambda _checked=False: self.ask_models())
        main.state.changed.connect(lambda names: self.refresh() if names & {"scheme", "edited_gt"} else None)
        # The other models are scored once A and B are (never competing with them for the cores), on the
        # same scheme and labels.
        main.evaluation_finished.connect(lambda _result: self.evaluate())

    def ask_models(self) -> None:
        for path in self.main.window.dialogs.open_files(
            "Add models to the leaderboard", "", "Models (*.onnx *.json *.yaml *.yml);;All files (*)"
        ):
            self.add(path)

    def add(self, path: str) -> None:
        """Open a model in the background and score it on the window's scheme."""
        job = self.main.pool.submit(load_model, path, key=f"leaderboard-{path}")
        job.signals.result.connect(lambda segmenter: self._added(SegmenterPredictor(segmenter)))

    def _added(self, predictor: SegmenterPredictor) -> None:
        if (
            any(e.predictor.info.digest == predictor.info.digest for e in self.entries)
            and predictor.info.digest
        ):
            predictor.segmenter.close()
            return
        self.entries.append(_Entry(predictor))
        self.main.window.append_log(f"leaderboard: {predictor.info.name} ({predictor.info.source})")
        self.evaluate()

    def forget(self, predictor: SegmenterPredictor) -> None:
        """A model replaced as A or B stays in the table (its numbers are computed again if needed)."""
        digest = predictor.info.digest
        if any(
            e.predictor is predictor or (digest and e.predictor.info.digest == digest) for e in self.entries
        ):
            if all(e.predictor is not predictor for e in self.entries):
                predictor.segmenter.close()  # the table holds its own copy of this model
        else:
            self.entries.append(_Entry(predictor))
        self.evaluate()

    def _current_basis(self) -> tuple[str, str]:
        return (self.main.state.view.scheme.key, str(self.main.state.view.edited_gt))

    def evaluate(self) -> None:
        """Score the models beyond A and B that have no numbers on the current scheme yet (one run)."""
        view = self.main.evaluation_view()
        ab = {p.info.digest for _, p in self.main.active()}
        basis = self._current_basis()
        todo = [e for e in self.entries if e.predictor.info.digest not in ab and e.basis != basis]
        if view is None or not todo:
            self.refresh()
            return
        scheme = self.main.state.view.scheme
        runnable = []
        for entry in todo:
            try:
                scheme.check_model(
                    mapping_for(entry.predictor.info, view.gt_scheme), entry.predictor.info.name
                )
            except SegLensError as exc:
                entry.result, entry.note, entry.basis = None, f"not scored on {scheme.key}: {exc}", basis
                continue
            runnable.append(entry)
        if not runnable:
            self.refresh()
            return
        # The same labels as A and B (the edited ones when those are in use): one basis for the table.
        evaluator = Evaluator(
            view, [self.main.on_disk(e.predictor) for e in runnable], scheme, ground_truth=self.main.truth
        )
        job = self.main.pool.submit(evaluator.run, key="leaderboard-evaluate")
        job.signals.result.connect(lambda result: self._scored(runnable, basis, result))
        self.main.window.show_message(f"Leaderboard: scoring {len(runnable)} model(s)…")

    def _scored(self, entries: list[_Entry], basis: tuple[str, str], result: EvaluationResult) -> None:
        for entry, model in zip(entries, result.models, strict=True):
            entry.result, entry.note, entry.basis = model, "", basis
        self.refresh()

    def refresh(self) -> None:
        """Redraw the table: A and B from their live scores, the others from their last run."""
        main = self.main
        scheme = main.state.view.scheme
        rows: list[LeaderRow] = []
        seen: set[str] = set()
        for slot, predictor in main.active():
            reason = main.refused[slot] or ""
            rows.append(_row(predictor, "AB"[slot], main.live[slot], reason, scheme.num_classes))
            seen.add(predictor.info.digest)
        basis = self._current_basis()
        for entry in self.entries:
            if entry.predictor.info.digest in seen:
                continue
            fresh = entry.basis == basis
            note = entry.note if fresh else f"not yet scored on {scheme.key}"
            rows.append(_row(entry.predictor, "", entry.result if fresh else None, note, scheme.num_classes))
        total = len(main.dataset) if main.dataset is not None else 0
        text = live_basis(scheme, main.truth, main.live, total, False)
        main.window.leaderboard.set_rows(rows, scheme.names, text)

    def _use(self, slot: int, source: str) -> None:
        if source:
            self.main.set_model(slot, source)

    def close(self) -> None:
        """Release the models this table opened (A and B belong to the main controller)."""
        ab = {id(p) for _, p in self.main.active()}
        for entry in self.entries:
            if id(entry.predictor) not in ab:
                entry.predictor.segmenter.close()
        self.entries = []
