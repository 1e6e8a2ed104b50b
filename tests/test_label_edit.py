"""LabelEditor: brush, stroke, fill, polygon, copy, preserve; undo/redo byte-identical; bounded history."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from app.core.domain.label_edit import EMPTY, LabelEditor, Rect


def disc_reference(shape: tuple[int, int], cx: int, cy: int, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= radius * radius + radius


def changed_rect(before: np.ndarray, after: np.ndarray) -> Rect:
    ys, xs = np.nonzero(before != after)
    if ys.size == 0:
        return EMPTY
    return Rect(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))


def scene(h: int = 120, w: int = 200) -> np.ndarray:
    labels = np.full((h, w), 7, dtype=np.uint8)  # road
    labels[: h // 3] = 23  # sky
    labels[h // 3 : h // 2, 20:90] = 11  # building
    labels[70:90, 120:150] = 26  # a car
    return labels


def test_dab_is_a_round_brush_and_returns_the_changed_rect() -> None:
    labels = np.zeros((50, 60), dtype=np.uint8)
    editor = LabelEditor(labels)
    rect = editor.dab((30, 20), 5, 26)
    expected = disc_reference(labels.shape, 30, 20, 5)
    assert np.array_equal(labels == 26, expected)
    assert rect == changed_rect(np.zeros_like(labels), labels) == Rect(25, 15, 11, 11)
    assert editor.dab((0, 0), 0, 9) == Rect(0, 0, 1, 1) and labels[0, 0] == 9  # radius 0: one pixel
    assert editor.dab((30, 20), 3, 26) == EMPTY  # nothing changes: nothing to repaint, no undo step
    assert editor.undo_depth == 2


def test_dab_is_clipped_at_the_border_and_floors_scene_coordinates() -> None:
    labels = np.zeros((20, 20), dtype=np.uint8)
    editor = LabelEditor(labels)
    rect = editor.dab((-2.0, 19.7), 4, 5)  # center pixel (-2, 19): outside, partly on the map
    assert np.array_equal(labels == 5, disc_reference(labels.shape, -2, 19, 4))
    assert rect == changed_rect(np.zeros_like(labels), labels)
    assert editor.dab((500, 500), 3, 5) == EMPTY


def test_stroke_leaves_no_gaps_however_far_apart_the_points_are() -> None:
    labels = np.zeros((200, 300), dtype=np.uint8)
    editor = LabelEditor(labels)
    editor.stroke([(10, 10), (290, 190)], 2, 8)
    ys, xs = np.mgrid[:200, :300]
    # Dabs every 0.1 px along the segment must all be covered ...
    union = np.zeros_like(labels, dtype=bool)
    for t in np.linspace(0.0, 1.0, 3400):
        union |= (xs - (10 + 280 * t)) ** 2 + (ys - (10 + 180 * t)) ** 2 <= 2 * 2 + 2
    assert np.all(labels[union] == 8)
    # ... and nothing farther from the segment than the brush reaches.
    distance = np.abs(180 * xs - 280 * ys + 280 * 10 - 180 * 10) / np.hypot(180, 280)
    assert distance[labels == 8].max() <= np.sqrt(6) + 1e-3
    assert np.count_nonzero(labels) - np.count_nonzero(union) < 0.05 * np.count_nonzero(union)


def test_eraser_and_preserve() -> None:
    labels = scene()
    editor = LabelEditor(labels)
    before = labels.copy()
    editor.dab((135, 80), 30, 0, preserve={26})  # erase around the car, keeping the car
    assert np.array_equal(labels == 26, before == 26)
    erased = disc_reference(labels.shape, 135, 80, 30) & (before != 26)
    assert np.all(labels[erased] == 0)
    assert np.array_equal(labels[~erased], before[~erased])


def test_fill_changes_exactly_the_connected_region() -> None:
    labels = scene()
    labels[100, :] = 11  # a wall cutting the road in two (4-connected)
    before = labels.copy()
    editor = LabelEditor(labels)
    rect = editor.fill((10, 110), 8)
    assert np.array_equal(labels == 8, (before == 7) & (np.arange(120)[:, None] > 100))
    assert rect == changed_rect(before, labels)
    assert editor.fill((10, 110), 8) == EMPTY  # already that value
    assert editor.fill((10, 10), 5, preserve={23}) == EMPTY  # sky preserved


def test_fill_connectivity_4_vs_8() -> None:
    labels = np.zeros((5, 5), dtype=np.uint8)
    labels[[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]] = 3  # a diagonal line
    four = LabelEditor(labels.copy())
    four.fill((0, 0), 9, connectivity=4)
    assert np.count_nonzero(four.labels == 9) == 1
    eight = LabelEditor(labels.copy())
    eight.fill((0, 0), 9, connectivity=8)
    assert np.count_nonzero(eight.labels == 9) == 5
    with pytest.raises(ValueError, match="connectivity"):
        eight.fill((0, 0), 1, connectivity=6)


def test_fill_of_a_winding_region_matches_a_reference_flood() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random((80, 90)) < 0.45).astype(np.uint8) * 7  # a maze of 0 and 7
    for connectivity in (4, 8):
        work = labels.copy()
        LabelEditor(work).fill((45, 40), 5, connectivity=connectivity)
        expected = reference_flood(labels, 45, 40, connectivity)
        assert np.array_equal(work == 5, expected)


def reference_flood(labels: np.ndarray, x: int, y: int, connectivity: int) -> np.ndarray:
    old, seen, todo = labels[y, x], np.zeros(labels.shape, dtype=bool), [(y, x)]
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    while todo:
        r, c = todo.pop()
        if 0 <= r < labels.shape[0] and 0 <= c < labels.shape[1] and not seen[r, c] and labels[r, c] == old:
            seen[r, c] = True
            todo.extend((r + dr, c + dc) for dr, dc in steps)
    return seen


def test_fill_polygon_and_preserve() -> None:
    labels = scene()
    before = labels.copy()
    editor = LabelEditor(labels)
    rect = editor.fill_polygon([(100, 60), (180, 60), (180, 110), (100, 110)], 21, preserve={26})
    inside = np.zeros_like(before, dtype=bool)
    inside[60:111, 100:181] = True  # the border is included
    assert np.array_equal(labels == 21, inside & (before != 26))
    assert np.array_equal(labels == 26, before == 26)
    assert rect == changed_rect(before, labels)
    with pytest.raises(ValueError, match="3 points"):
        editor.fill_polygon([(0, 0), (5, 5)], 1)


def test_copy_from_takes_the_source_inside_rect_mask_polygon_and_brush() -> None:
    labels = scene()
    source = np.full_like(labels, 24)
    source[:, ::2] = 25
    before = labels.copy()
    editor = LabelEditor(labels)
    editor.copy_from(source, Rect(10, 10, 20, 5))
    assert np.array_equal(labels[10:15, 10:30], source[10:15, 10:30])
    mask = np.zeros(labels.shape, dtype=bool)
    mask[50:52, 150:160] = True
    editor.copy_from(source, mask)
    assert np.array_equal(labels[mask], source[mask])
    editor.copy_from(source, [(60, 100), (70, 100), (70, 110)])
    assert labels[101, 69] == source[101, 69]
    editor.copy_brush(source, [(5, 115), (40, 115)], 2, preserve={7})  # road kept: nothing changes
    assert np.array_equal(labels[112:, :45], before[112:, :45])
    with pytest.raises(ValueError, match="shape"):
        editor.copy_from(source[:10], Rect(0, 0, 5, 5))


def test_pick() -> None:
    editor = LabelEditor(scene())
    assert editor.pick((130, 80)) == 26 and editor.pick((5.9, 5.9)) == 23
    with pytest.raises(ValueError, match="outside"):
        editor.pick((200, 0))


def test_undo_redo_sixty_steps_byte_identical() -> None:
    labels = scene()
    editor = LabelEditor(labels, max_undo=60)
    states = [labels.copy()]
    rng = np.random.default_rng(0)
    source = rng.integers(0, 34, labels.shape, dtype=np.uint8)
    for i in range(60):
        x, y = int(rng.integers(0, 200)), int(rng.integers(0, 120))
        value = int(rng.integers(0, 34))
        if i % 4 == 0:
            editor.dab((x, y), int(rng.integers(0, 15)), value)
        elif i % 4 == 1:
            editor.fill((x, y), value, connectivity=8)
        elif i % 4 == 2:
            editor.fill_polygon([(x, y), (x + 30, y), (x, y + 20)], value)
        else:
            editor.copy_from(source, Rect(x, y, 25, 12))
        if not np.array_equal(labels, states[-1]):
            states.append(labels.copy())
    assert len(states) > 50
    for state in reversed(states[:-1]):
        assert editor.can_undo
        editor.undo()
        assert np.array_equal(labels, state)
    assert not editor.can_undo
    for state in states[1:]:
        editor.redo()
        assert np.array_equal(labels, state)
    assert not editor.can_redo


def test_a_stroke_is_one_undo_step_and_a_new_edit_clears_redo() -> None:
    labels = scene()
    before = labels.copy()
    editor = LabelEditor(labels)
    editor.begin_stroke()
    for x in range(10, 190, 7):
        editor.stroke([(x, 60), (x + 7, 62)], 6, 17)
    rect = editor.end_stroke()
    assert editor.undo_depth == 1 and rect == changed_rect(before, labels)
    painted = labels.copy()
    assert editor.undo() == rect and np.array_equal(labels, before)
    editor.redo()
    assert np.array_equal(labels, painted)
    editor.undo()
    editor.dab((5, 5), 1, 1)
    assert not editor.can_redo


def test_history_is_bounded_by_count_and_bytes() -> None:
    labels = scene()
    editor = LabelEditor(labels, max_undo=5)
    for i in range(12):
        editor.dab((100, 60), 10, i % 2 + 1)
    assert editor.undo_depth == 5
    small = LabelEditor(scene(), max_undo=100, max_undo_bytes=2_000)
    for i in range(30):
        small.fill_polygon([(0, 0), (199, 0), (199, 119)], i % 2 + 1)
    assert small.undo_depth >= 1 and small.history_nbytes <= 2_000 + 4_000  # the newest step is kept


def test_long_stroke_history_follows_the_painted_area_not_the_map() -> None:
    labels = np.zeros((1024, 2048), dtype=np.uint8)
    editor = LabelEditor(labels)
    editor.begin_stroke()
    points = [(20 + 25 * i, 500 + int(300 * np.sin(i / 8))) for i in range(80)]
    for a, b in itertools.pairwise(points):
        editor.stroke([a, b], 10, 26)
    editor.end_stroke()
    painted = int(np.count_nonzero(labels))
    assert 30_000 < painted < 100_000
    # bounding box bits + old values of changed pixels: ~1.5 bytes per painted pixel, whatever the map size
    assert editor.history_nbytes < 2.0 * painted
    assert editor.history_nbytes < labels.nbytes / 20
    editor.undo()
    assert not labels.any()


def test_revision_dirty_and_snapshot() -> None:
    editor = LabelEditor(scene())
    start = editor.revision
    assert not editor.dirty and not editor.changed_since(start)
    editor.dab((1, 1), 1, 3)
    assert editor.dirty and editor.changed_since(start)
    revision, copy = editor.snapshot()
    editor.mark_saved(revision)
    assert not editor.dirty
    editor.dab((50, 50), 2, 3)
    assert editor.dirty and not np.array_equal(copy, editor.labels)
    editor.undo()
    assert editor.changed_since(revision) and np.array_equal(copy, editor.labels)


def test_snapshots_are_consistent_while_another_thread_edits() -> None:
    labels = np.zeros((200, 200), dtype=np.uint8)
    editor = LabelEditor(labels)
    stop = threading.Event()

    def paint() -> None:
        value = 1
        while not stop.is_set():
            editor.fill_polygon([(0, 0), (199, 0), (199, 199), (0, 199)], value)
            value = 3 - value

    thread = threading.Thread(target=paint)
    thread.start()
    try:
        for _ in range(200):
            _, copy = editor.snapshot()
            assert len(np.unique(copy)) == 1  # never half a fill
    finally:
        stop.set()
        thread.join()


def test_refuses_bad_input() -> None:
    readonly = np.zeros((4, 4), dtype=np.uint8)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        LabelEditor(readonly)
    with pytest.raises(ValueError, match="uint8"):
        LabelEditor(np.zeros((4, 4), dtype=np.int32))
    editor = LabelEditor(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"0\.\.255"):
        editor.dab((1, 1), 1, 300)
    with pytest.raises(ValueError, match="radius"):
        editor.dab((1, 1), -1, 3)
