"""What the compare view shows for one image: the image, GT and each model's mask as evaluated classes.

Runs on a worker thread. Predictions come from the shared cache when the evaluation already made them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.core.display.render import (
    DISAGREEMENT_COLORS,
    DISAGREEMENT_NAMES,
    ERROR_COLORS,
    STYLES,
    counts,
    disagreement_map,
    error_map,
    mask_rgba,
    outline,
    outline_radius,
    region_boundary,
    rgba_palette,
)
from app.core.domain.errors import SegLensError
from app.core.domain.labels import IGNORE, ClassMapping, EvalScheme
from app.core.io.datasets import Dataset, SampleRef
from app.evaluation.predictors import SamplePredictor
from app.evaluation.results import ImageEval, count_prediction
from app.inference.base import Prediction


@dataclass(frozen=True)
class Frame:
    """One image ready to display; class maps hold evaluated-class indices (IGNORE = not evaluated),
    `pred_ids` the same predictions in the dataset's id space (what the label editor copies from)."""

    ref: SampleRef
    image: np.ndarray
    gt_class: np.ndarray | None
    pred_class: tuple[np.ndarray | None, ...]
    evals: tuple[ImageEval | None, ...]
    errors: tuple[str | None, ...]
    warnings: tuple[str, ...]
    pred_ids: tuple[np.ndarray | None, ...] = ()
    slots: tuple[int, ...] = ()  # the window's slot (0 = A, 1 = B) of each prediction


def compose_frame(
    dataset: Dataset,
    ref: SampleRef,
    predictors: Sequence[SamplePredictor],
    mappings: Sequence[ClassMapping],
    scheme: EvalScheme,
    known: Sequence[Mapping[str, ImageEval] | None] = (),
    *,
    cached_only: bool = False,
) -> Frame | None:
    """Load `ref`, take each model's prediction from the prediction store (a CachedPredictor's
    `lookup(sample) -> Prediction | None` answers from memory, then disk) or compute it, map all to
    evaluated classes.

    known: per model, the evaluation's per-image scores (the live accumulator's): an image scored there is
    not counted again, so the numbers shown are the ones held there. cached_only: make no prediction;
    return None unless every one is in the store."""
    scored = [
        (known[i].get(ref.key) if i < len(known) and known[i] is not None else None)  # type: ignore[union-attr]
        for i in range(len(predictors))
    ]
    # Instance ids only count toward iIoU: not needed when every image is already scored.
    sample = dataset.load(ref, with_instances=any(e is None for e in scored))
    to_class = scheme.id_to_class()
    preds: list[np.ndarray | None] = []
    ids_out: list[np.ndarray | None] = []
    evals: list[ImageEval | None] = []
    errors: list[str | None] = []
    for predictor, mapping, image_eval in zip(predictors, mappings, scored, strict=True):
        lookup = getattr(predictor, "lookup", None)
        try:
            found: Prediction | None = lookup(sample) if lookup is not None else None
            if found is None:
                if cached_only:
                    return None
                found = predictor.predict_sample(sample)
            if image_eval is None:
                image_eval, ids = count_prediction(sample, found, predictor.info.name, mapping, scheme)
            else:
                ids = mapping.apply(found.labels)
        except SegLensError as exc:
            preds.append(None)
            ids_out.append(None)
            evals.append(None)
            errors.append(str(exc))
            continue
        preds.append(to_class[ids])
        ids_out.append(ids)
        evals.append(image_eval)
        errors.append(None)
    gt_class = to_class[sample.gt] if sample.gt is not None else None
    return Frame(
        ref,
        sample.image,
        gt_class,
        tuple(preds),
        tuple(evals),
        tuple(errors),
        sample.warnings,
        tuple(ids_out),
    )


PALETTES = (("cityscapes", "Cityscapes colours"), ("contrast", "High contrast"))
"""Class colour choices: the scheme's own colours, or colours chosen to stay apart at any opacity."""

