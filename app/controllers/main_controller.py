"""Wires the main window to datasets, models and the worker pool. Holds references, never pixels."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFileDialog

from app.controllers.frame_loader import PREFETCH_AHEAD, FrameLoader
from app.controllers.jobs import run_evaluation
from app.controllers.panels import model_cards
from app.controllers.workers import ErrorReport, Job, WorkerPool
from app.core.display.render import matrix_view
from app.core.domain.errors import SegLensError
from app.core.domain.labels import (
    LABELIDS,
    ClassScheme,
    EvalScheme,
    custom_eval_scheme,
    eval_scheme_by_key,
)
from app.core.io.datasets import Dataset, open_dataset
from app.core.io.image_table import short_name, thumbnail
from app.core.io.paths import cache_dir
from app.core.runtime.lru import LruCache
from app.core.storage.edited import EditedDataset
from app.core.storage.prediction_cache import PredictionCache as DiskPredictionCache
from app.evaluation.engine import Evaluator
from app.evaluation.frames import (
    FILLED,
    Frame,
    Highlight,
    PanelStyles,
    PredictionCache,
    hover_text,
    layer_styles,
    render_frame,
)
from app.evaluation.predictors import SegmenterPredictor, mapping_for
from app.evaluation.results import EvaluationResult, GroundTruth, ModelAccumulator, SampleOutcome
from app.evaluation.store import CachedPredictor
from app.inference.registry import is_model_path, load_model, supported_suffixes
from app.views.image_list import THUMBNAIL_SIZE
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

    def __init__(self, window: MainWindow | None = None, pool: WorkerPool | None = None) -> None:
        super().__init__()
        self.window = window or MainWindow()
        self.pool = pool or WorkerPool(parent=self)
        self.pool.set_group_limit("thumbnails", 1)  # never more than one thread on thumbnails
        self.dataset: Dataset | None = None
        self.predictors: list[SegmenterPredictor | None] = [None, None]
        self.scheme: EvalScheme = eval_scheme_by_key("trainids")
        self.live: list[ModelAccumulator | None] = [None, None]
        self.result: EvaluationResult | None = None
        # Recent predictions in memory for display; the disk cache holds the rest (a miss costs a cache read
        # and a count, ~10 ms at 2048x1024). 48 MB: part of the 500 MB goal of benchmarks/bench_gui.py.
        self.cache: PredictionCache = LruCache(max_bytes=48 * 1024 * 1024)
        # Predictions survive the session on disk (keyed by model digest + image pixels + preprocessing).
        self.disk_cache = DiskPredictionCache(cache_dir() / "predictions")
        self._disk_wrappers: dict[int, CachedPredictor] = {}
        self.frames = FrameLoader(self.pool, render_frame, parent=self)  # rendered ahead of the user
        self.frames.ready.connect(self._on_frame)
        self._shown_row: int | None = None  # the row shown before: which way the user steps
        self.current_row = -1
        self.frame: Frame | None = None
        self.auto_evaluate = True
        self._eval_job: Job | None = None
        self._cancel = threading.Event()
        self._generation = 0  # outcomes of an older (cancelled) evaluation still in flight are dropped
        self._bridge = _Bridge()
        self._metrics_timer = QTimer(self)
        self._metrics_timer.setSingleShot(True)
        self._metrics_timer.setInterval(250)
        self._closed = False
        self.display_mode = "classes"  # what the masks show; how each panel draws them: panel_styles
        self.panel_styles: PanelStyles = FILLED
        self.highlight: Highlight | None = None  # confusion drill-down: pixels to outline in one panel
        # What evaluation and display read: the dataset, or it with edited labels (annotation sets it).
        self.dataset_view: Callable[[Dataset], Dataset] = lambda dataset: dataset
        self.hidden: frozenset[int] = frozenset()  # classes unticked in the legend
        self._connect_callbacks()
        from app.controllers.tools_controller import ToolsController

        self.tools = ToolsController(self)
        from app.controllers.display import DisplayController

        self.display = DisplayController(self)
        from app.controllers.drilldown import DrillDownController

        self.drilldown = DrillDownController(self)
        from app.controllers.preferences import PreferencesController

        self.preferences = PreferencesController(self)
        from app.controllers.annotation import AnnotationController

        self.annotation = AnnotationController(self)
        self.display.refresh_legend()
        self._refresh_titles()

    def _connect_callbacks(self) -> None:
        w = self.window
        w.open_dataset_action.triggered.connect(self._ask_dataset)
        w.model_a_action.triggered.connect(lambda: self._ask_model(0))
        w.model_b_action.triggered.connect(lambda: self._ask_model(1))
        w.evaluate_action.triggered.connect(self.evaluate)
        w.cancel_action.triggered.connect(self.cancel_evaluation)
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
        w.compare.show_gt_changed.connect(lambda _shown: self.show_image(self.current_row))
        w.scheme_box.currentIndexChanged.connect(self._on_scheme_box)
        w.image_list.image_selected.connect(self.show_image)
        w.image_list.model.thumbnail_needed.connect(self._load_thumbnail)
        w.metrics.matrix_model_changed.connect(lambda _i: self._refresh_metrics())
        w.metrics.class_metric.currentIndexChanged.connect(lambda _i: self._refresh_metrics())
        w.paths_dropped.connect(self.open_paths)
        w.closing.connect(self.shutdown)
        self.pool.error.connect(self._report_error)
        self._bridge.outcome.connect(self._on_outcome)
        self._metrics_timer.timeout.connect(self._refresh_metrics)

    # ----------------------------------------------------------------- user intents
    def _ask_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open dataset folder")
        if folder:
            self.open_dataset(folder)

    def _ask_model(self, slot: int) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window,
            f"Choose model {_SLOTS[slot]}",
            "",
            f"Models ({' '.join('*' + s for s in supported_suffixes())});;All files (*)",
        )
        if path:
            self.set_model(slot, path)

    def open_paths(self, paths: Sequence[Path]) -> None:
        """Dropped files: models (what the registry opens, Hugging Face checkpoint folders included) fill A,
        then B; other folders open as datasets."""
        free = [i for i, p in enumerate(self.predictors) if p is None] or [1]
        for path in paths:
            if is_model_path(path):
                self.set_model(free.pop(0) if free else 1, path)
            elif path.is_dir():
                self.open_dataset(path)
            else:
                suffixes = ", ".join(supported_suffixes())
                self._log(f"{path}: not a dataset folder or a model ({suffixes}, or a checkpoint folder)")

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
        self.scheme = eval_scheme_by_key(str(self.window.scheme_box.currentData()))
        self.display.refresh_legend()
        self.window.image_list.set_classes(self.scheme.names)
        self.hidden = frozenset()
        self._reset_results()
        self._maybe_evaluate()
        self.show_image(self.current_row)

    def _on_hover(self, x: int, y: int) -> None:
        if self.frame is not None:
            slots = [slot for slot, _ in self.active()]
            self.window.compare.readout.setText(hover_text(self.frame, self.scheme, slots, x, y))

    # ----------------------------------------------------------------- loading results
    def _on_dataset(self, dataset: Dataset) -> None:
        self.cancel_evaluation()
        self.dataset = dataset
        self.cache.clear()
        self.window.image_list.set_dataset(
            [(short_name(ref), ref.city or "") for ref in dataset.refs],
            dataset.cities(),
            self.scheme.names,
            [ref.key for ref in dataset.refs],
        )
        self.window.setWindowTitle(f"{dataset.root.name} — {self.window.windowTitle().split(' — ')[-1]}")
        self._log(f"opened {dataset.root}: {len(dataset)} images ({dataset.kind}, split {dataset.split})")
        custom = dataset.gt_scheme is not LABELIDS
        self.window.scheme_box.setEnabled(not custom)
        if custom:
            # A custom id space has exactly one evaluation scheme: its own classes.
            self.scheme = custom_eval_scheme(dataset.gt_scheme)
            self.display.refresh_legend()
            self.window.image_list.set_classes(self.scheme.names)
        elif not self.scheme.is_cityscapes:
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
            if mapping.granularity == "categories" and self.scheme.key == "trainids":
                # A category model can only be compared on categories; say so by switching.
                self._log(f"model {_SLOTS[slot]} predicts the 8 categories: evaluating on categories")
                self.set_scheme("categories")
            self.scheme.check_model(mapping, info.name)
        except SegLensError as exc:
            self._log(f"model {_SLOTS[slot]}: {exc}")
            self.window.show_message(str(exc), 10000)
            predictor.segmenter.close()
            return
        self.cancel_evaluation()
        self.predictors[slot] = predictor
        if old is not None and old is not predictor:
            old.segmenter.close()
        self._log(
            f"model {_SLOTS[slot]}: {info.name} ({info.backend}, {len(info.class_names)} classes, "
            f"{(info.file_size or 0) / 1e6:.1f} MB, sha256 {info.digest[:12]})"
        )
        self._refresh_titles()
        self._reset_results()
        self.model_loaded.emit(slot, predictor)
        self.show_image(self.current_row)
        self._maybe_evaluate()

    # ----------------------------------------------------------------- evaluation
    def active(self) -> list[tuple[int, SegmenterPredictor]]:
        """The loaded models as (slot, predictor), A before B."""
        return [(i, p) for i, p in enumerate(self.predictors) if p is not None]

    def _on_disk(self, predictor: SegmenterPredictor) -> CachedPredictor:
        """The predictor behind the on-disk prediction cache (one wrapper per model, so hits are counted)."""
        cached = self._disk_wrappers.get(id(predictor))
        if cached is None or cached.predictor is not predictor:
            cached = CachedPredictor(predictor, self.disk_cache)
            self._disk_wrappers[id(predictor)] = cached
        return cached

    def _maybe_evaluate(self) -> None:
        if self.auto_evaluate and self.dataset is not None and self.active():
            self.evaluate()

    def evaluate(self) -> Job | None:
        """(Re)start evaluating the active models on the whole dataset."""
        if self.dataset is None or not self.active():
            self.window.show_message("Open a dataset and choose at least one model first.", 5000)
            return None
        self.cancel_evaluation()
        active = self.active()
        view = self.dataset_view(self.dataset)
        truth = GroundTruth()
        if isinstance(view, EditedDataset):
            truth = GroundTruth("edited", view.project.path, len(view.edited_keys()))
        try:
            predictors = [self._on_disk(p) for _, p in active]
            engine = self.preferences.evaluation_engine(view, predictors, self.scheme)
            evaluator = Evaluator(view, predictors, self.scheme, ground_truth=truth, engine=engine)
        except SegLensError as exc:
            self._log(str(exc))
            self.window.show_message(str(exc), 10000)
            return None
        self._reset_results()
        for (slot, _), live in zip(active, evaluator.accumulators(), strict=True):
            self.live[slot] = live
        self._cancel = threading.Event()
        self._generation += 1
        total = len(self.dataset)
        self.window.set_busy(True, 0, total)
        self.window.show_message(f"Evaluating {total} images…")
        job = self.pool.submit(
            run_evaluation,
            evaluator,
            self._cancel,
            self._bridge.outcome,
            self._generation,
            self.cache,
            with_context=True,
            key="evaluate",
        )
        job.signals.progress.connect(lambda done, total_, _msg: self.window.set_busy(True, done, total_))
        job.signals.result.connect(self._on_evaluation_done)
        job.signals.finished.connect(lambda: self.window.set_busy(False))
        self._eval_job = job
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
        slots = [slot for slot, _ in self.active()]
        for slot, image_eval, error in zip(slots, outcome.evals, outcome.errors, strict=False):
            live = self.live[slot]
            if live is None:
                continue
            if image_eval is not None:
                live.add(image_eval)
                self.window.image_list.model.set_score(outcome.index, slot, image_eval.miou, image_eval.iou)
            elif error:
                live.errors[outcome.ref.key] = error
                self._log(f"model {_SLOTS[slot]}: {error}")
        if outcome.sample_error:
            self._log(f"skipped: {outcome.sample_error}")
        if not self._metrics_timer.isActive():
            self._metrics_timer.start()

    def _on_evaluation_done(self, result: EvaluationResult) -> None:
        self._eval_job = None
        self.result = result
        self._refresh_metrics()
        parts = [
            f"{m.info.name} mIoU {m.scores.miou * 100:.1f}"
            for m in result.models
            if not math.isnan(m.scores.miou)
        ]
        errors = len(result.skipped())
        text = f"Evaluated {result.images_done} images in {result.wall_s:.1f} s" + (
            f": {', '.join(parts)} ({result.scheme.key}, {result.ground_truth.describe()})" if parts else ""
        )
        if errors:
            text += f" ({errors} problems, see the log)"
        self.window.show_message(text)
        self._log(text)
        self.evaluation_finished.emit(result)

    def _reset_results(self) -> None:
        self.highlight = None
        self.frames.clear()
        self.live = [None, None]
        self.result = None
        self.window.image_list.model.clear_scores()
        self._refresh_metrics()

    def _refresh_metrics(self) -> None:
        summaries: list[ModelSummary | None] = []
        for live in self.live:
            if live is None:
                summaries.append(None)
                continue
            scores = live.scores()
            latency = live.latency().p50
            summaries.append(
                ModelSummary(
                    name=live.info.name,
                    miou=scores.miou,
                    iiou=scores.miiou,
                    category_miou=scores.mean_category_iou,
                    pixel_accuracy=scores.pixel_accuracy,
                    latency_ms=math.nan if latency is None else latency,
                    images=len(live.images),
                    class_iou=list(scores.iou),
                    matrix=scores.matrix,
                    per_class={
                        "precision": list(scores.precision),
                        "recall": list(scores.recall),
                        "f1": list(scores.f1),
                        "iiou": list(scores.iiou),
                    },
                    categories=dict(zip(scores.category_names, map(float, scores.category_iou), strict=True)),
                )
            )
        metrics = self.window.metrics
        metrics.set_models(summaries, self.scheme.names)
        self._refresh_models_panel(summaries)
        a, b = (s.matrix if s is not None else None for s in summaries)
        view = matrix_view(
            a, b, str(metrics.matrix_choice.currentData()), str(metrics.matrix_scale.currentData())
        )
        metrics.heatmap.set_values(view, self.scheme.names)

    def _load_thumbnail(self, row: int) -> None:
        if self.dataset is None or not 0 <= row < len(self.dataset):
            return
        dataset = self.dataset
        job = self.pool.submit(thumbnail, dataset.refs[row].image_path, THUMBNAIL_SIZE, group="thumbnails")
        job.signals.result.connect(lambda array, r=row, d=dataset: self._on_thumbnail(d, r, array))

    def _on_thumbnail(self, dataset: Dataset, row: int, array: np.ndarray | None) -> None:
        if array is not None and dataset is self.dataset:  # not a late answer for a dataset closed since
            self.window.image_list.model.set_thumbnail(row, QPixmap.fromImage(rgb_to_qimage(array)))

    def _refresh_models_panel(self, summaries: list[ModelSummary | None]) -> None:
        gt_scheme = self.dataset.gt_scheme if self.dataset else LABELIDS
        self.window.models.set_models(model_cards(self.predictors, summaries, self.scheme, gt_scheme))

    def _render_args(self, row: int) -> tuple[tuple[object, ...], Hashable] | None:
        """What render_frame needs for `row` now, and a key saying what the result depends on."""
        if self.dataset is None or not 0 <= row < len(self.dataset):
            return None
        active = self.active()
        predictors = [self._on_disk(p) for _, p in active]
        try:
            mappings = [mapping_for(p.info, self.dataset.gt_scheme) for p in predictors]
        except SegLensError as exc:
            self._log(str(exc))
            return None
        show_gt = self.window.compare.show_gt.isChecked()
        styles = layer_styles(self.panel_styles)  # filled and mask alone share their layers
        args = (
            self.dataset_view(self.dataset),
            self.dataset.refs[row],
            predictors,
            mappings,
            self.scheme,
            self.cache,
            [slot for slot, _ in active],
            self.display_mode,
            self.highlight,
            self.hidden,
            show_gt,
            styles,
        )
        digests = tuple(p.info.digest for p in predictors)
        key = (row, digests, self.scheme.key, self.display_mode, self.highlight, self.hidden, show_gt, styles)
        return args, key

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
        slots = [slot for slot, _ in self.active()]
        for slot, image_eval, error in zip(slots, frame.evals, frame.errors, strict=False):
            if error:
                self._log(f"model {_SLOTS[slot]}: {error}")
            if image_eval is not None:
                self.window.image_list.model.set_score(
                    self.current_row, slot, image_eval.miou, image_eval.iou
                )
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
        if self.dataset is None or not self.active():
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
        active = dict(self.active())
        for slot, panel in zip((0, 1), (compare.a_panel, compare.b_panel), strict=True):
            predictor = active.get(slot)
            if predictor is None:
                panel.title.setText(
                    f"{_SLOTS[slot]}: no model — use Model {_SLOTS[slot]}… or drop an .onnx file"
                )
                continue
            text = f"{_SLOTS[slot]}: {predictor.info.name}"
            if frame is not None:
                index = list(active).index(slot)
                image_eval = frame.evals[index] if index < len(frame.evals) else None
                if image_eval is not None and not math.isnan(image_eval.miou):
                    text += f"   mIoU {image_eval.miou * 100:.1f}   {image_eval.timings.total_ms:.0f} ms"
            panel.title.setText(text)

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
        for predictor in self.predictors:
            if predictor is not None:
                predictor.segmenter.close()
