"""The confusion matrix, readable at any size: class names on both axes (rotated on top), a colour bar,
counts and percentages on hover, classes that are never evaluated (void) left out and said so, the
selected cell outlined. A click on a cell asks for the images with that confusion."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

OTHER = "other (not evaluated)"


def _lut(name: str) -> np.ndarray:
    return np.asarray(pg.colormap.get(name).getLookupTable(nPts=256), dtype=np.uint8)[:, :3]


def _diverging() -> np.ndarray:
    """Blue (B fewer) - white - orange (B more): readable with colour blindness, unlike red/green."""
    t = np.linspace(0.0, 1.0, 256)[:, None]
    blue, white, orange = np.array([0, 114, 178]), np.array([245, 245, 245]), np.array([230, 159, 0])
    low = white + (blue - white) * np.clip(1 - 2 * t, 0, 1)
    high = white + (orange - white) * np.clip(2 * t - 1, 0, 1)
    return np.where(t < 0.5, low, high).astype(np.uint8)


class ConfusionHeatmap(QWidget):
    """Rows: ground truth; columns: prediction, the last one "other" (a value outside the evaluated
    classes). Values come prepared (app.core.display.render.matrix_view); `counts` are the raw pixel
    counts."""

    cell_clicked = Signal(int, int)  # (ground-truth class, predicted class; num_classes means "other")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.values: np.ndarray | None = None
        self.counts: np.ndarray | None = None
        self.levels = (0.0, 1.0)
        self._names: list[str] = []
        self._keep: list[int] = []  # shown class indices (the never-evaluated ones left out)
        self._left_out: list[str] = []
        self.selected: tuple[int, int] | None = None  # (gt, pred) in class indices
        self._image: QImage | None = None
        self._viridis, self._div = _lut("viridis"), _diverging()

    def sizeHint(self) -> QSize:
        return QSize(360, 360)

    def set_values(
        self,
        view: tuple[np.ndarray, tuple[float, float]] | None,
        names: Sequence[str],
        counts: np.ndarray | None = None,
        ignored: Collection[int] = (),
    ) -> None:
        """Show prepared values; `ignored`: classes never evaluated (left out, listed under the matrix)."""
        self._names = list(names)
        if view is None or view[0].size == 0:
            self.values, self.counts, self._image = None, None, None
            self.update()
            return
        self.values, self.levels = view
        self.counts = counts
        self._keep = [k for k in range(len(names)) if k not in set(ignored)]
        self._left_out = [names[k] for k in sorted(ignored) if k < len(names)]
        rows = np.array(self._keep, dtype=np.int64)
        columns = np.array([*self._keep, len(names)], dtype=np.int64)
        shown = self.values[np.ix_(rows, columns)]
        low, high = self.levels
        t = np.clip((shown - low) / max(high - low, 1e-12), 0, 1)
        lut = self._div if low < 0 else self._viridis
        rgb = np.ascontiguousarray(lut[(t * 255).astype(np.uint8)])
        h, w = rgb.shape[:2]
        self._image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        if self.selected is not None and self.selected[0] not in self._keep:
            self.selected = None
        self.update()

    def select(self, cell: tuple[int, int] | None) -> None:
        """Outline this (gt, pred) cell (None: none)."""
        self.selected = cell
        self.update()

    # ------------------------------------------------------------------ geometry
    def _font(self) -> QFont:
        """The widget font, smaller (down to 7 px) when the cells are smaller than a line of text: every
        class keeps its name at any size."""
        font = QFont(self.font())
        metrics = QFontMetrics(font)
        cell = self._cell_size(metrics.horizontalAdvance("construction"))
        if cell < metrics.height():
            font.setPixelSize(max(7, int(cell) - 1))
        return font

    def _cell_size(self, label_width: int) -> float:
        rows = max(len(self._keep), 1)
        room_w = self.width() - label_width - 70  # colour bar and its numbers on the right
        room_h = self.height() - label_width - 24  # rotated names on top, the note below
        return max(2.0, min(room_w / (rows + 1), room_h / rows))

    def _layout(self) -> tuple[QFont, int, float, QRect]:
        font = self._font()
        metrics = QFontMetrics(font)
        label = min(max((metrics.horizontalAdvance(n) for n in [*self._names, "other"]), default=40), 110) + 6
        cell = self._cell_size(label)
        rows = len(self._keep)
        grid = QRect(label, label, int(cell * (rows + 1)), int(cell * rows))
        return font, label, cell, grid

    def _cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        if self.values is None:
            return None
        _, _, cell, grid = self._layout()
        if not grid.contains(pos):
            return None
        r, c = int((pos.y() - grid.top()) // cell), int((pos.x() - grid.left()) // cell)
        if not (0 <= r < len(self._keep) and 0 <= c <= len(self._keep)):
            return None
        return self._keep[r], (self._keep[c] if c < len(self._keep) else len(self._names))

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        text = palette.color(palette.ColorRole.WindowText)
        if self.values is None or self._image is None:
            painter.setPen(text)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Confusion matrix: evaluate first")
            return
        font, label, cell, grid = self._layout()
        painter.setFont(font)
        painter.drawImage(grid, self._image)
        painter.setPen(text)
        metrics = QFontMetrics(font)
        names = [self._names[k] for k in self._keep]
        for i, name in enumerate(names):  # rows: ground truth, names on the left
            y = int(grid.top() + i * cell)
            shown = metrics.elidedText(name, Qt.TextElideMode.ElideRight, label - 6)
            painter.drawText(
                QRect(0, y, label - 4, int(cell)),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                shown,
            )
        painter.save()
        painter.rotate(-90)
        for i, name in enumerate([*names, "other"]):  # columns: prediction, names on top, rotated
            x = int(grid.left() + i * cell)
            shown = metrics.elidedText(name, Qt.TextElideMode.ElideRight, label - 6)
            painter.drawText(
                QRect(-(label - 2), x, label - 6, int(cell)),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                shown,
            )
        painter.restore()
        painter.drawText(QRect(0, 0, label, label), Qt.AlignmentFlag.AlignCenter, "GT ↓\npred →")
        if self.selected is not None and self.selected[0] in self._keep:
            gt, pred = self.selected
            r = self._keep.index(gt)
            c = self._keep.index(pred) if pred in self._keep else len(self._keep)
            painter.setPen(QPen(QColor(255, 0, 255), 2))
            painter.drawRect(
                QRect(int(grid.left() + c * cell), int(grid.top() + r * cell), int(cell), int(cell))
            )
        self._paint_colour_bar(painter, grid, metrics, text)
        if self._left_out:
            painter.setPen(text)
            note = f"left out (never evaluated): {', '.join(self._left_out)}"
            painter.drawText(
                QRect(grid.left(), grid.bottom() + 4, self.width() - grid.left(), 18),
                Qt.AlignmentFlag.AlignLeft,
                note,
            )

    def _paint_colour_bar(self, painter: QPainter, grid: QRect, metrics: QFontMetrics, text: QColor) -> None:
        low, high = self.levels
        lut = self._div if low < 0 else self._viridis
        bar = QRect(grid.right() + 10, grid.top(), 12, max(grid.height(), 20))
        for y in range(bar.height()):
            t = 1 - y / max(bar.height() - 1, 1)
            painter.setPen(QColor(*map(int, lut[int(t * 255)])))
            painter.drawLine(bar.left(), bar.top() + y, bar.right(), bar.top() + y)
        painter.setPen(text)
        for value, y in ((high, bar.top()), (low, bar.bottom() - metrics.height())):
            painter.drawText(
                QRect(bar.right() + 3, y, 60, metrics.height()),
                Qt.AlignmentFlag.AlignLeft,
                self._format(value),
            )

    def _format(self, value: float) -> str:
        low, high = self.levels
        if high <= 1.0 and low >= -1.0:
            return f"{value * 100:+.0f}%" if low < 0 else f"{value * 100:.0f}%"
        return f"{value:+.3g}" if low < 0 else f"{value:.3g}"

    # ------------------------------------------------------------------ interaction
    def hover_text(self, gt: int, pred: int) -> str:
        """'GT road → predicted sidewalk: 1,234 px, 2.3% of road pixels (shown value ...)'."""
        names = self._names
        predicted = names[pred] if pred < len(names) else OTHER
        parts = [f"GT {names[gt]} → predicted {predicted}"]
        if self.counts is not None and gt < self.counts.shape[0] and pred < self.counts.shape[1]:
            count = int(self.counts[gt, pred])
            row = int(self.counts[gt].sum())
            share = count / row * 100 if row else math.nan
            parts.append(
                f"{count:,} px" + ("" if math.isnan(share) else f", {share:.1f}% of {names[gt]} pixels")
            )
        if self.values is not None:
            parts.append(f"shown: {self._format(float(self.values[gt, pred]))}")
        return "\n".join(parts)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        cell = self._cell_at(event.position().toPoint())
        if cell is None:
            QToolTip.hideText()
            return
        QToolTip.showText(event.globalPosition().toPoint(), self.hover_text(*cell), self)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        cell = self._cell_at(event.position().toPoint())
        if cell is not None:
            self.select(cell)
            self.cell_clicked.emit(*cell)
