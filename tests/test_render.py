"""Display layers (Qt-free): class, outline, error, A-vs-B and drill-down layers; heatmap values."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.datasets import SampleRef
from app.core.labels import EVAL_TRAINIDS, IGNORE
from app.core.render import disagreement_map, error_map, matrix_view
from app.inference.frames import Frame, Highlight, render_layers


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
    assert summary == "A right, B wrong: 28.6%   B right, A wrong: 28.6%   both wrong: 0.0%"
    masks, summary = render_layers(_frame(gt, a, b), EVAL_TRAINIDS, (0, 1), "classes", Highlight(0, 1, 2))
    assert summary == "1 pixels of sidewalk predicted as building"
    assert np.argwhere(masks[1][..., 3] > 0).tolist() == [[1, 2]]


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