# Kelly's 22 colours of maximum contrast (white and black left out), then a few more: far apart from each
# other at 50 % over a street scene, where Cityscapes' greys (construction, object) vanish.
_CONTRAST: tuple[tuple[int, int, int], ...] = (
    (243, 195, 0),
    (135, 86, 146),
    (243, 132, 0),
    (161, 202, 241),
    (190, 0, 50),
    (194, 178, 128),
    (0, 136, 86),
    (230, 143, 172),
    (0, 103, 165),
    (249, 150, 121),
    (96, 78, 151),
    (246, 166, 0),
    (179, 68, 108),
    (220, 211, 0),
    (136, 45, 23),
    (141, 182, 0),
    (101, 69, 34),
    (226, 88, 34),
    (43, 61, 38),
    (0, 200, 200),
    (255, 0, 128),
    (128, 128, 255),
    (0, 90, 40),
    (200, 100, 255),
)


def palette_colors(scheme: EvalScheme, palette: str = "cityscapes") -> list[tuple[int, int, int]]:
    """The class colours of `scheme` in `palette` (cycled when a scheme has more classes than colours)."""
    if palette == "contrast":
        return [_CONTRAST[i % len(_CONTRAST)] for i in range(scheme.num_classes)]
    return [tuple(c) for c in scheme.colors]  # type: ignore[misc]


@dataclass(frozen=True)
class Highlight:
    """Confusion drill-down: in model `slot`'s panel show only pixels of GT class `gt` predicted as `pred`
    (`pred` equal to the number of classes means "not an evaluated class", a negative `pred` any class but
    `gt`: a missed object's pixels). `box` (x0, y0, x1, y1, x1 and y1 exclusive) keeps only the pixels
    inside it: one finding (a likely label error, a missed instance), not every such pixel of the image;
    `agree` keeps only the pixels the other model predicts the same (a likely label error's pixels)."""

    slot: int
    gt: int
    pred: int
    box: tuple[int, int, int, int] | None = None
    agree: bool = False


HIGHLIGHT_RGB = (255, 0, 255)
HIGHLIGHT_NAME = "drill-down pixels"
HIGHLIGHT_RGBA = np.array([*HIGHLIGHT_RGB, 255], dtype=np.uint8)

PanelStyles = tuple[str, str, str]  # GT, A, B
FILLED: PanelStyles = ("filled", "filled", "filled")


def panel_styles(mode: str, styles: Sequence[str] | None = None) -> PanelStyles:
    """The per-panel styles a render uses: `styles` if given, else what an old single `mode` implied
    ("contours" outlined every panel)."""
    if styles is None:
        return ("contours", "contours", "contours") if mode == "contours" else FILLED
    if len(styles) != 3 or any(s not in STYLES for s in styles):
        raise ValueError(f"styles must be 3 of {STYLES} (GT, A, B), got {tuple(styles)}")
    return (styles[0], styles[1], styles[2])


def layer_styles(styles: Sequence[str]) -> PanelStyles:
    """What the layers depend on: "mask" (mask alone) draws like "filled", only the view differs."""
    gt, a, b = ("contours" if s == "contours" else "filled" for s in panel_styles("classes", styles))
    return gt, a, b


