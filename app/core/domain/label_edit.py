"""Lossless, in-place editing of a ground-truth label map with a bounded, region-only undo history.

`LabelEditor` wraps an HxW uint8 label map (Cityscapes labelIds or any other scheme) and changes it with
brush dabs and strokes, flood fill, polygon fill and "copy a model's pixels into a region". Every value
written is an exact class id: nothing is resampled, blended or antialiased, so editing is lossless.

Cost model (napari paid 1.5 s per stroke by scanning the whole map on every dab):

* A dab or stroke segment touches only its bounding box; a flood fill walks the filled region row-span by
  row-span (a scanline fill) and never looks at pixels outside it and its border.
* An undo step stores only what changed: per operation a tight bounding box, the changed-pixel mask packed
  to bits, and the old values of the changed pixels (one value when they are all equal, as after a fill).
  A stroke of N dabs is one step made of N such patches, so its size follows the painted area, not the map.
* History is bounded both by count (`max_undo` steps) and by bytes (`max_undo_bytes`); the oldest steps go
  first. The most recent step is always kept, even when it alone exceeds the byte budget, so the action the
  user just did can always be undone.

Coordinates are (x, y) = (column, row) pixel indices; floats are floored, so a view may pass scene
coordinates directly. Every operation returns the `Rect` of pixels it actually changed (empty when nothing
changed), for repainting only that part of the view.

Thread safety: all mutations and `snapshot()` hold one lock, so an autosave thread may snapshot while the
GUI thread edits. Reading `labels` directly is only safe from the editing thread.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from app.core.domain.raster import (
    Point,
    capsule_mask,
    check_value,
    compact,
    flood,
    pieces,
    pixel,
    preserve_lut,
)

DEFAULT_MAX_UNDO = 50
DEFAULT_MAX_UNDO_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Rect:
    """A pixel rectangle: columns x..x+w-1, rows y..y+h-1. Empty when w or h is 0."""

    x: int = 0
    y: int = 0
    w: int = 0
    h: int = 0

    @property
    def is_empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    def union(self, other: Rect) -> Rect:
        """The smallest rectangle holding both (an empty one contributes nothing)."""
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.x + self.w, other.x + other.w), max(self.y + self.h, other.y + other.h)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) slices for indexing an HxW array."""
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


EMPTY = Rect()


class _Patch:
    """The changed pixels of one operation: a box, its packed mask and the values *not* on the map.

    `swap` exchanges the stored values with the map's, so the same patch undoes and then redoes.
    """

    __slots__ = ("h", "packed", "values", "w", "x", "y")

    def __init__(self, y: int, x: int, mask: np.ndarray, values: np.ndarray) -> None:
        self.y, self.x = y, x
        self.h, self.w = int(mask.shape[0]), int(mask.shape[1])
        self.packed = np.packbits(mask, axis=None)
        self.values = compact(values)

    @property
    def rect(self) -> Rect:
        return Rect(self.x, self.y, self.w, self.h)

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes + self.values.nbytes) + 64  # + object overhead, roughly

    def swap(self, labels: np.ndarray) -> None:
        mask = np.unpackbits(self.packed, count=self.h * self.w).reshape(self.h, self.w).view(bool)
        region = labels[self.y : self.y + self.h, self.x : self.x + self.w]
        current = region[mask]
        region[mask] = self.values  # a 1-element array broadcasts (uniform old values)
        self.values = compact(current)


class _Step:
    """One undoable user action: the patches of one operation, or of every dab of one stroke."""

    __slots__ = ("nbytes", "patches", "rect")

    def __init__(self, patches: list[_Patch]) -> None:
        self.patches = patches
        self.nbytes = sum(p.nbytes for p in patches)
        rect = EMPTY
        for patch in patches:
            rect = rect.union(patch.rect)
        self.rect = rect


