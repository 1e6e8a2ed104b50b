"""The image table: per-image mIoU of A and B and their difference, a focus class, filters and presets
for failure mining ("worst regressions of B vs A", "largest improvements", "B fails on class X")."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.views.theme import delta_colors

Index = QModelIndex | QPersistentModelIndex
MAX_THUMBNAILS = 2000  # ~30 MB of 96x48 pixmaps
THUMBNAIL_SIZE = (72, 36)
MIOU_A, MIOU_B, DELTA, CLASS_A, CLASS_B, CLASS_DELTA = range(2, 8)
PRESETS = (
    ("", "Sort…"),
    ("regressions", "Worst regressions of B vs A"),
    ("improvements", "Largest improvements of B vs A"),
    ("b_fails", "B fails on the focus class"),
    ("a_fails", "A fails on the focus class"),
    ("label_errors", "Likely label errors"),
)
LABEL_ERRORS = "label_errors"


class ScoreSource(Protocol):
    """Where a model's per-image scores live (the evaluation's live accumulator): the table shows them,
    it keeps no copy."""

    @property
    def images(self) -> Mapping[str, Any]: ...  # image key -> ImageEval (miou, iou)


MARKS_HELP = "Marks after the name: ✎ labels edited; capital letters: the initials of the review flags set"


class ImageTableModel(QAbstractTableModel):
    """Rows are images in dataset order; the scores are read from the models' live accumulators as the
    evaluation fills them (a view of them, not a copy)."""

    thumbnail_needed = Signal(int)  # a visible row has no thumbnail yet: the controller loads it lazily

    def __init__(self) -> None:
        super().__init__()
        self._thumbs: OrderedDict[int, QPixmap] = OrderedDict()
        self._requested: set[int] = set()
        self.show_thumbnails = True
        self._rows: list[tuple[str, str]] = []
        self._keys: list[str] = []
        self._marks: dict[str, str] = {}
        self._sources: list[ScoreSource | None] = [None, None]
        self.basis = ""  # what the scores were computed on (scheme, ground truth), for the tooltips
        self.class_names: tuple[str, ...] = ()
        self.focus: int | None = None

    def set_thumbnail(self, row: int, pixmap: QPixmap) -> None:
        """Store a loaded thumbnail (bounded: the least recently shown ones are dropped)."""
        self._thumbs[row] = pixmap
        self._thumbs.move_to_end(row)
        while len(self._thumbs) > MAX_THUMBNAILS:
            dropped, _ = self._thumbs.popitem(last=False)
            self._requested.discard(dropped)
        self.dataChanged.emit(self.index(row, 0), self.index(row, 0), [Qt.ItemDataRole.DecorationRole])

    def set_marks(self, marks: dict[str, str]) -> None:
        """Review marks per image key ('✎' edited labels, flag initials), shown after the name."""
        self._marks = dict(marks)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, 0))

    def key(self, row: int) -> str:
        return self._keys[row] if row < len(self._keys) else ""

    def reset(
        self, rows: Sequence[tuple[str, str]], class_names: Sequence[str] = (), keys: Sequence[str] = ()
    ) -> None:
        self.beginResetModel()
        self._keys = list(keys)
        self._marks = {}
        self._thumbs.clear()
        self._requested.clear()
        self._rows = list(rows)
        self.class_names = tuple(class_names)
        self._sources = [None, None]
        self.focus = None
        self.endResetModel()

    def set_classes(self, class_names: Sequence[str]) -> None:
        self.beginResetModel()
        self.class_names = tuple(class_names)
        self.focus = None
        self.endResetModel()

    def set_sources(self, sources: Sequence[ScoreSource | None]) -> None:
        """Read A's and B's scores from these (None: no scores); every row shows the change."""
        self._sources = [*sources, None, None][:2]
        # dataChanged, not a model reset: a reset would drop the user's current row and sort.
        if self._rows:
            self.dataChanged.emit(self.index(0, MIOU_A), self.index(len(self._rows) - 1, CLASS_DELTA))

    def scores_changed(self, row: int) -> None:
        """A row's scores arrived or were replaced in the sources."""
        if 0 <= row < len(self._rows):
            self.dataChanged.emit(self.index(row, MIOU_A), self.index(row, CLASS_DELTA))

    def score(self, row: int, model: int) -> Any:
        """The ImageEval of `model` (0 = A, 1 = B) on `row`, or None."""
        source = self._sources[model]
        return None if source is None else source.images.get(self.key(row))

    def set_focus(self, class_index: int | None) -> None:
        self.focus = class_index
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, CLASS_A, CLASS_DELTA)
        if self._rows:
            self.dataChanged.emit(self.index(0, CLASS_A), self.index(len(self._rows) - 1, CLASS_DELTA))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else CLASS_DELTA + 1

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> object:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.ToolTipRole and section >= CLASS_A and self.focus is not None:
            return f"IoU of {self.class_names[self.focus]} on each image (A, B and B−A)"
        if role == Qt.ItemDataRole.ToolTipRole and section in (MIOU_A, MIOU_B, DELTA):
            what = ("model A", "model B", "B minus A (points)")[section - MIOU_A]
            return f"mIoU of each image: {what}" + (f"\nComputed on {self.basis}" if self.basis else "")
        if role == Qt.ItemDataRole.UserRole and section in (MIOU_A, MIOU_B, DELTA):
            return ("mIoU A", "mIoU B", "mIoU B−A")[section - MIOU_A]  # what the sort line names
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        short = self.class_names[self.focus] if self.focus is not None else "class"
        # Short titles keep the scores in a narrow dock beside names with their city; the tooltip and the
        # sort line say "mIoU".
        return ("Image", "City", "A", "B", "B−A", f"{short} A", f"{short} B", f"{short} B−A")[section]

    def value(self, row: int, column: int) -> float:
        """The number shown in a score column (NaN when unknown)."""
        evals = (self.score(row, 0), self.score(row, 1))
        if column in (MIOU_A, MIOU_B, DELTA):
            a, b = (math.nan if e is None else e.miou for e in evals)
        elif self.focus is not None and column in (CLASS_A, CLASS_B, CLASS_DELTA):
            a, b = (
                math.nan
                if e is None or e.iou is None or self.focus >= len(e.iou)
                else float(e.iou[self.focus])
                for e in evals
            )
        else:
            return math.nan
        return float({MIOU_A: a, MIOU_B: b, CLASS_A: a, CLASS_B: b}.get(column, b - a))

    def data(self, index: Index, role: int = 0) -> object:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        if role == Qt.ItemDataRole.DecorationRole and column == 0 and self.show_thumbnails:
            pixmap = self._thumbs.get(row)
            if pixmap is None and row not in self._requested:
                self._requested.add(row)  # asked once; the view only asks for rows it paints
                self.thumbnail_needed.emit(row)
            return pixmap
        if role == Qt.ItemDataRole.ToolTipRole and column < 2:
            name, city = self._rows[row]
            text = f"{city}: {name}" if city else name
            return f"{text}\n{MARKS_HELP}" if self._marks.get(self.key(row)) else text
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0 and (mark := self._marks.get(self.key(row))):
                return f"{self._rows[row][0]}  {mark}"
            if column < 2:
                return self._rows[row][column]
            value = self.value(row, column)
            if math.isnan(value):
                return "–"
            return f"{value * 100:+.1f}" if column in (DELTA, CLASS_DELTA) else f"{value * 100:.1f}"
        if role == Qt.ItemDataRole.UserRole:  # sort key: unknown values sort last in ascending order
            if column < 2:
                return self._rows[row][column]
            value = self.value(row, column)
            return 1e9 if math.isnan(value) else value
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column in (DELTA, CLASS_DELTA):
            value = self.value(row, column)
            if not math.isnan(value) and abs(value) >= 0.005:
                better, worse = delta_colors()
                return QBrush(better if value > 0 else worse)
        return None


