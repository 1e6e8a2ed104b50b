"""What the part controllers (display, drill-down, annotation, tools, preferences) may use of the main
controller: a narrow protocol, so none of them imports it (no import circle), plus the ViewState they read
and change the view through."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from PySide6.QtCore import SignalInstance

from app.controllers.view_state import ViewState
from app.controllers.workers import Job, WorkerPool
from app.core.io.datasets import Dataset, SampleRef
from app.evaluation.frames import Frame
from app.evaluation.predictors import SegmenterPredictor
from app.evaluation.results import EvaluationResult, GroundTruth, ModelAccumulator
from app.evaluation.store import CachedPredictor, PredictionStore
from app.views.main_window import MainWindow


class Workbench(Protocol):
    """The open dataset, the models A and B, their live scores and the services to act on them."""

    window: MainWindow
    pool: WorkerPool
    state: ViewState
    store: PredictionStore
    dataset: Dataset | None
    predictors: list[SegmenterPredictor | None]
    live: list[ModelAccumulator | None]
    refused: list[str | None]  # per slot: why the scheme cannot score the model
    truth: GroundTruth
    result: EvaluationResult | None
    frame: Frame | None
    current_row: int
    dataset_view: Callable[[Dataset], Dataset]  # the annotation sets it: edited labels or the originals

    @property
    def dataset_loaded(self) -> SignalInstance: ...
    @property
    def model_loaded(self) -> SignalInstance: ...
    @property
    def frame_shown(self) -> SignalInstance: ...
    @property
    def evaluation_finished(self) -> SignalInstance: ...
    @property
    def rescored(self) -> SignalInstance: ...

    def active(self) -> list[tuple[int, SegmenterPredictor]]: ...
    def scored(self) -> list[tuple[int, SegmenterPredictor]]: ...
    def on_disk(self, predictor: SegmenterPredictor) -> CachedPredictor: ...
    def show_image(self, row: int) -> None: ...
    def evaluate(self) -> Job | None: ...
    def set_model(self, slot: int, path: str | Path) -> Job: ...
    def open_dataset(self, path: str | Path) -> Job: ...
    def set_scheme(self, key: str) -> None: ...
    def evaluation_view(self) -> Dataset | None: ...
    def labels_changed(self, ref: SampleRef, labels: np.ndarray, truth: GroundTruth) -> None: ...