class LabelEditor:
    """Edits `labels` (HxW uint8, writable) in place; see the module docstring for the cost model."""

    def __init__(
        self,
        labels: np.ndarray,
        max_undo: int = DEFAULT_MAX_UNDO,
        max_undo_bytes: int = DEFAULT_MAX_UNDO_BYTES,
    ) -> None:
        if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype != np.uint8:
            raise ValueError(f"labels must be an HxW uint8 array, got {getattr(labels, 'dtype', labels)}")
        if not labels.flags.writeable:
            raise ValueError("labels are read-only (e.g. straight from read_label): pass labels.copy()")
        if max_undo < 1 or max_undo_bytes < 1:
            raise ValueError("max_undo and max_undo_bytes must be positive")
        self._labels = labels
        self.max_undo = max_undo
        self.max_undo_bytes = max_undo_bytes
        self._undo: deque[_Step] = deque()
        self._redo: list[_Step] = []
        self._history_bytes = 0
        self._group: list[_Patch] | None = None
        self._revision = 0
        self._saved_revision = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------ state

    @property
    def labels(self) -> np.ndarray:
        """The live label map (the array given to the constructor)."""
        return self._labels

    @property
    def shape(self) -> tuple[int, int]:
        return int(self._labels.shape[0]), int(self._labels.shape[1])

    @property
    def revision(self) -> int:
        """Increases by one with every change of the map (operation, undo or redo)."""
        return self._revision

    def changed_since(self, revision: int) -> bool:
        """Whether the map changed after `revision` was read."""
        return self._revision != revision

    @property
    def dirty(self) -> bool:
        """Changed since the last `mark_saved` (conservative: undoing back to the saved map stays dirty)."""
        return self._revision != self._saved_revision

    @property
    def saved_revision(self) -> int:
        """The revision last passed to `mark_saved` (0 at start: the map as given counts as saved)."""
        return self._saved_revision

    def mark_saved(self, revision: int | None = None) -> None:
        """Record that the map as of `revision` (default: now) is saved."""
        with self._lock:
            self._saved_revision = self._revision if revision is None else revision

    def snapshot(self) -> tuple[int, np.ndarray]:
        """(revision, copy of the map), consistent even while another thread edits."""
        with self._lock:
            return self._revision, self._labels.copy()

    def pick(self, xy: Point) -> int:
        """The class value at pixel (x, y)."""
        x, y = pixel(xy)
        h, w = self.shape
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"pixel ({x}, {y}) is outside the {w}x{h} map")
        return int(self._labels[y, x])

    # ---------------------------------------------------------------------------------------- history

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) or bool(self._group)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and self._group is None

    @property
    def undo_depth(self) -> int:
        return len(self._undo)

    @property
    def history_nbytes(self) -> int:
        """Bytes held by the undo and redo steps (the budget `max_undo_bytes` applies to this)."""
        return self._history_bytes

    def begin_stroke(self) -> None:
        """Start grouping operations (e.g. press..release) into one undo step; ends an open group first."""
        with self._lock:
            self.end_stroke()
            self._group = []

    def end_stroke(self) -> Rect:
        """Close the group opened by `begin_stroke`; returns everything it changed."""
        with self._lock:
            group, self._group = self._group, None
            if not group:
                return EMPTY
            step = _Step(group)
            self._push(step)
            return step.rect

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """`with editor.grouped(): ...` makes the operations inside one undo step."""
        self.begin_stroke()
        try:
            yield
        finally:
            self.end_stroke()

    def undo(self) -> Rect:
        """Undo the last step (closing an open stroke first); returns the rectangle to repaint."""
        with self._lock:
            self.end_stroke()
            if not self._undo:
                return EMPTY
            step = self._undo.pop()
            for patch in reversed(step.patches):
                patch.swap(self._labels)
            self._redo.append(step)
            self._revision += 1
            return step.rect

    def redo(self) -> Rect:
        """Redo the last undone step; returns the rectangle to repaint."""
        with self._lock:
            if not self._redo or self._group is not None:
                return EMPTY
            step = self._redo.pop()
            for patch in step.patches:
                patch.swap(self._labels)
            self._undo.append(step)
            self._revision += 1
            return step.rect

    def clear_history(self) -> None:
        """Forget undo and redo (e.g. after loading another image into the same editor)."""
        with self._lock:
            self._undo.clear()
            self._redo.clear()
            self._group = None
            self._history_bytes = 0

    def _push(self, step: _Step) -> None:
        for dropped in self._redo:
            self._history_bytes -= dropped.nbytes
        self._redo.clear()
        self._undo.append(step)
        self._history_bytes += step.nbytes
        while len(self._undo) > 1 and (
            len(self._undo) > self.max_undo or self._history_bytes > self.max_undo_bytes
        ):
            self._history_bytes -= self._undo.popleft().nbytes

    def _record(self, patch: _Patch) -> None:
        self._revision += 1
        if self._group is not None:
            self._group.append(patch)
        else:
            self._push(_Step([patch]))

    # ------------------------------------------------------------------------------------- primitive

    def _apply(
        self, y0: int, x0: int, mask: np.ndarray, new: np.ndarray | int, preserve: np.ndarray | None
    ) -> Rect:
        """Write `new` (a value or an array shaped like `mask`) where `mask` is set, inside the box at
        (y0, x0); skips preserved classes and pixels that already hold the new value."""
        h, w = mask.shape
        region = self._labels[y0 : y0 + h, x0 : x0 + w]
        change = mask & (region != new)
        if preserve is not None:
            change &= ~preserve[region]
        rows = np.flatnonzero(change.any(axis=1))
        if rows.size == 0:
            return EMPTY
        cols = np.flatnonzero(change.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        change = change[r0:r1, c0:c1]
        region = region[r0:r1, c0:c1]
        new_values = new[r0:r1, c0:c1][change] if isinstance(new, np.ndarray) else new
        patch = _Patch(y0 + r0, x0 + c0, change, region[change])
        region[change] = new_values
        self._record(patch)
        return patch.rect

    def _clip_box(self, x0: int, y0: int, x1: int, y1: int) -> tuple[int, int, int, int] | None:
        """Clip the inclusive box to the map as (x0, y0, x1, y1) with exclusive ends; None when outside."""
        h, w = self.shape
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1 + 1, w), min(y1 + 1, h)
        if cx0 >= cx1 or cy0 >= cy1:
            return None
        return cx0, cy0, cx1, cy1

    # ----------------------------------------------------------------------------------------- brush

    def dab(self, center_xy: Point, radius: float, value: int, *, preserve: set[int] | None = None) -> Rect:
        """Paint a round dab: pixels whose distance to the center pixel is within `radius` (radius 0 is one
        pixel, 1 a 3x3 square). Erasing is a dab with the void value (labelIds: 0 'unlabeled')."""
        return self.stroke([center_xy], radius, value, preserve=preserve)

    def stroke(
        self,
        points: Sequence[Point],
        radius: float,
        value: int,
        *,
        preserve: set[int] | None = None,
    ) -> Rect:
        """Paint the polyline through `points` with a round brush, gap-free however far apart the points
        are (each segment is painted as a capsule, not as spaced dabs). Between `begin_stroke` and
        `end_stroke` the GUI calls this with (previous, current) mouse positions."""
        return self._brush(points, radius, check_value(value), preserve)

    def copy_brush(
        self,
        source_labels: np.ndarray,
        points: Sequence[Point],
        radius: float,
        *,
        preserve: set[int] | None = None,
    ) -> Rect:
        """Like `stroke`, but each pixel under the brush takes `source_labels`' value there (accept a
        model's prediction where the GT is wrong, brushing over it)."""
        return self._brush(points, radius, self._check_source(source_labels), preserve)

    def _brush(
        self, points: Sequence[Point], radius: float, new: int | np.ndarray, preserve: set[int] | None
    ) -> Rect:
        if radius < 0:
            raise ValueError(f"brush radius must be >= 0, got {radius}")
        if not points:
            return EMPTY
        with self._lock:
            lut = preserve_lut(preserve)
            pixels = [pixel(p) for p in points]
            if len(pixels) == 1:
                pixels.append(pixels[0])
            changed = EMPTY
            for a, b in itertools.pairwise(pixels):
                for pa, pb in pieces(a, b, radius):
                    changed = changed.union(self._capsule(pa, pb, radius, new, lut))
            return changed

    def _capsule(
        self, a: Point, b: Point, radius: float, new: int | np.ndarray, lut: np.ndarray | None
    ) -> Rect:
        reach = math.ceil(radius)
        box = self._clip_box(
            math.floor(min(a[0], b[0])) - reach,
            math.floor(min(a[1], b[1])) - reach,
            math.ceil(max(a[0], b[0])) + reach,
            math.ceil(max(a[1], b[1])) + reach,
        )
        if box is None:
            return EMPTY
        x0, y0, x1, y1 = box
        values = new[y0:y1, x0:x1] if isinstance(new, np.ndarray) else new
        return self._apply(y0, x0, capsule_mask(a, b, radius, box), values, lut)

    # ------------------------------------------------------------------------------------------ fill

    def fill(
        self,
        seed_xy: Point,
        value: int,
        *,
        connectivity: int = 4,
        preserve: set[int] | None = None,
    ) -> Rect:
        """Flood-fill the seed's connected region of equal value (4- or 8-connected) with `value`.

        A scanline fill: it reads only the region's own row spans and the rows next to them, so filling a
        small region costs little on a large map. Nothing happens when the region already holds `value`
        or its class is in `preserve`.
        """
        if connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
        v = check_value(value)
        with self._lock:
            old = self.pick(seed_xy)
            if old == v or (preserve is not None and old in preserve):
                return EMPTY
            x, y = pixel(seed_xy)
            spans = flood(self._labels, x, y, old, v, connectivity == 8)
            ys = np.fromiter((s[0] for s in spans), dtype=np.int64, count=len(spans))
            starts = np.fromiter((s[1] for s in spans), dtype=np.int64, count=len(spans))
            ends = np.fromiter((s[2] for s in spans), dtype=np.int64, count=len(spans))
            y0, x0 = int(ys.min()), int(starts.min())
            mask = np.zeros((int(ys.max()) + 1 - y0, int(ends.max()) - x0), dtype=bool)
            for row, start, end in spans:
                mask[row - y0, start - x0 : end - x0] = True
            patch = _Patch(y0, x0, mask, np.array([old], dtype=np.uint8))
            self._record(patch)
            return patch.rect

    def fill_polygon(self, points: Sequence[Point], value: int, *, preserve: set[int] | None = None) -> Rect:
        """Fill the polygon through `points` (pixel coordinates, border included) with `value`."""
        v = check_value(value)
        with self._lock:
            found = self._polygon_mask(points)
            if found is None:
                return EMPTY
            (y0, x0), mask = found
            return self._apply(y0, x0, mask, v, preserve_lut(preserve))

    def _polygon_mask(self, points: Sequence[Point]) -> tuple[tuple[int, int], np.ndarray] | None:
        if len(points) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        box = self._clip_box(math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys)))
        if box is None:
            return None
        x0, y0, x1, y1 = box
        # PIL rasterises in C; drawing into a box-sized image keeps the cost to the polygon's box.
        canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(canvas).polygon([(x - x0, y - y0) for x, y in zip(xs, ys, strict=True)], 1, 1)
        return (y0, x0), np.asarray(canvas, dtype=bool)

    # ------------------------------------------------------------------------------------------ copy

    def copy_from(
        self,
        source_labels: np.ndarray,
        region: Rect | np.ndarray | Sequence[Point],
        *,
        preserve: set[int] | None = None,
    ) -> Rect:
        """Take `source_labels`' values (e.g. model A's prediction, mapped to labelIds) inside `region`:
        a `Rect`, an HxW bool mask, or a polygon given as points."""
        source = self._check_source(source_labels)
        with self._lock:
            lut = preserve_lut(preserve)
            if isinstance(region, Rect):
                box = self._clip_box(region.x, region.y, region.x + region.w - 1, region.y + region.h - 1)
                if box is None or region.is_empty:
                    return EMPTY
                x0, y0, x1, y1 = box
                mask = np.ones((y1 - y0, x1 - x0), dtype=bool)
                return self._apply(y0, x0, mask, source[y0:y1, x0:x1], lut)
            if isinstance(region, np.ndarray):
                return self._copy_masked(source, region, lut)
            found = self._polygon_mask(region)
            if found is None:
                return EMPTY
            (y0, x0), mask = found
            h, w = mask.shape
            return self._apply(y0, x0, mask, source[y0 : y0 + h, x0 : x0 + w], lut)

    def _copy_masked(self, source: np.ndarray, region: np.ndarray, lut: np.ndarray | None) -> Rect:
        if region.shape != self._labels.shape or region.dtype != bool:
            raise ValueError(f"a region mask must be a {self.shape} bool array")
        rows = np.flatnonzero(region.any(axis=1))
        if rows.size == 0:
            return EMPTY
        cols = np.flatnonzero(region.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return self._apply(y0, x0, region[y0:y1, x0:x1], source[y0:y1, x0:x1], lut)

    def _check_source(self, source: np.ndarray) -> np.ndarray:
        if not isinstance(source, np.ndarray) or source.shape != self._labels.shape:
            raise ValueError(f"source labels must have the map's shape {self.shape}")
        if source.dtype != np.uint8:
            raise ValueError(f"source labels must be uint8, got {source.dtype}")
        return source
