"""What the masks show (classes, errors, A vs B: one choice), how each panel draws them (per panel), the
class colours, and how A and B are laid out (side by side, swipe, flicker), all through the ViewState."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.controllers.view_state import LAYOUTS
from app.core.display.render import DISAGREEMENT_COLORS, DISAGREEMENT_NAMES, ERROR_COLORS, ERROR_NAMES
from app.evaluation.frames import HIGHLIGHT_NAME, HIGHLIGHT_RGB, palette_colors, panel_styles

if TYPE_CHECKING:
    from app.controllers.workbench import Workbench


class DisplayController(QObject):
    """Turns the view's widgets' intents into ViewState changes, and state changes into the legend and
    the compare layout. The frame itself is re-rendered by the main controller when a field it depends
    on changes (filled <-> mask alone is a view change, no new pixels)."""

    def __init__(self, main: Workbench) -> None:
        super().__init__(main)  # type: ignore[arg-type]
        self.main = main
        self.state = main.state
        w = main.window
        w.toggle_masks_action.triggered.connect(
            lambda: self.state.update(masks_visible=not self.state.view.masks_visible)
        )
        w.cycle_mode_action.triggered.connect(w.compare.cycle_mode)
        w.cycle_style_action.triggered.connect(w.compare.cycle_styles)
        w.layout_action.triggered.connect(self._cycle_layout)
        w.flicker_action.triggered.connect(self._flicker)
        w.compare.mode_changed.connect(self.set_display_mode)
        w.compare.styles_changed.connect(self.set_panel_styles)
        w.compare.layout_changed.connect(lambda layout: self.state.update(layout=layout))
        w.compare.legend.hidden_changed.connect(self._on_hidden)
        for key, action in w.palette_actions.items():
            action.triggered.connect(lambda _checked=False, k=key: self.state.update(palette=k))
        self.state.changed.connect(self._on_state)

    def set_display_mode(self, mode: str) -> None:
        """'classes', 'errors' (right/wrong against GT) or 'disagreement' (A vs B against GT)."""
        self.state.update(display_mode=mode, highlight=None, hidden=frozenset())

    def set_panel_styles(self, styles: Sequence[str]) -> None:
        """GT, A and B styles ("filled", "contours", "mask"); the view already applied mask alone."""
        self.state.update(panel_styles=panel_styles("classes", styles))

    def _on_hidden(self, hidden: frozenset[int]) -> None:
        if self.state.view.display_mode == "classes":
            self.state.update(hidden=hidden)

    def _cycle_layout(self) -> None:
        layout = self.state.view.layout
        self.state.update(layout=LAYOUTS[(LAYOUTS.index(layout) + 1) % len(LAYOUTS)])

    def _flicker(self) -> None:
        if self.state.view.layout != "flicker":
            self.state.update(layout="flicker", flicker_b=True)
        else:
            self.state.update(flicker_b=not self.state.view.flicker_b)

    def _on_state(self, names: frozenset[str]) -> None:
        view, compare = self.state.view, self.main.window.compare
        if names & {"display_mode", "scheme", "palette", "highlight"}:
            self.refresh_legend()
        if "palette" in names:
            self.main.window.palette_actions[view.palette].setChecked(True)
        if names & {"layout", "flicker_b"}:
            compare.set_compare_layout(view.layout, view.flicker_b)
        if "masks_visible" in names:
            for panel in compare.panels:
                panel.view.set_masks_visible(view.masks_visible)

    def refresh_legend(self) -> None:
        """The legend of what the masks show now: every colour on screen has an entry (the scheme's
        classes, tickable to hide them, or the keys of the error maps, and the drill-down highlight)."""
        view = self.state.view
        legend = self.main.window.compare.legend
        extra_names: list[str] = []
        extra_colors: list[tuple[int, int, int]] = []
        if view.highlight is not None:
            extra_names, extra_colors = [HIGHLIGHT_NAME], [HIGHLIGHT_RGB]
        if view.display_mode == "errors":
            legend.set_classes(
                [*ERROR_NAMES[1:], *extra_names], [*ERROR_COLORS[1:], *extra_colors], checkable=False
            )
        elif view.display_mode == "disagreement":
            names = [f"A {n}" for n in ERROR_NAMES[1:]] + [f"B: {n}" for n in DISAGREEMENT_NAMES[1:]]
            colors = [*ERROR_COLORS[1:], *DISAGREEMENT_COLORS[1:]]
            legend.set_classes([*names, *extra_names], [*colors, *extra_colors], checkable=False)
        else:
            legend.set_classes(view.scheme.names, palette_colors(view.scheme, view.palette))
            if extra_names:
                legend.add_key(extra_names[0], extra_colors[0])