class ImageFilter(QSortFilterProxyModel):
    """Sorts by the numeric sort key; keeps the rows of one city (or all)."""

    def __init__(self) -> None:
        super().__init__()
        self.city = ""
        self.text = ""  # filename search: rows whose name contains it (any case)
        self.keys: frozenset[str] | None = None  # review filter: only these image keys
        # "Likely label errors" preset: only these images, sorted on the name column by this area.
        self.ranking: Mapping[str, int] | None = None
        self.setSortRole(Qt.ItemDataRole.UserRole)

    def set_keys(self, keys: frozenset[str] | None) -> None:
        self._change(lambda: setattr(self, "keys", keys))

    def _change(self, apply: Callable[[], None]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10: invalidate*Filter() are deprecated
            self.beginFilterChange()
            apply()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            apply()
            self.invalidateRowsFilter()

    def set_ranking(self, ranking: Mapping[str, int] | None) -> None:
        self._change(lambda: setattr(self, "ranking", ranking))

    def lessThan(self, left: Index, right: Index) -> bool:
        model = self.sourceModel()
        if self.ranking is not None and left.column() == 0 and isinstance(model, ImageTableModel):
            # Largest label-error area first in ascending order: the preset's question.
            a, b = (self.ranking.get(model.key(i.row()), 0) for i in (left, right))
            if a != b:
                return a > b
        return super().lessThan(left, right)

    def set_city(self, city: str) -> None:
        self._change(lambda: setattr(self, "city", city))

    def set_text(self, text: str) -> None:
        self._change(lambda: setattr(self, "text", text.strip().lower()))

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if (
            self.ranking is not None
            and isinstance(model, ImageTableModel)
            and model.key(source_row) not in self.ranking
        ):
            return False
        if (
            self.keys is not None
            and isinstance(model, ImageTableModel)
            and model.key(source_row) not in self.keys
        ):
            return False
        if self.text and isinstance(model, ImageTableModel):
            name, city = model._rows[source_row]
            if self.text not in f"{city} {name} {model.key(source_row)}".lower():
                return False
        return not self.city or bool(model.index(source_row, 1, source_parent).data() == self.city)


class ImageList(QWidget):
    """A sortable, filterable table; emits the dataset row of the image the user picks."""

    image_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ImageTableModel()
        self.proxy = ImageFilter()
        self.proxy.setSourceModel(self.model)
        self.city = QComboBox()
        self.city.setToolTip("Show the images of one city")
        self.focus = QComboBox()
        self.focus.setToolTip("Add per-image IoU columns for one class")
        self.preset = QComboBox()
        for key, text in PRESETS:
            self.preset.addItem(text, key)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search file names…")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Show the images whose name (or city) contains this text")
        self.sort_reason = QLabel("")
        self._label_errors: Mapping[str, int] = {}  # image key -> pixels in likely label errors
        self.sort_reason.setWordWrap(True)
        self.review_filter = QComboBox()
        self.review_filter.setToolTip("Show only edited or flagged images")
        self.set_review_filters(())
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIZE[1] + 4)
        self.table.setIconSize(QSize(*THUMBNAIL_SIZE))
        header = self.table.horizontalHeader()
        # Interactive, sized once per dataset: ResizeToContents would call data() for every row on each
        # score update (measured: 672,000 calls in 13 s on 1,000 rows, stalling the window).
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        self.table.setMinimumWidth(220)  # scrolls sideways below that
        # Always there, so the columns fitted to the width never end under a scroll bar that appears later.
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self._name_width = 0  # the image column's fitted width; it grows to fill a wider dock
        # Names elided on the left: the frame numbers at the end tell frames apart (the city has a filter).
        self.table.setTextElideMode(Qt.TextElideMode.ElideLeft)
        self.table.viewport().installEventFilter(self)
        filters = QHBoxLayout()
        filters.addWidget(self.city, 1)
        filters.addWidget(self.focus, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(filters)
        mining = QHBoxLayout()
        mining.addWidget(self.preset, 1)
        mining.addWidget(self.review_filter, 1)
        layout.addLayout(mining)
        layout.addWidget(self.search)
        layout.addWidget(self.sort_reason)
        layout.addWidget(self.table)
        self._show_class_columns(False)
        # The city has its own filter above and is in each row's tooltip: its column is optional.
        self.table.setColumnHidden(1, True)
        self.table.horizontalHeader().setSectionsMovable(True)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.city.currentIndexChanged.connect(lambda _i: self.proxy.set_city(str(self.city.currentData())))
        self.focus.currentIndexChanged.connect(self._on_focus)
        self.preset.activated.connect(lambda _i: self.apply_preset(str(self.preset.currentData())))
        self.search.textChanged.connect(self.proxy.set_text)
        self.table.horizontalHeader().sortIndicatorChanged.connect(lambda *_: self._say_sort())

    def set_review_filters(self, flags: Sequence[str]) -> None:
        """'All images', 'Edited labels', 'Any flag' and one entry per flag."""
        self.review_filter.blockSignals(True)
        self.review_filter.clear()
        self.review_filter.addItem("All images", "")
        self.review_filter.addItem("Edited labels", "@edited")
        self.review_filter.addItem("Any flag", "@flagged")
        for flag in flags:
            self.review_filter.addItem(f"Flag: {flag}", flag)
        self.review_filter.blockSignals(False)

    def set_dataset(
        self,
        rows: Sequence[tuple[str, str]],
        cities: Sequence[str],
        classes: Sequence[str],
        keys: Sequence[str] = (),
    ) -> None:
        """New rows (image, city), the cities to filter by, the evaluated class names and the image keys."""
        self.model.reset(rows, classes, keys)
        self.city.blockSignals(True)
        self.city.clear()
        self.city.addItem("All cities", "")
        for city in cities:
            self.city.addItem(city, city)
        self.city.blockSignals(False)
        self.proxy.set_city("")
        self.set_classes(classes)
        self.fit_columns()

    def fit_columns(self) -> None:
        """Column widths from the header texts and a sample of rows (not all rows: that scales badly)."""
        metrics = self.table.fontMetrics()
        sample = [self.model._rows[i][0] for i in range(min(len(self.model._rows), 50))]
        name_width = max([metrics.horizontalAdvance(t) for t in sample] + [60])
        self._name_width = THUMBNAIL_SIZE[0] + name_width + 24
        self.table.setColumnWidth(1, 90)
        for column in range(MIOU_A, CLASS_DELTA + 1):
            self.table.setColumnWidth(column, metrics.horizontalAdvance("+00.0") + 18)
        self._fit_class_columns()
        self._fill_width()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self._fill_width()
        return super().eventFilter(watched, event)

    def _fill_width(self) -> None:
        """The image column takes the width the other columns leave (never less than its fitted width),
        so a wide dock shows whole file names instead of an empty strip on the right."""
        header = self.table.horizontalHeader()
        others = sum(
            header.sectionSize(column)
            for column in range(header.count())
            if column != 0 and not header.isSectionHidden(column)
        )
        room = self.table.viewport().width() - others
        # In a narrow dock the thumbnails go first (the name is what tells frames apart), then the name
        # gives way (elided on the left) down to a readable minimum, so the scores stay on screen.
        thumbnails = room >= self._name_width
        if thumbnails != self.model.show_thumbnails:
            self.model.show_thumbnails = thumbnails
            self.table.setIconSize(QSize(*THUMBNAIL_SIZE) if thumbnails else QSize(0, 0))
            if self.model.rowCount():
                last = self.model.index(self.model.rowCount() - 1, 0)
                self.model.dataChanged.emit(self.model.index(0, 0), last)
        fitted = self._name_width - (0 if thumbnails else THUMBNAIL_SIZE[0])
        least = min(fitted, self.table.fontMetrics().horizontalAdvance("M") * 9)
        self.table.setColumnWidth(0, max(least, room))

    def set_classes(self, classes: Sequence[str]) -> None:
        self.model.set_classes(classes)
        self.focus.blockSignals(True)
        self.focus.clear()
        self.focus.addItem("Focus class…", -1)
        for i, name in enumerate(classes):
            self.focus.addItem(name, i)
        self.focus.blockSignals(False)
        self._show_class_columns(False)

    def _on_focus(self, _index: int) -> None:
        value = int(self.focus.currentData())
        self.model.set_focus(None if value < 0 else value)
        self._fit_class_columns()
        self._show_class_columns(value >= 0)

    def _fit_class_columns(self) -> None:
        """The focus-class columns as wide as their titles ("traffic light B−A"), never clipped."""
        metrics = self.table.horizontalHeader().fontMetrics()
        for column in (CLASS_A, CLASS_B, CLASS_DELTA):
            title = str(
                self.model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.UserRole)
                or self.model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole)
            )
            self.table.setColumnWidth(column, metrics.horizontalAdvance(title) + 24)

    def _show_class_columns(self, visible: bool) -> None:
        for column in (CLASS_A, CLASS_B, CLASS_DELTA):
            self.table.setColumnHidden(column, not visible)
        self._fill_width()

    def set_label_errors(self, areas: Mapping[str, int]) -> None:
        """The pixels in likely label errors per image key (from the last evaluation; {} when none or
        gone); the "Likely label errors" preset, when chosen, follows."""
        self._label_errors = dict(areas)
        if self.proxy.ranking is not None:
            self.apply_preset(LABEL_ERRORS)

    def apply_preset(self, key: str) -> None:
        """Sort for a failure-mining question; the class presets use the focus class; "Likely label
        errors" keeps only the images with some, largest area first."""
        self.proxy.set_ranking(dict(self._label_errors) if key == LABEL_ERRORS else None)
        if key == LABEL_ERRORS:
            self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
            self.proxy.sort(0, Qt.SortOrder.AscendingOrder)  # the same column: sorted again all the same
            self._say_sort()
        elif key == "regressions":
            self.table.sortByColumn(DELTA, Qt.SortOrder.AscendingOrder)
        elif key == "improvements":
            self.table.sortByColumn(DELTA, Qt.SortOrder.DescendingOrder)
        elif key in ("b_fails", "a_fails"):
            if self.model.focus is None:
                self.focus.setCurrentIndex(1)  # the first class, so the preset does something visible
            self.table.sortByColumn(CLASS_B if key == "b_fails" else CLASS_A, Qt.SortOrder.AscendingOrder)
        if key:
            self.step_to_top()

    def _say_sort(self) -> None:
        """Say what the rows are sorted by, and make sure that column is visible."""
        header = self.table.horizontalHeader()
        column = header.sortIndicatorSection()
        if column < 0 or column >= self.model.columnCount():
            self.sort_reason.setText("")
            return
        if self.table.isColumnHidden(column) and column >= CLASS_A:
            self._show_class_columns(True)
        if self.proxy.rowCount():  # scrolled sideways to it: the sort key is on screen
            self.table.scrollTo(self.proxy.index(0, column), QAbstractItemView.ScrollHint.EnsureVisible)
        order = (
            "lowest first" if header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder else "highest first"
        )
        title = str(
            self.model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.UserRole)
            or self.model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole)
        )
        if self.proxy.ranking is not None:
            count = len(self.proxy.ranking)
            what = "pixels where A and B agree against the label"
            by = f"by {what}, largest first" if column == 0 and order == "lowest first" else f"by {title}"
            self.sort_reason.setText(
                f"Likely label errors: {count} images, sorted {by}"
                if count
                else "Likely label errors: none found (evaluate two models; the list is in Findings)"
            )
            return
        self.sort_reason.setText(f"Sorted by {title}, {order} (images without a score last)")

    def step_to_top(self) -> None:
        if self.proxy.rowCount():
            self.table.setCurrentIndex(self.proxy.index(0, 0))
            self.table.scrollToTop()

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.image_selected.emit(self.proxy.mapToSource(current).row())

    def select_row(self, row: int) -> None:
        """Select a dataset row (whatever the sort order)."""
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if index.isValid():
            self.table.setCurrentIndex(index)
            self.table.scrollTo(index)

    def current_row(self) -> int:
        index = self.table.currentIndex()
        return self.proxy.mapToSource(index).row() if index.isValid() else -1

    def visible_rows(self) -> list[int]:
        """Dataset rows in the displayed order (after filter and sort)."""
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def step(self, delta: int) -> None:
        """Move the selection by `delta` rows in the displayed order."""
        count = self.proxy.rowCount()
        if count == 0:
            return
        current = self.table.currentIndex()
        row = 0 if not current.isValid() else min(max(current.row() + delta, 0), count - 1)
        self.table.setCurrentIndex(self.proxy.index(row, 0))