def render_layers(
    frame: Frame,
    scheme: EvalScheme,
    slots: Sequence[int],
    mode: str = "classes",
    highlight: Highlight | None = None,
    hidden: Collection[int] = (),
    with_gt: bool = True,
    styles: Sequence[str] | None = None,
    palette: str = "cityscapes",
) -> tuple[list[np.ndarray | None], str]:
    """RGBA layers for the GT, A and B panels, and a one-line summary (A vs B shares).

    mode (the content): "classes" (class colours), "errors" (right/wrong against GT) or "disagreement"
    (panel B shows A right & B wrong / B right & A wrong / both wrong); the older "contours" means classes
    outlined in every panel and "mask" classes. styles: per panel (GT, A, B) "filled", "contours" (only the
    outlines of the layer's regions; computed only for those panels) or "mask" (drawn filled). Classes in
    `hidden` are transparent in the class content, drawn in `palette` (PALETTES). A highlight replaces its
    model's layer.
    """
    outlined = [s == "contours" for s in panel_styles(mode, styles)]
    content = "classes" if mode in ("contours", "mask") else mode
    class_lut = rgba_palette(palette_colors(scheme, palette), hidden=hidden)
    masks: list[np.ndarray | None] = [None, None, None]
    preds: list[np.ndarray | None] = [None, None]
    for slot, pred in zip(slots, frame.pred_class, strict=True):
        preds[slot] = pred
    gt = frame.gt_class
    if gt is not None and with_gt:  # the GT panel is often hidden: no layer to build then
        masks[0] = _layer(gt, class_lut, outlined[0])
    summary = ""
    if content == "classes" or gt is None:
        for slot, pred in enumerate(preds):
            if pred is not None:
                masks[1 + slot] = _layer(pred, class_lut, outlined[1 + slot])
    else:
        error_lut = rgba_palette(ERROR_COLORS, hidden=(0,))
        for slot, pred in enumerate(preds):
            if pred is not None:
                masks[1 + slot] = _layer(error_map(gt, pred), error_lut, outlined[1 + slot])
        a, b = preds
        if content == "disagreement" and a is not None and b is not None:
            codes = disagreement_map(gt, a, b)
            masks[2] = _layer(codes, rgba_palette(DISAGREEMENT_COLORS, hidden=(0,)), outlined[2])
            n = counts(codes, len(DISAGREEMENT_NAMES))
            total = max(sum(n[1:]), 1)
            summary = " · ".join(
                f"{name} {n[i] / total * 100:.1f}%" for i, name in enumerate(DISAGREEMENT_NAMES) if i > 1
            )
    if highlight is not None and gt is not None and preds[highlight.slot] is not None:
        other = preds[1 - highlight.slot] if highlight.agree else None
        masks[1 + highlight.slot], pixels = _highlight_layer(
            gt, preds[highlight.slot], highlight, scheme, outlined[1 + highlight.slot], other
        )
        summary = (
            f"{pixels} pixels of {_name(scheme, highlight.gt)} predicted as {_name(scheme, highlight.pred)}"
            + (" by both models" if other is not None else "")
            + ("" if highlight.box is None else " in the finding's box")
        )
    return masks, summary


def _layer(codes: np.ndarray, lut: np.ndarray, outlined: bool, radius: int | None = None) -> np.ndarray:
    """Colour a code map (classes, error or disagreement codes); outlined: only region boundaries, as wide
    as the image's size asks (`radius` given when `codes` is a window of a larger image)."""
    layer = mask_rgba(codes, lut)
    if outlined:
        layer[~outline(codes, outline_radius(codes.shape) if radius is None else radius), 3] = 0
    return layer


def layer_patch(
    classes_of: Callable[[slice, slice], np.ndarray],
    shape: tuple[int, int],
    rect: tuple[int, int, int, int],
    lut: np.ndarray,
    outlined: bool,
) -> tuple[int, int, np.ndarray]:
    """Repaint part of a class layer after an edit: (x, y, RGBA patch) covering `rect` (x, y, w, h).

    `classes_of(rows, cols)` gives the class map of a window of the image of `shape`. Outlined, a pixel
    depends on the pixels up to `margin` away, so the patch reaches `margin` beyond `rect` on every side and
    is computed from a window twice as far out.
    """
    x, y, w, h = rect
    if not outlined:
        return x, y, mask_rgba(classes_of(slice(y, y + h), slice(x, x + w)), lut)
    height, width = shape
    radius = outline_radius(shape)
    margin = radius + 1
    px0, py0 = max(x - margin, 0), max(y - margin, 0)
    px1, py1 = min(x + w + margin, width), min(y + h + margin, height)
    cx0, cy0 = max(x - 2 * margin, 0), max(y - 2 * margin, 0)
    cx1, cy1 = min(x + w + 2 * margin, width), min(y + h + 2 * margin, height)
    classes = classes_of(slice(cy0, cy1), slice(cx0, cx1))
    layer = _layer(classes, lut, True, radius)
    return px0, py0, np.ascontiguousarray(layer[py0 - cy0 : py1 - cy0, px0 - cx0 : px1 - cx0])


