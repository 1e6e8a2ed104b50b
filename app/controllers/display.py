"""What the masks show (classes, errors, A vs B: one choice) and how each panel draws them (per panel)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.core.display.render import DISAGREEMENT_COLORS, DISAGREEMENT_NAMES, ERROR_COLORS, ERROR_NAMES
from app.evaluation.frames import layer_styles, panel_styles

if TYPE_CHECKING:
    from app.controllers.main_controller import MainController


class DisplayController(QObject):
    """Connects the content choice (E), the panel styles (S, the title-row boxes), the legend's hidden
    classes and the masks toggle (Space) to the main controller's display state, re-rendering only when
    the layers change (filled <-> mask alone is a view change, no new pixels)."""

    def __init__(self, main: MainController) -> None:
        super().__init__(main)
        self.main = main
        w = main.window
        w.toggle_masks_action.triggered.connect(self._toggle_masks)
        w.cycle_mode_action.triggered.connect(w.compare.cycle_mode)
        w.cycle_style_action.triggered.connect(w.compare.cycle_styles)
        w.compare.mode_changed.connect(self.set_display_mode)
        w.compare.styles_changed.connect(self.set_panel_styles)
        w.compare.legend.hidden_changed.connect(self._on_hidden)
        self._masks_visible = True

    def set_display_mode(self, mode: str) -> None:
        """'classes', 'errors' (right/wrong against GT) or 'disagreement' (A vs B against GT)."""
        main = self.main
        main.display_mode = mode
        main.highlight = None
        main.hidden = frozenset()
        self.refresh_legend()
        main.show_image(main.current_row)

    def refresh_legend(self) -> None:
        """The legend of what the masks show now: the scheme's classes (tickable to hide them), or the
        colour keys of the error maps (A vs B: panel A keeps its right/wrong map, panel B the four
        cases)."""
        main = self.main
        legend = main.window.compare.legend
        if main.display_mode == "errors":
            legend.set_classes(ERROR_NAMES[1:], ERROR_COLORS[1:], checkable=False)
        elif main.display_mode == "disagreement":
            names = [f"A {n}" for n in ERROR_NAMES[1:]] + [f"B: {n}" for n in DISAGREEMENT_NAMES[1:]]
            legend.set_classes(names, [*ERROR_COLORS[1:], *DISAGREEMENT_COLORS[1:]], checkable=False)
        else:
            legend.set_classes(main.scheme.names, main.scheme.colors)

    def set_panel_styles(self, styles: Sequence[str]) -> None:
        """GT, A and B styles ("filled", "contours", "mask"); the view already applied mask alone."""
        main = self.main
        before = layer_styles(main.panel_styles)
        main.panel_styles = panel_styles("classes", styles)
        if layer_styles(main.panel_styles) != before:
            main.show_image(main.current_row)

    def _on_hidden(self, hidden: frozenset[int]) -> None:
        if self.main.display_mode == "classes":
            self.main.hidden = hidden
            self.main.show_image(self.main.current_row)

    def _toggle_masks(self) -> None:
        self._masks_visible = not self._masks_visible
        for panel in self.main.window.compare.panels:
            panel.view.set_masks_visible(self._masks_visible)
