"""Opening things: File → Open dataset / Model A / Model B (through the window's dialogs), files dropped
on the window, and the image table's thumbnails (loaded lazily on the worker pool)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QPixmap

from app.core.io.datasets import Dataset
from app.core.io.image_table import thumbnail
from app.inference.registry import is_model_path, supported_suffixes
from app.views.image_list import THUMBNAIL_SIZE
from app.views.image_panel import rgb_to_qimage

if TYPE_CHECKING:
    from app.controllers.workbench import Workbench

_SLOTS = ("A", "B")


class Opener(QObject):
    """Asks the user for datasets and models and opens them through the main controller."""

    def __init__(self, main: Workbench) -> None:
        super().__init__(main)  # type: ignore[arg-type]
        self.main = main
        w = main.window
        w.open_dataset_action.triggered.connect(lambda _checked=False: self.ask_dataset())
        w.model_a_action.triggered.connect(lambda _checked=False: self.ask_model(0))
        w.model_b_action.triggered.connect(lambda _checked=False: self.ask_model(1))
        w.paths_dropped.connect(self.open_paths)
        w.image_list.model.thumbnail_needed.connect(self._load_thumbnail)

    def ask_dataset(self) -> None:
        folder = self.main.window.dialogs.existing_directory("Open dataset folder")
        if folder:
            self.main.open_dataset(folder)

    def ask_model(self, slot: int) -> None:
        models = f"Models ({' '.join('*' + s for s in supported_suffixes())});;All files (*)"
        path = self.main.window.dialogs.open_file(f"Choose model {_SLOTS[slot]}", "", models)
        if path:
            self.main.set_model(slot, path)

    def open_paths(self, paths: Sequence[Path]) -> None:
        """Dropped files: models (what the registry opens, Hugging Face checkpoint folders included) fill A,
        then B; other folders open as datasets."""
        free = [i for i, p in enumerate(self.main.predictors) if p is None] or [1]
        for path in paths:
            if is_model_path(path):
                self.main.set_model(free.pop(0) if free else 1, path)
            elif path.is_dir():
                self.main.open_dataset(path)
            else:
                suffixes = ", ".join(supported_suffixes())
                self.main.window.append_log(
                    f"{path}: not a dataset folder or a model ({suffixes}, or a checkpoint folder)"
                )

    def _load_thumbnail(self, row: int) -> None:
        dataset = self.main.dataset
        if dataset is None or not 0 <= row < len(dataset):
            return
        job = self.main.pool.submit(
            thumbnail, dataset.refs[row].image_path, THUMBNAIL_SIZE, group="thumbnails"
        )
        job.signals.result.connect(lambda array, r=row, d=dataset: self._on_thumbnail(d, r, array))

    def _on_thumbnail(self, dataset: Dataset, row: int, array: np.ndarray | None) -> None:
        if array is not None and dataset is self.main.dataset:  # not a late answer for a closed dataset
            self.main.window.image_list.model.set_thumbnail(row, QPixmap.fromImage(rgb_to_qimage(array)))
