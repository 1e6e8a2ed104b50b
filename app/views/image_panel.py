"""One image with a mask layer on top. Opacity is a property of the mask item: changing it costs no pixels."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen, QPixmap, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
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
    swipe_moved = Signal(float)  # the swipe divider dragged to this fraction of the width

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        # QGraphicsView takes drops on its viewport (for scene items; ours take none) and swallows them:
        # files dropped on the image go to the main window, which opens them.
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)
        self.image_item = QGraphicsPixmapItem()
        self.mask_item = QGraphicsPixmapItem()
        self.mask_item.setOpacity(0.5)
        self._opacity = 0.5  # the shared slider's value; a mask-alone panel draws its mask opaque
        self.mask_alone = False
        self.masks_visible = True
        self.scene().addItem(self.image_item)
        # Swipe: this view's mask left of a divider, a second mask (model B's) right of it, each clipped.
        self._left_clip = self._clip_item()
        self._right_clip = self._clip_item()
        self.mask_item.setParentItem(self._left_clip)
        self.swipe_item = QGraphicsPixmapItem(self._right_clip)
        self.divider = QGraphicsLineItem()
        self.divider.setPen(QPen(QColor(255, 255, 255), 3))
        self.divider.setZValue(9)
        self.divider.setVisible(False)
        self.scene().addItem(self.divider)
        self.swipe_fraction = 0.5
        self.swiping = False
        self._dragging_divider = False
        self._regions: list[QGraphicsItem] = []  # the review's marked regions, drawn over the masks
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

    def _clip_item(self) -> QGraphicsRectItem:
        clip = QGraphicsRectItem()
        clip.setPen(QPen(Qt.PenStyle.NoPen))
        clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.scene().addItem(clip)
        return clip

    def set_swipe(self, mask: QImage | None) -> None:
        """Swipe: show `mask` (model B's) right of the divider and this view's mask left of it; None
        ends swiping."""
        self.swiping = mask is not None
        self.swipe_item.setPixmap(QPixmap.fromImage(mask) if mask is not None else QPixmap())
        self._place_divider()

    def set_swipe_fraction(self, fraction: float) -> None:
        self.swipe_fraction = min(max(fraction, 0.0), 1.0)
        self._place_divider()

    def _place_divider(self) -> None:
        rect = QRectF(self.image_item.pixmap().rect())
        if not self.swiping:
            self._left_clip.setRect(
                rect.adjusted(-1, -1, 1, 1) if not rect.isEmpty() else QRectF(0, 0, 1e6, 1e6)
            )
            self._right_clip.setRect(QRectF())
            self.divider.setVisible(False)
            return
        x = rect.width() * self.swipe_fraction
        self._left_clip.setRect(QRectF(0, 0, x, rect.height()))
        self._right_clip.setRect(QRectF(x, 0, rect.width() - x, rect.height()))
        self.divider.setLine(x, 0, x, rect.height())
        self.divider.setVisible(True)

    def _near_divider(self, event: QMouseEvent) -> bool:
        if not self.swiping:
            return False
        x = self.mapFromScene(self.divider.line().p1()).x()
        return abs(event.position().x() - x) <= 8

    def set_regions(self, regions: list[tuple[int, int, int, int, str]]) -> None:
        """Draw the review's marked regions (x, y, w, h, comment) as dashed frames with their comment."""
        for item in self._regions:
            self.scene().removeItem(item)
        self._regions = []
        pen = QPen(QColor(255, 255, 0), 2, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)  # as thick at any zoom
        for x, y, w, h, text in regions:
            frame = QGraphicsRectItem(QRectF(x, y, w, h))
            frame.setPen(pen)
            frame.setZValue(8)
            frame.setToolTip(text or "marked region")
            self.scene().addItem(frame)
            self._regions.append(frame)
            if text:
                label = QGraphicsSimpleTextItem(text, frame)
                label.setBrush(QColor(255, 255, 0))
                label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
                label.setPos(x, max(y - 2, 0))  # a child: removed with its frame

    def set_image(self, image: QImage | None) -> None:
        self.set_pixmap(QPixmap.fromImage(image) if image is not None else None)

    def set_pixmap(self, pixmap: QPixmap | None) -> None:
        pixmap = pixmap if pixmap is not None else QPixmap()
        self.image_item.setPixmap(pixmap)
        self.scene().setSceneRect(QRectF(pixmap.rect()))
        self._place_divider()
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
        self._opacity = opacity
        self._apply_layers()

    def set_mask_alone(self, alone: bool) -> None:
        """Mask alone: no image underneath and the mask fully opaque, whatever the slider says."""
        self.mask_alone = alone
        self._apply_layers()

    def set_masks_visible(self, visible: bool) -> None:
        """Hide the mask layer (Space); a mask-alone panel then shows its image instead of nothing."""
        self.masks_visible = visible
        self._apply_layers()

    def _apply_layers(self) -> None:
        opacity = 1.0 if self.mask_alone else self._opacity
        for item in (self.mask_item, self.swipe_item):
            item.setVisible(self.masks_visible)
            item.setOpacity(opacity)
        self.image_item.setVisible(not (self.mask_alone and self.masks_visible))

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
        if self._near_divider(event):
            self._dragging_divider = True
            return
        if not self.editing:
            super().mousePressEvent(event)
            return
        point = self.mapToScene(event.position().toPoint())
        self.pointer_pressed.emit(point.x(), point.y(), event.button())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._dragging_divider:
            self._dragging_divider = False
            return
        if not self.editing:
            super().mouseReleaseEvent(event)
            return
        point = self.mapToScene(event.position().toPoint())
        self.pointer_released.emit(point.x(), point.y())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        point = self.mapToScene(event.position().toPoint())
        if self._dragging_divider:
            width = max(self.image_item.pixmap().width(), 1)
            self.set_swipe_fraction(point.x() / width)
            self.swipe_moved.emit(self.swipe_fraction)
            return
        if self.swiping and not self.editing:
            near = self._near_divider(event)
            self.viewport().setCursor(Qt.CursorShape.SplitHCursor if near else Qt.CursorShape.OpenHandCursor)
        super().mouseMoveEvent(event)
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


# How a panel draws its mask: (key, menu text). The keys are those of app.evaluation.frames.STYLES.
STYLES = (("filled", "Filled"), ("contours", "Contours"), ("mask", "Mask alone"))


class ImagePanel(QWidget):
    """A titled ImageView ("A: segformer-b0  mIoU 71.2") with its own mask style in the title row."""

    style_changed = Signal(str)

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setStyleSheet("font-weight: 600; padding: 2px 4px;")
        # Long model names must not widen the panel (the style box stays visible).
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.style_box = QComboBox()
        for key, text in STYLES:
            self.style_box.addItem(text, key)
        self.style_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.style_box.setToolTip(
            "How this panel draws its mask: filled over the image, outlines only, or the mask alone "
            "(S cycles all panels)"
        )
        self.view = ImageView()
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.setSpacing(4)
        header.addWidget(self.title, 1)
        header.addWidget(self.style_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        self.style_box.currentIndexChanged.connect(self._on_style)

    def mask_style(self) -> str:
        return str(self.style_box.currentData())

    def set_mask_style(self, style: str) -> None:
        """Choose a style by key (unknown keys are ignored); emits style_changed when it changes."""
        index = self.style_box.findData(style)
        if index >= 0:
            self.style_box.setCurrentIndex(index)

    def _on_style(self, _index: int) -> None:
        style = self.mask_style()
        self.view.set_mask_alone(style == "mask")
        self.style_changed.emit(style)
