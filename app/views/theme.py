"""Light and dark themes, and colours that stay readable in both (deltas, swatches, chart axes)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QStyleFactory

# (key, menu text); "system" follows the platform's style and palette.
THEMES = (("system", "System"), ("light", "Light"), ("dark", "Dark"))

# The platform's style name (remembered before the first change) and the theme applied last.
_state: dict[str, str] = {}


def apply_theme(app: QApplication, theme: str) -> None:
    """System: the platform's style and palette (and its later changes). Light / Dark: Fusion with a
    standard light or dark palette, the same on every platform."""
    _state.setdefault("system style", app.style().name())
    if _state.get("applied", "system") == theme:
        return  # restyling repolishes every widget: only when something changes
    _state["applied"] = theme
    if theme in ("light", "dark"):
        app.setStyle("Fusion")
        app.setPalette(dark_palette() if theme == "dark" else light_palette())
    else:
        app.setStyle(_state["system style"])
        app.setPalette(QPalette())  # an empty palette resets to the platform's, which then follows it


def light_palette() -> QPalette:
    style = QStyleFactory.create("Fusion")
    return style.standardPalette() if style is not None else QPalette()


def dark_palette() -> QPalette:
    """The usual dark Fusion palette (grey surfaces, white text, blue selection, grey disabled text)."""
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    window, base, text = QColor(53, 53, 53), QColor(35, 35, 35), QColor(230, 230, 230)
    palette = QPalette(window)  # derives Light/Mid/Dark/Shadow for Fusion's bevels from the window colour
    for r, color in (
        (role.Window, window),
        (role.WindowText, text),
        (role.Base, base),
        (role.AlternateBase, QColor(45, 45, 45)),
        (role.ToolTipBase, QColor(25, 25, 25)),
        (role.ToolTipText, text),
        (role.PlaceholderText, QColor(140, 140, 140)),
        (role.Text, text),
        (role.Button, window),
        (role.ButtonText, text),
        (role.BrightText, QColor(255, 90, 90)),
        (role.Link, QColor(90, 160, 240)),
        (role.LinkVisited, QColor(170, 130, 240)),
        (role.Highlight, QColor(42, 130, 218)),
        (role.HighlightedText, QColor(255, 255, 255)),
    ):
        palette.setColor(r, color)
    grey = QColor(127, 127, 127)
    for r in (role.WindowText, role.Text, role.ButtonText, role.HighlightedText):
        palette.setColor(group.Disabled, r, grey)
    palette.setColor(group.Disabled, role.Highlight, QColor(80, 80, 80))
    return palette


def current_palette() -> QPalette:
    return QGuiApplication.palette()


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


def delta_colors(palette: QPalette | None = None) -> tuple[QColor, QColor]:
    """(better, worse) text colours with enough contrast on the palette's base (lighter on dark): blue and
    orange, as in the error maps (red/green is what colour-blind users cannot tell apart)."""
    if is_dark(palette or current_palette()):
        return QColor(110, 185, 255), QColor(255, 175, 70)
    return QColor(0, 90, 170), QColor(175, 90, 0)


def swatch_icon(color: tuple[int, int, int], size: int = 12) -> QIcon:
    """A colour square with a mid-grey frame, visible on light and dark backgrounds (black, white classes)."""
    swatch = QPixmap(size, size)
    swatch.fill(QColor(128, 128, 128))
    painter = QPainter(swatch)
    painter.fillRect(1, 1, size - 2, size - 2, QColor(*color))
    painter.end()
    return QIcon(swatch)


def style_plot(plot: pg.PlotWidget, palette: QPalette | None = None) -> None:
    """Chart background and axes (lines, tick labels, titles) in the palette's base and text colours."""
    palette = palette or current_palette()
    text = palette.color(QPalette.ColorRole.Text)
    plot.setBackground(palette.color(QPalette.ColorRole.Base))
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(text))
        axis.setTextPen(pg.mkPen(text))
