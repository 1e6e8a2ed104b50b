"""One image with a mask layer on top. Opacity is a property of the mask item: changing it costs no pixels."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen, QPixmap, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsEllipseItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QVBoxLayout,
    QWidget,
)


def rgb_to_qimage(array: np.ndarray) -> QImage:
    """HxWx3 uint8 -> QImage (copied, so the array may be freed)."""
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return QImage(array.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def rgba_to_qimage(array: np.ndarray) -> QImage:
    """HxWx4 uint8 (straight alpha) -> QImage (copied)."""
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return QImage(array.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()


class ImageView(QGraphicsView):
    """Zoom with the wheel, pan by dragging; reports zoom/pan so sibling views can follow."""

    view_changed = Signal()
    hovered = Signal(int, int)  # image pixel (x, y) under the cursor
    # Editing (only while `editing` is on): scene coordinates in image pixels, and the mouse button.
    pointer_pressed = Signal(float, float, object)
    pointer_moved = Signal(float, float)
    pointer_released = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.image_item = QGraphicsPixmapItem()
        self.mask_item = QGraphicsPixmapItem()
        self.mask_item.setOpacity(0.5)
        self.scene().addItem(self.image_item)
        self.scene().addItem(self.mask_item)
        self._fit = True
        self.editing = False
        self.brush = QGraphicsEllipseItem()
        self.brush.setPen(QPen(QColor(255, 255, 255), 0))
        self.brush.setZValue(10)
        self.brush.setVisible(False)
        self.scene().addItem(self.brush)
        self.brush_radius = 8.0
        self.setMouseTracking(True)
        self.horizontalScrollBar().valueChanged.connect(self.view_changed)
        self.verticalScrollBar().valueChanged.connect(self.view_changed)

    def set_image(self, image: QImage | None) -> None:
        self.set_pixmap(QPixmap.fromImage(image) if image is not None else None)

    def set_pixmap(self, pixmap: QPixmap | None) -> None:
        pixmap = pixmap if pixmap is not None else QPixmap()
        self.image_item.setPixmap(pixmap)
        self.scene().setSceneRect(QRectF(pixmap.rect()))
        if self._fit:
            self.fit()

    def set_mask(self, mask: QImage | None) -> None:
        self.mask_item.setPixmap(QPixmap.fromImage(mask) if mask is not None else QPixmap())

    def paint_mask(self, x: int, y: int, patch: QImage) -> None:
        """Replace a rectangle of the mask layer (an edit repaints only what changed)."""
        pixmap = self.mask_item.pixmap()
        if pixmap.isNull():
            return
        painter = QPainter(pixmap)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(x, y, patch)
        painter.end()
        self.mask_item.setPixmap(pixmap)

    def set_mask_opacity(self, opacity: float) -> None:
        self.mask_item.setOpacity(opacity)

    def fit(self) -> None:
        self._fit = True
        if not self.image_item.pixmap().isNull():
            self.fitInView(self.image_item, Qt.AspectRatioMode.KeepAspectRatio)
        self.view_changed.emit()

    def set_editing(self, editing: bool) -> None:
        """Mouse paints instead of panning (the wheel still zooms)."""
        self.editing = editing
        self.setDragMode(QGraphicsView.DragMode.NoDrag if editing else QGraphicsView.DragMode.ScrollHandDrag)
        self.brush.setVisible(False)

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = radius

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if not self.editing:
            super().mousePressEvent(event)
            return
        point = self.mapToScene(event.position().toPoint())
        self.pointer_pressed.emit(point.x(), point.y(), event.button())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if not self.editing:
            super().mouseReleaseEvent(event)
            return
        point = self.mapToScene(event.position().toPoint())
        self.pointer_released.emit(point.x(), point.y())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        point = self.mapToScene(event.position().toPoint())
        if self.editing:
            r = self.brush_radius
            self.brush.setRect(QRectF(point.x() - r, point.y() - r, 2 * r, 2 * r))  # size preview
            self.brush.setVisible(True)
            if event.buttons() != Qt.MouseButton.NoButton:
                self.pointer_moved.emit(point.x(), point.y())
        x, y = int(point.x()), int(point.y())
        rect = self.image_item.pixmap().rect()
        if 0 <= x < rect.width() and 0 <= y < rect.height():
            self.hovered.emit(x, y)

    def wheelEvent(self, event: QWheelEvent) -> None:
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        self._fit = False
        self.scale(factor, factor)
        self.view_changed.emit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._fit:
            self.fit()


class ImagePanel(QWidget):
    """A titled ImageView ("A: segformer-b0  mIoU 71.2")."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setStyleSheet("font-weight: 600; padding: 2px 4px;")
        self.view = ImageView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
