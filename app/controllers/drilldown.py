"""Confusion drill-down: a matrix cell -> the images ranked by that confusion -> its pixels highlighted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QListWidgetItem

from app.evaluation.drilldown import rank_images
from app.evaluation.frames import Highlight

if TYPE_CHECKING:
    from app.controllers.workbench import Workbench

_KEY_ROLE = Qt.ItemDataRole.UserRole


class DrillDownController(QObject):
    """Connects the heatmap and the drill list of the metrics panel to the compare view."""

    def __init__(self, main: Workbench) -> None:
        super().__init__(main)  # type: ignore[arg-type]
        self.main = main
        panel = main.window.metrics
        panel.heatmap.cell_clicked.connect(self.drill)
        panel.drill.currentItemChanged.connect(self._open_item)
        self._cell: tuple[int, int, int] | None = None

    def drill(self, gt: int, pred: int) -> None:
        """List the images of the model shown in the heatmap ranked by confusion (gt -> pred)."""
        panel = self.main.window.metrics
        slot = min(panel.matrix_choice.currentIndex(), 1)  # "B - A" drills into B
        evaluation = self.main.live[slot]
        panel.drill.clear()
        if evaluation is None:
            return
        names = self.main.state.view.scheme.names
        predicted = names[pred] if pred < len(names) else "not an evaluated class"
        ranked = rank_images(evaluation, gt, pred)
        panel.drill_title.setText(
            f"{'AB'[slot]}: ground truth {names[gt]} predicted as {predicted} — {len(ranked)} images "
            "(pick one: its pixels are outlined in the panel)"
        )
        panel.heatmap.select((gt, pred))
        self._cell = (slot, gt, pred)
        for key, count in ranked:
            item = QListWidgetItem(f"{count:>9,} px   {key}")
            item.setData(_KEY_ROLE, key)
            panel.drill.addItem(item)

    def _open_item(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        dataset = self.main.dataset
        if item is None or self._cell is None or dataset is None:
            return
        key = str(item.data(_KEY_ROLE))
        rows = [i for i, ref in enumerate(dataset.refs) if ref.key == key]
        if not rows:
            return
        slot, gt, pred = self._cell
        self.main.state.update(highlight=Highlight(slot, gt, pred))  # re-renders the shown image
        if self.main.current_row != rows[0]:
            self.main.window.image_list.select_row(rows[0])

    def clear(self) -> None:
        """Forget the list, the outlined cell and the highlight (scheme, models or results changed): no
        list may outlive the numbers it was made from."""
        self._cell = None
        panel = self.main.window.metrics
        panel.drill.clear()
        panel.drill_title.setText("Click a matrix cell to list the images with that confusion.")
        panel.heatmap.select(None)