def _name(scheme: EvalScheme, value: int) -> str:
    if value < 0:
        return "another class"
    return scheme.names[value] if value < scheme.num_classes else "not an evaluated class"


def _highlight_layer(
    gt: np.ndarray,
    pred: np.ndarray | None,
    highlight: Highlight,
    scheme: EvalScheme,
    outlined: bool = False,
    other: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    assert pred is not None
    # "Other" predictions are every value outside the evaluated classes (IGNORE in the class map).
    if highlight.pred < 0:
        predicted = pred != highlight.gt
    elif highlight.pred >= scheme.num_classes:
        predicted = pred >= scheme.num_classes
    else:
        predicted = pred == highlight.pred
    selected = (gt == highlight.gt) & predicted & (gt != IGNORE)
    if other is not None:  # the other model says the same: the pixels of a likely label error
        selected &= other == pred
    if highlight.box is not None:
        x0, y0, x1, y1 = highlight.box
        inside = np.zeros(gt.shape, dtype=bool)
        inside[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
        selected &= inside
    pixels = int(np.count_nonzero(selected))
    layer = np.zeros((*gt.shape, 4), dtype=np.uint8)
    layer[region_boundary(selected, outline_radius(gt.shape)) if outlined else selected] = HIGHLIGHT_RGBA
    return layer, pixels


def render_frame(
    dataset: Dataset,
    ref: SampleRef,
    predictors: list[SamplePredictor],
    mappings: list[ClassMapping],
    scheme: EvalScheme,
    known: Sequence[Mapping[str, ImageEval] | None],
    slots: list[int],
    mode: str = "classes",
    highlight: Highlight | None = None,
    hidden: frozenset[int] = frozenset(),
    with_gt: bool = True,
    styles: tuple[str, str, str] | None = None,
    palette: str = "cityscapes",
    cached_only: bool = False,
) -> tuple[Frame, np.ndarray, list[np.ndarray | None], str] | None:
    """Worker side of showing one image: the frame, its RGBA layers (GT, A, B; `styles` per panel) and a
    one-line summary. With `cached_only`, None when a prediction would have to be made."""
    frame = compose_frame(dataset, ref, predictors, mappings, scheme, known, cached_only=cached_only)
    if frame is None:
        return None
    frame = dataclasses.replace(frame, slots=tuple(slots))
    masks, summary = render_layers(frame, scheme, slots, mode, highlight, hidden, with_gt, styles, palette)
    return frame, frame.image, masks, summary


def hover_text(frame: Frame, scheme: EvalScheme, slots: Sequence[int], x: int, y: int) -> str:
    """'(x, y)   GT: road   A: road   B: sidewalk' for the pixel under the cursor."""
    if not (0 <= y < frame.image.shape[0] and 0 <= x < frame.image.shape[1]):
        return ""
    names = scheme.names

    def name(class_map: np.ndarray | None) -> str:
        if class_map is None:
            return "–"
        value = int(class_map[y, x])
        return names[value] if value < len(names) else "(not evaluated)"

    parts = [f"({x}, {y})", f"GT: {name(frame.gt_class)}"]
    for slot, pred in zip(slots, frame.pred_class, strict=False):
        parts.append(f"{'AB'[slot] if slot < 2 else slot + 1}: {name(pred)}")
    return "   ".join(parts)
