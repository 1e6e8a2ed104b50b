"""Confusion drill-down: a matrix cell -> the images ranked by that confusion -> its pixels highlighted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QListWidgetItem

from app.evaluation.drilldown import rank_images
from app.evaluation.frames import Highlight

if TYPE_CHECKING:
    from app.controllers.main_controller import MainController

_KEY_ROLE = Qt.ItemDataRole.UserRole


class DrillDownController(QObject):
    """Connects the heatmap and the drill list of the metrics panel to the compare view."""

    def __init__(self, main: MainController) -> None:
        super().__init__(main)
        self.main = main
        panel = main.window.metrics
        panel.heatmap.cell_clicked.connect(self.drill)
        panel.drill.currentItemChanged.connect(self._open_item)
        self._cell: tuple[int, int, int] | None = None

    def drill(self, gt: int, pred: int) -> None:
        """List the images of the model shown in the heatmap ranked by confusion (gt -> pred)."""
        slot = min(self.main.window.metrics.matrix_choice.currentIndex(), 1)  # "B - A" drills into B
        evaluation = self.main.live[slot]
        panel = self.main.window.metrics
        panel.drill.clear()
        if evaluation is None:
            return
        names = self.main.scheme.names
        predicted = names[pred] if pred < len(names) else "not an evaluated class"
        ranked = rank_images(evaluation, gt, pred)
        panel.drill_title.setText(
            f"{'AB'[slot]}: ground truth {names[gt]} predicted as {predicted} — {len(ranked)} images"
        )
        self._cell = (slot, gt, pred)
        for key, count in ranked:
            item = QListWidgetItem(f"{count:>9,} px   {key}")
            item.setData(_KEY_ROLE, key)
            panel.drill.addItem(item)

    def _open_item(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is None or self._cell is None or self.main.dataset is None:
            return
        key = str(item.data(_KEY_ROLE))
        rows = [i for i, ref in enumerate(self.main.dataset.refs) if ref.key == key]
        if not rows:
            return
        slot, gt, pred = self._cell
        self.main.highlight = Highlight(slot, gt, pred)
        if self.main.current_row == rows[0]:
            self.main.show_image(rows[0])  # same image: re-render with the highlight
        else:
            self.main.window.image_list.select_row(rows[0])

    def clear(self) -> None:
        """Forget the highlight (another image picked by hand, scheme or models changed)."""
        self.main.highlight = None
