"""Display layers (Qt-free): class, outline, error, A-vs-B and drill-down layers; heatmap values."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.display.overlay import contours
from app.core.display.render import disagreement_map, error_map, mask_rgba, matrix_view, rgba_palette
from app.core.domain.labels import EVAL_TRAINIDS, IGNORE
from app.core.io.datasets import SampleRef
from app.evaluation.frames import Frame, Highlight, layer_patch, render_layers


def _frame(gt: np.ndarray, a: np.ndarray, b: np.ndarray) -> Frame:
    ref = SampleRef("k", None, None, None, None, None, "k")  # type: ignore[arg-type]
    image = np.zeros((*gt.shape, 3), dtype=np.uint8)
    return Frame(ref, image, gt, (a, b), (None, None), (None, None), ())


@pytest.fixture
def maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gt = np.array([[0, 0, 1, 1], [0, IGNORE, 1, 2]], dtype=np.uint8)
    a = np.array([[0, 1, 1, 1], [0, 0, 2, 2]], dtype=np.uint8)
    b = np.array([[0, 0, 1, 0], [1, 0, 1, 2]], dtype=np.uint8)
    return gt, a, b


def test_error_and_disagreement_codes(maps) -> None:
    gt, a, b = maps
    assert error_map(gt, a).tolist() == [[1, 2, 1, 1], [1, 0, 2, 1]]
    # 1 both right, 2 A right & B wrong, 3 B right & A wrong, 4 both wrong, 0 ignored
    assert disagreement_map(gt, a, b).tolist() == [[1, 3, 1, 2], [2, 0, 3, 1]]


def test_class_layers_hide_classes_and_ignored(maps) -> None:
    gt, a, b = maps
    masks, summary = render_layers(_frame(gt, a, b), EVAL_TRAINIDS, (0, 1), "classes", hidden={1})
    assert summary == ""
    alpha_a = masks[1][..., 3]
    assert alpha_a.tolist() == [[255, 0, 0, 0], [255, 255, 255, 255]]  # class 1 hidden
    assert masks[0][1, 1, 3] == 0  # ignored GT pixel is clear
    assert tuple(masks[1][0, 0, :3]) == EVAL_TRAINIDS.colors[0]


def test_outlines_keep_only_boundaries(maps) -> None:
    gt, a, b = maps
    masks, _ = render_layers(_frame(gt, a, b), EVAL_TRAINIDS, (0, 1), "contours")
    # A pixel is on an outline when its right or lower neighbour differs: row 0 all (its lower neighbours
    # 0/0/2/2 differ from 1/1/1 and (0,0) differs to the right), row 1 only (1,1) (0 next to 2).
    assert (masks[1][..., 3] > 0).tolist() == [[True, True, True, True], [False, True, False, False]]


def test_disagreement_summary_and_highlight(maps) -> None:
    gt, a, b = maps
    masks, summary = render_layers(_frame(gt, a, b), EVAL_TRAINIDS, (0, 1), "disagreement")
    assert summary == "A right, B wrong 28.6% · B right, A wrong 28.6% · both wrong 0.0%"
    masks, summary = render_layers(_frame(gt, a, b), EVAL_TRAINIDS, (0, 1), "classes", Highlight(0, 1, 2))
    assert summary == "1 pixels of sidewalk predicted as building"
    assert np.argwhere(masks[1][..., 3] > 0).tolist() == [[1, 2]]


def test_finding_highlights_keep_their_box_and_any_other_class(maps) -> None:
    gt, a, b = maps
    frame = _frame(gt, a, b)
    # A likely label error: only the pixels of the pair inside its box (x0, y0, x1, y1, exclusive).
    masks, summary = render_layers(
        frame, EVAL_TRAINIDS, (0, 1), "classes", Highlight(0, 0, 1, box=(0, 0, 2, 1))
    )
    assert summary == "1 pixels of road predicted as sidewalk in the finding's box"
    assert np.argwhere(masks[1][..., 3] > 0).tolist() == [[0, 1]]
    masks, _ = render_layers(frame, EVAL_TRAINIDS, (0, 1), "classes", Highlight(0, 0, 1, box=(2, 0, 4, 2)))
    assert not masks[1][..., 3].any()  # the pair's pixels outside the box are not this finding's
    # Both models agreeing: A's road-as-sidewalk pixel at (0, 1) is B's road: not a likely label error.
    masks, summary = render_layers(frame, EVAL_TRAINIDS, (0, 1), "classes", Highlight(0, 0, 1, agree=True))
    assert summary == "0 pixels of road predicted as sidewalk by both models"
    # A missed object: B's pixels of the class predicted as anything else, in the instance's box.
    masks, summary = render_layers(
        frame, EVAL_TRAINIDS, (0, 1), "classes", Highlight(1, 1, -1, box=(0, 0, 4, 2))
    )
    assert summary == "1 pixels of sidewalk predicted as another class in the finding's box"
    assert np.argwhere(masks[2][..., 3] > 0).tolist() == [[0, 3]]


def test_matrix_views() -> None:
    a = np.array([[3, 1, 0], [0, 2, 2]])
    b = np.array([[4, 0, 0], [1, 3, 0]])
    values, levels = matrix_view(a, b, "A", "rows")
    np.testing.assert_allclose(values, [[0.75, 0.25, 0], [0, 0.5, 0.5]])
    assert levels == (0.0, 1.0)
    diff, levels = matrix_view(a, b, "B-A", "rows")
    np.testing.assert_allclose(diff, [[0.25, -0.25, 0], [0.25, 0.25, -0.5]])
    assert levels == (-1.0, 1.0)
    counts, levels = matrix_view(a, b, "B", "counts")
    np.testing.assert_array_equal(counts, b)
    assert levels == (0.0, 4.0)
    log_diff, _ = matrix_view(a, b, "B-A", "log")
    np.testing.assert_allclose(log_diff[1], [np.log10(2), np.log10(2), -np.log10(3)])
    assert matrix_view(a, None, "B-A", "rows") is None


def test_styles_per_panel_outline_only_the_panels_that_ask(maps) -> None:
    gt, a, b = maps
    frame = _frame(gt, a, b)
    filled, _ = render_layers(frame, EVAL_TRAINIDS, (0, 1), "classes", hidden={2})
    masks, _ = render_layers(
        frame, EVAL_TRAINIDS, (0, 1), "classes", hidden={2}, styles=("mask", "filled", "contours")
    )
    # GT (mask alone) and A (filled) are the filled layers; B keeps only its outline pixels, and a hidden
    # class stays clear on the outline too.
    np.testing.assert_array_equal(masks[0], filled[0])
    np.testing.assert_array_equal(masks[1], filled[1])
    expected = contours(b) & (b != 2)
    assert ((masks[2][..., 3] > 0) == expected).all() and expected.any() and not expected.all()
    np.testing.assert_array_equal(masks[2][expected], filled[2][expected])
    # The old single mode "contours" still outlines every panel.
    legacy, _ = render_layers(frame, EVAL_TRAINIDS, (0, 1), "contours")
    for layer, classes in zip(legacy, (gt, a, b), strict=True):
        assert ((layer[..., 3] > 0) == (contours(classes) & (classes != IGNORE))).all()
    with pytest.raises(ValueError, match="styles"):
        render_layers(frame, EVAL_TRAINIDS, (0, 1), styles=("filled", "dotted", "filled"))


def test_contours_of_error_and_disagreement_layers(maps) -> None:
    gt, a, b = maps
    frame = _frame(gt, a, b)
    filled, summary = render_layers(frame, EVAL_TRAINIDS, (0, 1), "disagreement")
    masks, outlined_summary = render_layers(
        frame, EVAL_TRAINIDS, (0, 1), "disagreement", styles=("filled", "contours", "contours")
    )
    assert outlined_summary == summary  # the shares count every pixel, whatever the style
    errors_a, codes = error_map(gt, a), disagreement_map(gt, a, b)
    for layer, code_map in ((masks[1], errors_a), (masks[2], codes)):
        expected = contours(code_map) & (code_map != 0)  # the outline of each region, ignored stays clear
        assert ((layer[..., 3] > 0) == expected).all()
    np.testing.assert_array_equal(masks[0], filled[0])


def test_highlight_outline_keeps_count() -> None:
    gt = np.zeros((6, 6), dtype=np.uint8)
    gt[1:5, 1:5] = 1
    pred = gt.copy()
    pred[1:5, 1:5] = 2  # a 4x4 block of sidewalk predicted as building
    frame = _frame(gt, pred, pred)
    styles = ("filled", "contours", "filled")
    masks, summary = render_layers(frame, EVAL_TRAINIDS, (0, 1), "classes", Highlight(0, 1, 2), styles=styles)
    assert summary == "16 pixels of sidewalk predicted as building"
    ring = np.zeros((6, 6), dtype=bool)
    ring[1:5, 1:5] = True
    ring[2:4, 2:4] = False
    assert ((masks[1][..., 3] > 0) == ring).all()


def _widened(edge: np.ndarray, radius: int) -> np.ndarray:
    """Oracle for wide outlines: every pixel within `radius` (box distance) of an edge pixel."""
    padded = np.pad(edge, radius)
    h, w = edge.shape
    out = np.zeros_like(edge)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def test_outlines_widen_with_the_image_size() -> None:
    # 2048 wide: 4 pixels more on each side of a boundary, so outlines survive fitting to the window.
    labels = np.random.default_rng(2).integers(0, 3, (40, 2048)).astype(np.uint8)
    labels[:, :1000] = 0  # a large uniform region keeps an interior without outline
    labels[:, 1000] = 1
    frame = _frame(labels, labels, labels)
    masks, _ = render_layers(frame, EVAL_TRAINIDS, (0, 1), styles=("filled", "contours", "filled"))
    shown = masks[1][..., 3] > 0
    np.testing.assert_array_equal(shown, _widened(contours(labels), 4))
    assert not shown[:, :995].any() and shown[:, 995:1004].all()
    assert (masks[0][..., 3] == 255).all()
    highlight = Highlight(0, 0, 0)  # GT road predicted as road: the region [:, :1000] and scattered pixels
    masks, summary = render_layers(frame, EVAL_TRAINIDS, (0, 1), "classes", highlight, styles=("filled",) * 3)
    region = labels == 0
    assert summary.startswith(f"{int(region.sum())} pixels")
    outlined, _ = render_layers(frame, EVAL_TRAINIDS, (0, 1), "classes", highlight, styles=("contours",) * 3)
    ring = outlined[1][..., 3] > 0
    assert not (ring & ~region).any() and ring[:, 995:1000].all() and not ring[:, :995].any()


@pytest.mark.parametrize("shape", [(10, 12), (14, 1100)])
@pytest.mark.parametrize("rect", [(0, 0, 3, 2), (4, 3, 5, 4), (9, 7, 3, 3), (2, 5, 1, 1)])
def test_layer_patch_equals_the_full_layer(shape, rect) -> None:
    labels = np.random.default_rng(1).integers(0, 4, shape).astype(np.uint8)
    lut = rgba_palette(EVAL_TRAINIDS.colors, hidden={3})
    radius = max(shape) // 512
    for outlined in (False, True):
        full = mask_rgba(labels, lut)
        if outlined:
            full[~_widened(contours(labels), radius), 3] = 0
        x, y, patch = layer_patch(lambda r, c: labels[r, c], labels.shape, rect, lut, outlined)
        h, w = patch.shape[:2]
        np.testing.assert_array_equal(patch, full[y : y + h, x : x + w])
        # It covers the rectangle, and outlined also the pixels whose outline the rectangle decides.
        margin = radius + 1 if outlined else 0
        assert (x, y) == (max(rect[0] - margin, 0), max(rect[1] - margin, 0))
        assert x + w == min(rect[0] + rect[2] + margin, shape[1])
        assert y + h == min(rect[1] + rect[3] + margin, shape[0])
