"""Ground truth, model A and model B side by side, sharing zoom, pan and one opacity slider."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.views.edit_bar import EditBar
from app.views.image_panel import STYLES, ImagePanel, ImageView
from app.views.theme import swatch_icon


def _key(name: str, color: tuple[int, int, int]) -> QWidget:
    """A legend entry that cannot be ticked (error / A-vs-B colours): swatch and name in full colour, where
    a disabled checkbox would grey both out."""
    key = QWidget()
    swatch = QLabel()
    swatch.setPixmap(swatch_icon(color).pixmap(12, 12))
    layout = QHBoxLayout(key)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(4)
    layout.addWidget(swatch)
    layout.addWidget(QLabel(name))
    layout.addStretch(1)
    return key


class Legend(QWidget):
    """Colour swatches with class names, wrapped in rows; unticking a class hides it in the masks."""

    hidden_changed = Signal(object)  # frozenset of hidden class indices

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._grid = QGridLayout(self)
        # The grid must not pin the legend's minimum width to its current column count: see _reflow.
        self._grid.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self._grid.setContentsMargins(4, 0, 4, 0)
        self._grid.setHorizontalSpacing(10)
        self._grid.setVerticalSpacing(2)
        self.entries: list[QCheckBox] = []
        self._items: list[QWidget] = []  # entries or colour keys, in order
        self._max_columns = 7
        self._columns = 0

    def set_classes(
        self,
        names: Sequence[str],
        colors: Sequence[tuple[int, int, int]],
        columns: int = 7,
        checkable: bool = True,
    ) -> None:
        """Show these entries, at most `columns` per row, fewer when the legend is narrow (it reflows as
        it is resized: the window never has to be wider than one entry for the legend's sake)."""
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.hide()  # now: deleteLater waits for the event loop, and the new keys go on top
                widget.deleteLater()
        self.entries = []
        self._items = [
            self._entry(name, color) if checkable else _key(name, color)
            for name, color in zip(names, colors, strict=True)
        ]
        self._max_columns = max(1, columns)
        self._columns = 0
        self._reflow()

    def add_key(self, name: str, color: tuple[int, int, int]) -> None:
        """One more colour key after the entries (e.g. the drill-down highlight)."""
        self._items.append(_key(name, color))
        self._columns = 0
        self._reflow()

    def _reflow(self) -> None:
        if not self._items:
            return
        margins = self._grid.contentsMargins()
        room = max(1, self.width() - margins.left() - margins.right())
        cell = max(item.sizeHint().width() for item in self._items) + self._grid.horizontalSpacing()
        columns = max(1, min(self._max_columns, len(self._items), room // max(cell, 1)))
        if columns == self._columns:
            return
        self._columns = columns
        for item in self._items:
            self._grid.removeWidget(item)
        for i, item in enumerate(self._items):
            self._grid.addWidget(item, i // columns, i % columns)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        widest = max((item.sizeHint().width() for item in self._items), default=0)
        margins = self._grid.contentsMargins()
        return QSize(widest + margins.left() + margins.right(), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._reflow()

    def _entry(self, name: str, color: tuple[int, int, int]) -> QCheckBox:
        entry = QCheckBox(name)
        entry.setIcon(swatch_icon(color))
        entry.setChecked(True)
        entry.setToolTip("Untick to hide this class in the masks")
        entry.toggled.connect(self._emit_hidden)
        self.entries.append(entry)
        return entry

    def hidden(self) -> frozenset[int]:
        return frozenset(i for i, entry in enumerate(self.entries) if not entry.isChecked())

    def _emit_hidden(self, _checked: bool) -> None:
        self.hidden_changed.emit(self.hidden())


class CompareView(QWidget):
    """Lays out the panels and controls; emits the user's intents, holds no data.

    What the masks show (classes, errors, A vs B) is one choice for all panels; how each panel draws its
    mask (filled, contours, mask alone) is chosen in the panel's title row."""

    opacity_changed = Signal(float)
    show_gt_changed = Signal(bool)
    mode_changed = Signal(str)
    styles_changed = Signal(object)  # (GT, A, B) styles, keys of image_panel.STYLES
    hovered = Signal(int, int)

    MODES = (
        ("classes", "Classes"),
        ("errors", "Errors vs GT"),
        ("disagreement", "A vs B"),
    )
    LAYOUTS = (
        ("side", "Side by side"),
        ("swipe", "Swipe A | B"),
        ("flicker", "Flicker A / B"),
    )
    layout_changed = Signal(str)
    swipe_moved = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gt_panel = ImagePanel("Ground truth")
        self.a_panel = ImagePanel("A: (no model)")
        self.b_panel = ImagePanel("B: (no model)")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setMinimumWidth(70)  # shrinks first when the window is narrow
        self.opacity.setMaximumWidth(180)
        self.opacity.setToolTip("Mask opacity (Ctrl+Up / Ctrl+Down)")
        self.opacity_label = QLabel("50%")
        self.show_gt = QCheckBox("Ground truth")
        self.show_gt.setToolTip("Show the ground-truth panel (G)")
        self.fit_button = QPushButton("Fit")
        # Push buttons hold a style minimum of ~80 px; "Fit" needs far less when the window is narrow.
        self.fit_button.setMinimumWidth(self.fit_button.fontMetrics().horizontalAdvance("Fit") + 20)
        self.mode = QComboBox()
        for key, text in self.MODES:
            self.mode.addItem(text, key)
        self.mode.setToolTip("What the masks show (E cycles): classes, right/wrong against GT, A vs B")
        self.layout_box = QComboBox()
        for key, text in self.LAYOUTS:
            self.layout_box.addItem(text, key)
        self.layout_box.setToolTip(
            "A and B side by side, in one panel with a draggable divider (W cycles), or in one panel "
            "toggling between them (V)"
        )
        self.flicker_label = QLabel("")
        self.verdict = QLabel("No verdict yet")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.PlainText)
        self.verdict.setStyleSheet("font-weight: 600; padding: 2px 4px;")
        self.verdict.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._masks: tuple[QImage | None, QImage | None, QImage | None] = (None, None, None)
        self._layout = "side"
        self._flicker_b = False
        self._editing = False
        self.readout = QLabel("")
        self.readout.setTextFormat(Qt.TextFormat.PlainText)
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.caption = QLabel("")
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        # Long file names must not widen the window (docks would be squeezed out).
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stats = QLabel("")
        self.stats.setTextFormat(Qt.TextFormat.PlainText)
        # The A-vs-B shares take the room they need first (the file name gives way), yet never widen the
        # window: an explicit minimum width overrides the label's text-wide minimum size hint.
        self.stats.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.stats.setMinimumWidth(1)
        self.legend = Legend()
        self.edit_bar = EditBar()
        self.edit_bar.setVisible(False)
        self._build()
        self.gt_panel.setVisible(False)
        self._syncing = False
        self._batch = False  # several panel styles changing at once emit styles_changed once
        for panel in self.panels:
            panel.view.view_changed.connect(lambda v=panel.view: self._sync_from(v))
            panel.view.hovered.connect(self.hovered)
            panel.style_changed.connect(self._on_style)
        self.mode.currentIndexChanged.connect(self._on_mode)
        self.opacity.valueChanged.connect(self._on_opacity)
        self.show_gt.toggled.connect(self._on_show_gt)
        self.fit_button.clicked.connect(self.fit)
        self.layout_box.currentIndexChanged.connect(
            lambda _i: self.layout_changed.emit(str(self.layout_box.currentData()))
        )
        self.a_panel.view.swipe_moved.connect(self.swipe_moved)

    @property
    def panels(self) -> tuple[ImagePanel, ImagePanel, ImagePanel]:
        return (self.gt_panel, self.a_panel, self.b_panel)

    def _build(self) -> None:
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Show"))
        controls.addWidget(self.mode)
        controls.addSpacing(12)
        controls.addWidget(self.show_gt)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Opacity"))
        controls.addWidget(self.opacity)
        controls.addWidget(self.opacity_label)
        controls.addWidget(self.fit_button)
        controls.addStretch(1)
        info = QHBoxLayout()
        # The layout choice sits with the file name, which gives way first in a narrow window.
        info.addWidget(self.layout_box)
        info.addWidget(self.flicker_label)
        info.addWidget(self.caption, 1)
        info.addWidget(self.stats)
        self.stats.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.images = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.images.setSpacing(6)
        for panel in self.panels:
            self.images.addWidget(panel, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.verdict)
        layout.addLayout(controls)
        layout.addWidget(self.edit_bar)
        layout.addLayout(info)
        layout.addLayout(self.images, 1)
        layout.addWidget(self.readout)
        layout.addWidget(self.legend)
        self._aspect = 2.0  # width / height of the current image (Cityscapes: 2)

    def set_image(self, image: QImage | None) -> None:
        if image is not None and not image.isNull():
            self._aspect = image.width() / image.height()
            self._choose_direction()
        pixmap = QPixmap.fromImage(image) if image is not None else None  # converted once, shared
        for panel in self.panels:
            panel.view.set_pixmap(pixmap)

    def _choose_direction(self) -> None:
        # Side by side or stacked, whichever shows the images larger (wide street scenes stack).
        count = sum(1 for p in self.panels if not p.isHidden()) or 1
        rect = self.images.geometry()
        width, height = max(rect.width(), 1), max(rect.height(), 1)
        side = min(width / count / self._aspect, height)
        stacked = min(width / self._aspect, height / count)
        direction = QBoxLayout.Direction.TopToBottom if stacked > side else QBoxLayout.Direction.LeftToRight
        if direction != self.images.direction():
            self.images.setDirection(direction)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._choose_direction()

    def set_verdict(self, text: str, basis: str) -> None:
        """The verdict line (which model is better, by how much, where worse) and its basis."""
        self.verdict.setText(text)
        self.verdict.setToolTip(f"Computed on {basis}")

    def set_masks(self, gt: QImage | None, a: QImage | None, b: QImage | None) -> None:
        self._masks = (gt, a, b)
        self._apply_masks()

    def set_compare_layout(self, layout: str, flicker_b: bool = False) -> None:
        """'side' (three panels), 'swipe' (B right of a divider in panel A) or 'flicker' (panel A shows A
        or B); one view, so zoom and pan stay the same whatever is shown."""
        self._layout, self._flicker_b = layout, flicker_b
        index = self.layout_box.findData(layout)
        if index >= 0 and index != self.layout_box.currentIndex():
            self.layout_box.blockSignals(True)
            self.layout_box.setCurrentIndex(index)
            self.layout_box.blockSignals(False)
        self.b_panel.setVisible(layout == "side" and not self._editing)
        self.flicker_label.setText(
            {"flicker": f"showing {'B' if flicker_b else 'A'} (V toggles)", "swipe": "drag the divider"}.get(
                layout, ""
            )
        )
        self._choose_direction()
        self._apply_masks()

    def set_editing(self, on: bool) -> None:
        """Editing: the ground truth beside model A only, so both get the room (B is a copy source in
        the edit bar, not a third panel)."""
        self._editing = on
        if on:
            self.show_gt.setChecked(True)
        self.set_compare_layout(self._layout, self._flicker_b)

    def _apply_masks(self) -> None:
        gt, a, b = self._masks
        self.gt_panel.view.set_mask(gt)
        view = self.a_panel.view
        if self._layout == "flicker":
            view.set_mask(b if self._flicker_b else a)
            view.set_swipe(None)
        else:
            view.set_mask(a)
            view.set_swipe(b if self._layout == "swipe" else None)
        self.b_panel.view.set_mask(b if self._layout == "side" else None)

    def fit(self) -> None:
        for panel in self.panels:
            panel.view.fit()

    def zoom_to(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Zoom every panel onto image pixels x0..x1, y0..y1 (x1, y1 exclusive) with a margin around them,
        so a small finding is seen in its surroundings; Fit goes back to the whole image."""
        margin = max(x1 - x0, y1 - y0) // 2 + 8
        rect = QRectF(x0 - margin, y0 - margin, x1 - x0 + 2 * margin, y1 - y0 + 2 * margin)
        view = self.a_panel.view
        view._fit = False
        view.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        view.view_changed.emit()  # the other panels follow

    def _on_mode(self, _index: int) -> None:
        self.mode_changed.emit(str(self.mode.currentData()))

    def cycle_mode(self) -> None:
        self.mode.setCurrentIndex((self.mode.currentIndex() + 1) % self.mode.count())

    def styles(self) -> tuple[str, str, str]:
        """The mask style of the GT, A and B panels."""
        gt, a, b = (panel.mask_style() for panel in self.panels)
        return gt, a, b

    def set_styles(self, styles: Sequence[str]) -> None:
        """Set the three panel styles (GT, A, B); styles_changed is emitted once if any changed."""
        before = self.styles()
        self._batch = True
        try:
            for panel, style in zip(self.panels, styles, strict=True):
                panel.set_mask_style(style)
        finally:
            self._batch = False
        if self.styles() != before:
            self.styles_changed.emit(self.styles())

    def cycle_styles(self) -> None:
        """All panels to the style after model A's: filled -> contours -> mask alone -> filled."""
        keys = [key for key, _ in STYLES]
        following = keys[(keys.index(self.a_panel.mask_style()) + 1) % len(keys)]
        self.set_styles((following,) * 3)

    def _on_style(self, _style: str) -> None:
        if not self._batch:
            self.styles_changed.emit(self.styles())

    def _on_opacity(self, value: int) -> None:
        self.opacity_label.setText(f"{value}%")
        for panel in self.panels:
            panel.view.set_mask_opacity(value / 100)  # a mask-alone panel stays opaque
        self.opacity_changed.emit(value / 100)

    def _on_show_gt(self, checked: bool) -> None:
        self.gt_panel.setVisible(checked)
        self._choose_direction()
        self.show_gt_changed.emit(checked)

    def _sync_from(self, source: ImageView) -> None:
        # Followers copy the leader's transform and scroll position; the flag stops the echo.
        if self._syncing:
            return
        self._syncing = True
        try:
            for panel in self.panels:
                view = panel.view
                if view is source:
                    continue
                view._fit = source._fit
                view.setTransform(source.transform())
                view.horizontalScrollBar().setValue(source.horizontalScrollBar().value())
                view.verticalScrollBar().setValue(source.verticalScrollBar().value())
        finally:
            self._syncing = False
