"""What the window shows, held once, with a change signal (napari's EventedModel idea).

The controllers read the view from here and change it here; nobody reads it back from widgets. A change
emits `changed` with the names of the fields that changed, so each listener re-does only its part (the
frame, the legend, the evaluation). `FrameRequest` is the frozen set of arguments of one rendered frame
and also its cache key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.domain.labels import EvalScheme, eval_scheme_by_key
from app.evaluation.frames import FILLED, Highlight, PanelStyles

LAYOUTS = ("side", "swipe", "flicker")
"""How A and B are shown: side by side, one panel with a draggable divider, or one panel toggling A/B."""


@dataclass(frozen=True)
class View:
    """The view choices (a snapshot: replaced, never changed in place)."""

    scheme: EvalScheme = dataclasses.field(default_factory=lambda: eval_scheme_by_key("trainids"))
    display_mode: str = "classes"  # "classes", "errors" or "disagreement"
    panel_styles: PanelStyles = FILLED  # GT, A, B: "filled", "contours" or "mask"
    highlight: Highlight | None = None  # confusion drill-down: pixels to outline in one panel
    hidden: frozenset[int] = frozenset()  # classes unticked in the legend
    show_gt: bool = False
    edited_gt: bool = True  # evaluate on the project's edited labels
    palette: str = "cityscapes"  # the class colours (app.evaluation.frames.PALETTES)
    layout: str = "side"  # LAYOUTS
    flicker_b: bool = False  # flicker layout: B shown (else A)
    masks_visible: bool = True
    opacity: float = 0.5  # of the masks (the slider's value; a view change, no new pixels)
    editing: bool = False
    # Per-image statistics in the evaluation (Findings dock); None: on for sets up to STATISTICS_AUTO_LIMIT.
    statistics: bool | None = None


class ViewState(QObject):
    """Holds the current View and says what changed."""

    changed = Signal(object)  # frozenset of the View field names that changed

    def __init__(self, view: View | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._view = view or View()

    @property
    def view(self) -> View:
        return self._view

    def update(self, **changes: Any) -> frozenset[str]:
        """Change fields; emits `changed` once with the names whose values differ (none: no signal)."""
        unknown = set(changes) - _FIELDS
        if unknown:
            raise TypeError(f"unknown view fields: {sorted(unknown)}")
        names = frozenset(k for k, v in changes.items() if getattr(self._view, k) != v)
        if names:
            self._view = dataclasses.replace(self._view, **{k: changes[k] for k in names})
            self.changed.emit(names)
        return names


_FIELDS = frozenset(f.name for f in dataclasses.fields(View))

FRAME_FIELDS = frozenset(
    {"scheme", "display_mode", "highlight", "hidden", "show_gt", "panel_styles", "palette"}
)
"""View fields a rendered frame depends on (the others change only how it is shown)."""


@dataclass(frozen=True)
class FrameRequest:
    """Everything one rendered frame depends on; hashable, so it is also the frame's cache key."""

    row: int
    digests: tuple[str, ...]
    slots: tuple[int, ...]
    scheme_key: str
    mode: str
    highlight: Highlight | None
    hidden: frozenset[int]
    with_gt: bool
    styles: PanelStyles
    palette: str
    labels_version: int = 0  # bumped when the image's labels were edited

    @staticmethod
    def of(
        view: View,
        row: int,
        digests: Sequence[str],
        slots: Sequence[int],
        styles: PanelStyles,
        labels_version: int = 0,
    ) -> FrameRequest:
        return FrameRequest(
            row,
            tuple(digests),
            tuple(slots),
            view.scheme.key,
            view.display_mode,
            view.highlight,
            view.hidden,
            view.show_gt,
            styles,
            view.palette,
            labels_version,
        )
