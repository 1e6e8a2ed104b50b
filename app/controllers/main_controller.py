"""Wires the main window to datasets, models and the worker pool. Holds references, never pixels.

The view choices live in one ViewState (read there, changed there); the part controllers get the state
and this controller through the narrow Workbench protocol, never the other way round.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from app.controllers.annotation import AnnotationController
from app.controllers.display import DisplayController
from app.controllers.drilldown import DrillDownController
from app.controllers.findings import FindingsController
from app.controllers.frame_loader import PREFETCH_AHEAD, FrameLoader
from app.controllers.jobs import run_evaluation
from app.controllers.leaderboard import LeaderboardController
from app.controllers.opening import Opener
from app.controllers.panels import model_cards, panel_titles
from app.controllers.preferences import PreferencesController
from app.controllers.scoring import (
    finished_message,
    live_basis,
    refusals,
    rescore_image,
    summary_of,
    verdict_line,
)
from app.controllers.tools_controller import ToolsController
from app.controllers.view_state import FRAME_FIELDS, FrameRequest, ViewState
from app.controllers.workers import ErrorReport, Job, WorkerPool
from app.core.display.render import matrix_view
from app.core.domain.errors import SegLensError
from app.core.domain.labels import LABELIDS, ClassScheme, EvalScheme, custom_eval_scheme, eval_scheme_by_key
from app.core.io.datasets import Dataset, SampleRef, open_dataset
from app.core.io.image_table import short_name
from app.core.io.paths import cache_dir
from app.core.storage.prediction_cache import PredictionCache as DiskPredictionCache
from app.evaluation.engine import Evaluator, ground_truth_of
from app.evaluation.frames import Frame, hover_text, layer_styles, render_frame
from app.evaluation.predictors import SegmenterPredictor, mapping_for
from app.evaluation.results import EvaluationResult, GroundTruth, ImageEval, ModelAccumulator, SampleOutcome
from app.evaluation.store import CachedPredictor, PredictionStore
from app.inference.registry import load_model
from app.views.image_panel import rgb_to_qimage, rgba_to_qimage
from app.views.main_window import MainWindow
from app.views.metrics_panel import ModelSummary

_SLOTS = ("A", "B")


class _Bridge(QObject):
    """Carries per-image outcomes from the evaluation thread to the GUI thread (queued connection)."""

    outcome = Signal(int, object)  # (evaluation generation, SampleOutcome)


class MainController(QObject):
    """Owns the window and the worker pool; every slow step runs as a job."""

    dataset_loaded = Signal(object)
    model_loaded = Signal(int, object)
    evaluation_finished = Signal(object)
    frame_shown = Signal(object)
    rescored = Signal(str)  # the key of an image re-scored after an edit

    def __init__(self, window: MainWindow | None = None, pool: WorkerPool | None = None) -> None:
        super().__init__()
        self.window = window or MainWindow()
        self.pool = pool or WorkerPool(parent=self)
        self.pool.set_group_limit("thumbnails", 1)  # never more than one thread on thumbnails
        self.state = ViewState(parent=self)
        self.dataset: Dataset | None = None
        self.predictors: list[SegmenterPredictor | None] = [None, None]
        self.live: list[ModelAccumulator | None] = [None, None]
        self.refused: list[str | None] = [None, None]  # why a model is not scored on the current scheme
        self.result: EvaluationResult | None = None
        self.truth = GroundTruth()  # what the live numbers were counted against
        # ONE prediction store: recent predictions in memory (48 MB: part of the 500 MB goal of
        # benchmarks/bench_gui.py) in front of the disk cache (model digest + image pixels + preprocessing).
        self.store = PredictionStore(DiskPredictionCache(cache_dir() / "predictions"))
        self._wrappers: dict[int, CachedPredictor] = {}
        self.frames = FrameLoader(self.pool, render_frame, parent=self)  # rendered ahead of the user
        self.frames.ready.connect(self._on_frame)
        self._shown_row: int | None = None  # the row shown before: which way the user steps
        self.current_row = -1
        self.frame: Frame | None = None
        self.auto_evaluate = True
        self._eval_job: Job | None = None
        self._eval_slots: list[int] = []
        self._cancel = threading.Event()
        self._generation = 0  # outcomes of an older (cancelled) evaluation still in flight are dropped
        self._labels_version: dict[int, int] = {}  # row -> edits re-scored (part of the frame's key)
        self._bridge = _Bridge()
        self._metrics_timer = QTimer(self)
        self._metrics_timer.setSingleShot(True)
        self._metrics_timer.setInterval(250)
        self._closed = False
        # What evaluation and display read: the dataset, or it with edited labels (annotation sets it).
        self.dataset_view: Callable[[Dataset], Dataset] = lambda dataset: dataset
        self._connect_callbacks()
        self.opener = Opener(self)
        self.tools = ToolsController(self, lambda: self.annotation.review_dict())
        self.display = DisplayController(self)
        self.drilldown = DrillDownController(self)
        self.preferences = PreferencesController(self)
        self.annotation = AnnotationController(self)
        self.leaderboard = LeaderboardController(self)
        self.findings = FindingsController(self)
        self.display.refresh_legend()
        self._refresh_titles()
        self._refresh_metrics()

    def _connect_callbacks(self) -> None:
        w = self.window
        w.evaluate_action.triggered.connect(lambda _checked=False: self.evaluate())
        w.cancel_action.triggered.connect(lambda _checked=False: self.cancel_evaluation())
        w.next_action.triggered.connect(lambda: w.image_list.step(1))
        w.prev_action.triggered.connect(lambda: w.image_list.step(-1))
        w.toggle_gt_action.triggered.connect(w.compare.show_gt.toggle)
        w.opacity_up_action.triggered.connect(
            lambda: w.compare.opacity.setValue(w.compare.opacity.value() + 10)
        )
        w.opacity_down_action.triggered.connect(
            lambda: w.compare.opacity.setValue(w.compare.opacity.value() - 10)
        )
        w.compare.hovered.connect(self._on_hover)
        w.compare.show_gt_changed.connect(lambda shown: self.state.update(show_gt=bool(shown)))
        w.compare.opacity_changed.connect(lambda value: self.state.update(opacity=float(value)))
        w.scheme_box.currentIndexChanged.connect(self._on_scheme_box)
        w.image_list.image_selected.connect(self.show_image)
        w.metrics.matrix_model_changed.connect(lambda _i: self._refresh_metrics())
        w.metrics.class_metric.currentIndexChanged.connect(lambda _i: self._refresh_metrics())
        w.closing.connect(self.shutdown)
        self.pool.error.connect(self._report_error)
        self._bridge.outcome.connect(self._on_outcome)
        self._metrics_timer.timeout.connect(self._refresh_metrics)
        self.state.changed.connect(self._on_state)

    # ----------------------------------------------------------------- user intents
    def open_dataset(
        self, path: str | Path, split: str | None = None, gt_scheme: ClassScheme = LABELIDS
    ) -> Job:
        """List a dataset in the background; evaluation starts when it and a model are ready."""
        self.window.show_message(f"Opening {path}…")
        job = self.pool.submit(open_dataset, path, split, gt_scheme, key="open-dataset")
        job.signals.result.connect(self._on_dataset)
        return job

    def set_model(self, slot: int, path: str | Path) -> Job:
        """Load model A (slot 0) or B (slot 1) in the background."""
        self.window.show_message(f"Loading model {_SLOTS[slot]}: {path}…")
        job = self.pool.submit(load_model, path, key=f"load-model-{slot}")
        job.signals.result.connect(lambda segmenter, s=slot: self._on_model(s, segmenter))
        return job

    def set_scheme(self, key: str) -> None:
        index = self.window.scheme_box.findData(key)
        if index >= 0 and index != self.window.scheme_box.currentIndex():
            self.window.scheme_box.setCurrentIndex(index)  # emits -> _on_scheme_box

    def _on_scheme_box(self, _index: int) -> None:
        scheme = eval_scheme_by_key(str(self.window.scheme_box.currentData()))
        self.state.update(scheme=scheme, hidden=frozenset(), highlight=None)

    def _on_state(self, names: frozenset[str]) -> None:
        if "scheme" in names:
            self.window.image_list.set_classes(self.state.view.scheme.names)
            self._reset_results()
            self._maybe_evaluate()
        elif "edited_gt" in names and self.dataset is not None and self.active():
            self.evaluate()  # the user chose other labels: numbers on the old ones must not stay
        if names & FRAME_FIELDS:
            self.show_image(self.current_row)
        if names & {"layout", "flicker_b"}:
            self._refresh_titles(self.frame)

    def _on_hover(self, x: int, y: int) -> None:
        if self.frame is not None:
            text = hover_text(self.frame, self.state.view.scheme, self.frame.slots, x, y)
            self.window.compare.readout.setText(text)

    # ----------------------------------------------------------------- loading results
    def _on_dataset(self, dataset: Dataset) -> None:
        self.cancel_evaluation()
        self.dataset = dataset
        self.store.clear_memory()
        self._labels_version.clear()
        scheme = self.state.view.scheme
        self.window.image_list.set_dataset(
            [(short_name(ref), ref.city or "") for ref in dataset.refs],
            dataset.cities(),
            scheme.names,
            [ref.key for ref in dataset.refs],
        )
        self.window.setWindowTitle(f"{dataset.root.name} — {self.window.windowTitle().split(' — ')[-1]}")
        self._log(f"opened {dataset.root}: {len(dataset)} images ({dataset.kind}, split {dataset.split})")
        custom = dataset.gt_scheme is not LABELIDS
        self.window.scheme_box.setEnabled(not custom)
        if custom:  # a custom id space has exactly one evaluation scheme: its own classes
            self.state.update(scheme=custom_eval_scheme(dataset.gt_scheme), hidden=frozenset())
        elif not scheme.is_cityscapes:
            self._on_scheme_box(self.window.scheme_box.currentIndex())
        self.window.show_message(f"{dataset.root}: {len(dataset)} images", 5000)
        self._reset_results()
        self.dataset_loaded.emit(dataset)
        if dataset.refs:
            self.window.image_list.select_row(0)
        self._maybe_evaluate()

    def _on_model(self, slot: int, segmenter: object) -> None:
        old = self.predictors[slot]
        predictor = SegmenterPredictor(segmenter)  # type: ignore[arg-type]
        info = predictor.info
        try:
            mapping = mapping_for(info, self.dataset.gt_scheme if self.dataset else LABELIDS)
            if mapping.granularity == "categories" and self.state.view.scheme.key == "trainids":
                # A category model can only be compared on categories; say so by switching.
                self._log(f"model {_SLOTS[slot]} predicts the 8 categories: evaluating on categories")
                self.set_scheme("categories")
            self.state.view.scheme.check_model(mapping, info.name)
        except SegLensError as exc:
            self._log(f"model {_SLOTS[slot]}: {exc}")
            self.window.show_message(str(exc), 10000)
            predictor.segmenter.close()
            return
        self.cancel_evaluation()
        self.predictors[slot] = predictor
        if old is not None and old is not predictor:
            self.leaderboard.forget(old)
        self._log(
            f"model {_SLOTS[slot]}: {info.name} ({info.backend}, {len(info.class_names)} classes, "
            f"{(info.file_size or 0) / 1e6:.1f} MB, sha256 {info.digest[:12]})"
        )
        self._reset_results()
        self._refresh_titles()
        self.model_loaded.emit(slot, predictor)
        self.show_image(self.current_row)
        self._maybe_evaluate()

    # ----------------------------------------------------------------- evaluation
    @property
    def scheme(self) -> EvalScheme:
        """The evaluation scheme (the view state's)."""
        return self.state.view.scheme

    def active(self) -> list[tuple[int, SegmenterPredictor]]:
        """The loaded models as (slot, predictor), A before B."""
        return [(i, p) for i, p in enumerate(self.predictors) if p is not None]

    def scored(self) -> list[tuple[int, SegmenterPredictor]]:
        """The loaded models the current scheme can score (the others have a reason in `refused`)."""
        return [(i, p) for i, p in self.active() if self.refused[i] is None]

    def on_disk(self, predictor: SegmenterPredictor) -> CachedPredictor:
        """The predictor behind the prediction store (one wrapper per model, so hits are counted)."""
        cached = self._wrappers.get(id(predictor))
        if cached is None or cached.predictor is not predictor:
            cached = CachedPredictor(predictor, self.store)
            self._wrappers[id(predictor)] = cached
        return cached

    def evaluation_view(self) -> Dataset | None:
        """The dataset as evaluation and display read it (with the edited labels when those are used)."""
        return None if self.dataset is None else self.dataset_view(self.dataset)

    def _maybe_evaluate(self) -> None:
        if self.auto_evaluate and self.dataset is not None and self.active():
            self.evaluate()

    def _check_models(self) -> list[str | None]:
        """Per slot: why the current scheme cannot score the model (None: it can)."""
        reasons: list[str | None] = [None, None]
        gt_scheme = self.dataset.gt_scheme if self.dataset else LABELIDS
        for slot, predictor in self.active():
            try:
                self.state.view.scheme.check_model(
                    mapping_for(predictor.info, gt_scheme), predictor.info.name
                )
            except SegLensError as exc:
                reasons[slot] = str(exc)
        return reasons

    def evaluate(self) -> Job | None:
        """(Re)start evaluating the loaded models on the whole dataset; a model the scheme cannot score
        gets no number, with the reason on screen, and the other one is still scored."""
        view = self.evaluation_view()
        if view is None or not self.active():
            self.window.show_message("Open a dataset and choose at least one model first.", 5000)
            return None
        self.cancel_evaluation()
        self._reset_results()
        self.refused = refusals(self.predictors, self.state.view.scheme, view.gt_scheme)
        for slot, reason in enumerate(self.refused):
            if reason:
                self._log(f"model {_SLOTS[slot]} not scored on {self.state.view.scheme.key}: {reason}")
        scored = self.scored()
        self.truth = ground_truth_of(view)
        self._refresh_titles()
        if not scored:
            self._refresh_metrics()
            return None
        predictors, scheme = [self.on_disk(p) for _, p in scored], self.state.view.scheme
        try:  # the Ray engine when the settings name a cluster (its extra missing: said, nothing runs)
            engine = self.preferences.evaluation_engine(view, predictors, scheme)
        except SegLensError as exc:
            self.window.show_message(str(exc), 10000)
            self._log(str(exc))
            return None
        stats = self.findings.analyze(len(view))  # per image: boundary, label errors, missed objects
        evaluator = Evaluator(view, predictors, scheme, ground_truth=self.truth, engine=engine, analyze=stats)
        self._eval_slots = [slot for slot, _ in scored]
        for slot, live in zip(self._eval_slots, evaluator.accumulators(), strict=True):
            self.live[slot] = live
        self.window.image_list.model.set_sources(self.live)
        self._cancel = threading.Event()
        self._generation += 1
        total = len(view)
        self.window.set_busy(True, 0, total)
        self.window.show_message(f"Evaluating {total} images…")
        args = (evaluator, self._cancel, self._bridge.outcome, self._generation)
        job = self.pool.submit(run_evaluation, *args, with_context=True, key="evaluate")
        job.signals.progress.connect(lambda done, total_, _msg: self.window.set_busy(True, done, total_))
        job.signals.result.connect(self._on_evaluation_done)
        job.signals.finished.connect(lambda: self.window.set_busy(False))
        self._eval_job = job
        self._refresh_metrics()
        return job

    def cancel_evaluation(self) -> None:
        if self._eval_job is not None:
            self._cancel.set()
            self.pool.cancel(self._eval_job)
            self._eval_job = None
            self.window.set_busy(False)
            self.window.show_message("Evaluation cancelled", 5000)

    def _on_outcome(self, generation: int, outcome: SampleOutcome) -> None:
        if generation != self._generation:
            return
        for slot, image_eval, error in zip(self._eval_slots, outcome.evals, outcome.errors, strict=False):
            live = self.live[slot]
            if live is None:
                continue
            if image_eval is not None:
                live.add(image_eval)
            elif error:
                live.errors[outcome.ref.key] = error
                self._log(f"model {_SLOTS[slot]}: {error}")
        self.window.image_list.model.scores_changed(outcome.index)
        if outcome.sample_error:
            self._log(f"skipped: {outcome.sample_error}")
        if not self._metrics_timer.isActive():
            self._metrics_timer.start()

    def _on_evaluation_done(self, result: EvaluationResult) -> None:
        self._eval_job = None
        self.result = result
        self._refresh_metrics()
        text = finished_message(result)
        self.window.show_message(text)
        self._log(text)
        self.evaluation_finished.emit(result)

    def labels_changed(self, ref: SampleRef, labels: np.ndarray, truth: GroundTruth) -> None:
        """The labels of `ref` were edited (`labels`: a copy, in the id space). The readout and any frame
        kept for it follow at once; with "Evaluate on edited GT" on, the image is re-scored."""
        row = (
            next((i for i, r in enumerate(self.dataset.refs) if r.key == ref.key), -1) if self.dataset else -1
        )
        if row >= 0:
            self._labels_version[row] = self._labels_version.get(row, 0) + 1
        self.frames.clear()
        if self.frame is not None and self.frame.ref.key == ref.key:
            self.frame = dataclasses.replace(
                self.frame, gt_class=self.state.view.scheme.id_to_class()[labels]
            )
        if self.state.view.edited_gt:
            self.rescore(ref, labels, truth)

    def rescore(self, ref: SampleRef, labels: np.ndarray, truth: GroundTruth) -> None:
        """Score `ref` again against its edited `labels`, at once and only it: its per-image scores are
        replaced in the accumulators and the sums recomputed."""
        view = self.evaluation_view()
        scored = self.scored()
        if view is None or not scored:
            return
        predictors = [self.on_disk(p) for _, p in scored]
        mappings = [mapping_for(p.info, view.gt_scheme) for p in predictors]
        job = self.pool.submit(
            rescore_image, view, ref, labels, predictors, mappings, self.state.view.scheme, group="rescore"
        )
        slots, generation = [slot for slot, _ in scored], self._generation
        job.signals.result.connect(
            lambda evals: self._on_rescored(ref, labels, truth, slots, generation, evals)
        )

    def _on_rescored(
        self,
        ref: SampleRef,
        labels: np.ndarray,
        truth: GroundTruth,
        slots: list[int],
        generation: int,
        evals: list[ImageEval | None],
    ) -> None:
        if generation != self._generation or self.dataset is None:
            return  # a new evaluation started since: it counts the edits itself
        for slot, image_eval in zip(slots, evals, strict=True):
            live = self.live[slot]
            if live is not None and image_eval is not None:
                live.replace(image_eval)
        self.truth = truth
        if self.result is not None:
            order = [r.key for r in self.dataset.refs]
            models = tuple(m.freeze(order) for m in self.live if m is not None)
            # The bootstrap was of the old labels: its interval is dropped, not shown stale.
            self.result = dataclasses.replace(self.result, models=models, ground_truth=truth, analysis=None)
        row = next((i for i, r in enumerate(self.dataset.refs) if r.key == ref.key), -1)
        if row >= 0:
            self.window.image_list.model.scores_changed(row)
        if self.frame is not None and self.frame.ref.key == ref.key:
            to_class = self.state.view.scheme.id_to_class()
            by_slot = dict(zip(slots, evals, strict=True))
            self.frame = dataclasses.replace(
                self.frame,
                gt_class=to_class[labels],
                evals=tuple(by_slot.get(s) for s in self.frame.slots),
            )
            self._refresh_titles(self.frame)
        self._refresh_metrics()
        self.rescored.emit(ref.key)

    def _reset_results(self) -> None:
        self.state.update(highlight=None)
        self.frames.clear()
        self.live = [None, None]
        self.refused = [None, None]
        self.result = None
        self.window.image_list.model.set_sources(self.live)
        self.drilldown.clear()
        self.findings.clear()
        self._refresh_metrics()

    def _refresh_metrics(self) -> None:
        scores = [None if m is None else m.scores() for m in self.live]  # computed once per refresh
        summaries: list[ModelSummary | None] = [
            None if m is None else summary_of(m, s) for m, s in zip(self.live, scores, strict=True)
        ]
        scheme = self.state.view.scheme
        metrics = self.window.metrics
        ignored = [k for k, ids in enumerate(scheme.members) if not ids]  # void: never evaluated
        metrics.set_models(summaries, scheme.names, ignored)
        self._refresh_models_panel(summaries)
        a, b = (s.matrix if s is not None else None for s in summaries)
        view = matrix_view(
            a, b, str(metrics.matrix_choice.currentData()), str(metrics.matrix_scale.currentData())
        )
        raw = summaries[0 if metrics.matrix_choice.currentData() == "A" else 1]  # B - A drills into B
        metrics.heatmap.set_values(view, scheme.names, None if raw is None else raw.matrix, ignored)
        total = len(self.dataset) if self.dataset is not None else 0
        basis = live_basis(scheme, self.truth, self.live, total, self._eval_job is not None)
        boot = None if self.result is None or self.result.analysis is None else self.result.analysis.bootstrap
        line = verdict_line(self.live, self.refused, basis, scores, boot)
        self.window.compare.set_verdict(line, basis)
        metrics.basis.setText(f"Computed on {basis}")
        self.window.image_list.model.basis = basis
        self.leaderboard.refresh()

    def _refresh_models_panel(self, summaries: list[ModelSummary | None]) -> None:
        gt_scheme = self.dataset.gt_scheme if self.dataset else LABELIDS
        self.window.models.set_models(
            model_cards(self.predictors, summaries, self.state.view.scheme, gt_scheme)
        )

    # ----------------------------------------------------------------- display
    def _render_args(self, row: int) -> tuple[tuple[object, ...], FrameRequest] | None:
        """What render_frame needs for `row` now, and the frozen request saying what it depends on."""
        view_data = self.evaluation_view()
        if view_data is None or not 0 <= row < len(view_data):
            return None
        view = self.state.view
        scored = self.scored()
        predictors = [self.on_disk(p) for _, p in scored]
        slots = [slot for slot, _ in scored]
        mappings = [mapping_for(p.info, view_data.gt_scheme) for p in predictors]
        known = [self.live[slot].images if self.live[slot] is not None else None for slot in slots]  # type: ignore[union-attr]
        styles = layer_styles(view.panel_styles)  # filled and mask alone share their layers
        request = FrameRequest.of(
            view, row, [p.info.digest for p in predictors], slots, styles, self._labels_version.get(row, 0)
        )
        args = (
            view_data,
            view_data.refs[row],
            predictors,
            mappings,
            view.scheme,
            known,
            slots,
            view.display_mode,
            view.highlight,
            view.hidden,
            view.show_gt,
            styles,
            view.palette,
        )
        return args, request

    def show_image(self, row: int) -> None:
        """Show dataset row `row`: a prefetched frame at once, else decode and predict in the background."""
        prepared = self._render_args(row)
        if prepared is None:
            return
        self.current_row = row
        args, key = prepared
        self.frames.request(key, args)

    def _on_frame(self, rendered: tuple[Frame, np.ndarray, list[np.ndarray | None], str]) -> None:
        frame, image, masks, summary = rendered
        self.frame = frame
        compare = self.window.compare
        compare.set_image(rgb_to_qimage(image))
        compare.set_masks(*(rgba_to_qimage(m) if m is not None else None for m in masks))
        for slot, error in zip(frame.slots, frame.errors, strict=False):
            if error:
                self._log(f"model {_SLOTS[slot]}: {error}")
        self._refresh_titles(frame)
        for warning in frame.warnings:
            self._log(f"{frame.ref.key}: {warning}")
        compare.caption.setText(f"{frame.ref.key}   {image.shape[1]}×{image.shape[0]}")
        compare.stats.setText(summary)
        self.frame_shown.emit(frame)
        self._prefetch_after(self.current_row)

    def _prefetch_after(self, row: int) -> None:
        """Render the next images in the displayed order (the previous ones when the user steps back)
        in the background, so stepping on is instant."""
        if self.dataset is None or not self.scored():
            return
        order = self.window.image_list.visible_rows()
        if row not in order:
            return
        at = order.index(row)
        backwards = (
            self._shown_row is not None and self._shown_row in order and order.index(self._shown_row) > at
        )
        self._shown_row = row
        rows = (
            order[max(0, at - PREFETCH_AHEAD) : at][::-1]
            if backwards
            else order[at + 1 : at + 1 + PREFETCH_AHEAD]
        )
        items = [self._render_args(r) for r in rows]
        # While the evaluation runs it predicts these images anyway: render ahead only what it has made.
        evaluating = self._eval_job is not None
        self.frames.prefetch([(key, args) for args, key in filter(None, items)], cached_only=evaluating)

    def _refresh_titles(self, frame: Frame | None = None) -> None:
        compare = self.window.compare
        view = self.state.view
        titles = panel_titles(self.predictors, self.refused, frame, view.scheme.key, self.truth.describe())
        if view.layout == "swipe" and titles[1][0].startswith("B:"):  # panel A shows both, B right
            titles[0] = (f"{titles[0][0]}   |   {titles[1][0]}", titles[0][1])
        elif view.layout == "flicker" and view.flicker_b:
            titles[0] = titles[1]
        for panel, (text, tip) in zip((compare.a_panel, compare.b_panel), titles, strict=True):
            panel.title.setText(text)
            panel.title.setToolTip(tip)

    # ----------------------------------------------------------------- errors and shutdown
    def _report_error(self, report: ErrorReport) -> None:
        self.window.show_message(report.message, 10000)
        self._log(f"{report.title}: {report.message}")
        if not report.expected:
            self._log(report.traceback)

    def _log(self, text: str) -> None:
        self.window.append_log(text)

    def shutdown(self) -> None:
        """Stop work and release models (window closing). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._cancel.set()
        self._generation += 1  # outcomes still queued for the GUI thread are dropped
        self._metrics_timer.stop()
        self._metrics_timer.timeout.disconnect(self._refresh_metrics)
        self.preferences.close()  # settings and window layout, written for the last time
        self.pool.shutdown()
        self.annotation.close_project()
        self.leaderboard.close()
        for predictor in filter(None, self.predictors):
            predictor.segmenter.close()
