"""Cityscapes labels, class schemes and the mappings between them.

Three ideas carry every comparison:

* A **ClassScheme** is what the values of a label map mean (labelIds, trainIds, the 8 categories, or a
  custom list). Models predict in their own scheme.
* Ground truth lives in an **id space** (Cityscapes: labelIds 0..33). Every prediction is mapped *into*
  that id space before it is counted, so the confusion matrix is the official one (34x34 for Cityscapes)
  and any coarser view (trainIds, categories) is an exact aggregation of it.
* An **EvalScheme** groups the id space into the evaluated classes (trainIds: one labelId each;
  categories: the evaluated labelIds of each category) and says which ids are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from app.core.domain.errors import InputError, SchemeError

RGB = tuple[int, int, int]
IGNORE = 255
"""Value used in evaluation-scheme maps for pixels that never count (void, unknown)."""


@dataclass(frozen=True)
class Label:
    """One row of the official Cityscapes label table (cityscapesscripts/helpers/labels.py)."""

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: RGB


# fmt: off
LABELS: tuple[Label, ...] = (
    Label("unlabeled",             0, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("ego vehicle",           1, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("rectification border",  2, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("out of roi",            3, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("static",                4, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("dynamic",               5, 255, "void",         0, False, True,  (111, 74, 0)),
    Label("ground",                6, 255, "void",         0, False, True,  (81, 0, 81)),
    Label("road",                  7,   0, "flat",         1, False, False, (128, 64, 128)),
    Label("sidewalk",              8,   1, "flat",         1, False, False, (244, 35, 232)),
    Label("parking",               9, 255, "flat",         1, False, True,  (250, 170, 160)),
    Label("rail track",           10, 255, "flat",         1, False, True,  (230, 150, 140)),
    Label("building",             11,   2, "construction", 2, False, False, (70, 70, 70)),
    Label("wall",                 12,   3, "construction", 2, False, False, (102, 102, 156)),
    Label("fence",                13,   4, "construction", 2, False, False, (190, 153, 153)),
    Label("guard rail",           14, 255, "construction", 2, False, True,  (180, 165, 180)),
    Label("bridge",               15, 255, "construction", 2, False, True,  (150, 100, 100)),
    Label("tunnel",               16, 255, "construction", 2, False, True,  (150, 120, 90)),
    Label("pole",                 17,   5, "object",       3, False, False, (153, 153, 153)),
    Label("polegroup",            18, 255, "object",       3, False, True,  (153, 153, 153)),
    Label("traffic light",        19,   6, "object",       3, False, False, (250, 170, 30)),
    Label("traffic sign",         20,   7, "object",       3, False, False, (220, 220, 0)),
    Label("vegetation",           21,   8, "nature",       4, False, False, (107, 142, 35)),
    Label("terrain",              22,   9, "nature",       4, False, False, (152, 251, 152)),
    Label("sky",                  23,  10, "sky",          5, False, False, (70, 130, 180)),
    Label("person",               24,  11, "human",        6, True,  False, (220, 20, 60)),
    Label("rider",                25,  12, "human",        6, True,  False, (255, 0, 0)),
    Label("car",                  26,  13, "vehicle",      7, True,  False, (0, 0, 142)),
    Label("truck",                27,  14, "vehicle",      7, True,  False, (0, 0, 70)),
    Label("bus",                  28,  15, "vehicle",      7, True,  False, (0, 60, 100)),
    Label("caravan",              29, 255, "vehicle",      7, True,  True,  (0, 0, 90)),
    Label("trailer",              30, 255, "vehicle",      7, True,  True,  (0, 0, 110)),
    Label("train",                31,  16, "vehicle",      7, True,  False, (0, 80, 100)),
    Label("motorcycle",           32,  17, "vehicle",      7, True,  False, (0, 0, 230)),
    Label("bicycle",              33,  18, "vehicle",      7, True,  False, (119, 11, 32)),
    Label("license plate",        -1,  -1, "vehicle",      7, False, True,  (0, 0, 142)),
)
# fmt: on

CATEGORY_NAMES: tuple[str, ...] = (
    "void",
    "flat",
    "construction",
    "object",
    "nature",
    "sky",
    "human",
    "vehicle",
)
# Cityscapes defines no category colours; these reuse each category's most common label colour.
CATEGORY_COLORS: tuple[RGB, ...] = (
    (0, 0, 0),
    (128, 64, 128),
    (70, 70, 70),
    (153, 153, 153),
    (107, 142, 35),
    (70, 130, 180),
    (220, 20, 60),
    (0, 0, 142),
)

LABEL_BY_ID: dict[int, Label] = {label.id: label for label in LABELS if label.id >= 0}
LABEL_BY_NAME: dict[str, Label] = {label.name: label for label in LABELS}
NUM_LABEL_IDS = 34
"""Size of the Cityscapes labelIds id space (0..33); the official confusion matrix is 34x34."""

# Official average instance sizes for iIoU weighting (evalPixelLevelSemanticLabeling.py, args.avgClassSize).
AVG_CLASS_SIZE: dict[str, float] = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}

# When a model predicts categories, each category is written into the labelIds space as this label, so
# that category-level metrics and the official tool (which reads labelIds PNGs) see the same thing.
CATEGORY_REPRESENTATIVE_ID: dict[str, int] = {
    "void": 0,
    "flat": 7,
    "construction": 11,
    "object": 17,
    "nature": 21,
    "sky": 23,
    "human": 24,
    "vehicle": 26,
}

_VOID_SYNONYMS = frozenset({"void", "unlabeled", "unlabelled", "background", "ignore", "other", "none"})


def normalize_name(name: str) -> str:
    """Compare class names loosely: case, underscores, dashes and repeated spaces do not matter."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


@dataclass(frozen=True)
class ClassScheme:
    """What the values of a label map mean: value i is class `names[i]`; `ignore_value` means 'no class'."""

    key: str
    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    ignore_value: int | None = None

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise SchemeError(f"scheme {self.key!r}: {len(self.names)} names but {len(self.colors)} colors")
        if not 0 < len(self.names) <= 255:
            raise SchemeError(f"scheme {self.key!r}: needs 1 to 255 classes, has {len(self.names)}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Built-in schemes are compared by identity (`is LABELIDS`): unpickled (on a Ray worker) they must
        # be this module's objects again, not equal copies.
        if BUILTIN_SCHEMES.get(self.key) is self:
            return scheme_by_key, (self.key,)
        return ClassScheme, (self.key, self.names, self.colors, self.ignore_value)

    def palette(self) -> np.ndarray:
        """A 256x3 uint8 lookup table: class value -> colour. Unknown values are black."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8)
        return lut

    def valid_values(self) -> np.ndarray:
        """A 256-entry bool table of the values a label map in this scheme may hold."""
        ok = np.zeros(256, dtype=bool)
        ok[: self.num_classes] = True
        if self.ignore_value is not None:
            ok[self.ignore_value] = True
        return ok


LABELIDS = ClassScheme(
    "labelids",
    tuple(LABEL_BY_ID[i].name for i in range(NUM_LABEL_IDS)),
    tuple(LABEL_BY_ID[i].color for i in range(NUM_LABEL_IDS)),
)
_TRAIN_LABELS = sorted((lb for lb in LABELS if 0 <= lb.train_id < 255), key=lambda lb: lb.train_id)
TRAINIDS = ClassScheme(
    "trainids",
    tuple(lb.name for lb in _TRAIN_LABELS),
    tuple(lb.color for lb in _TRAIN_LABELS),
    ignore_value=IGNORE,
)
CATEGORIES = ClassScheme("categories", CATEGORY_NAMES, CATEGORY_COLORS)
BUILTIN_SCHEMES: dict[str, ClassScheme] = {s.key: s for s in (LABELIDS, TRAINIDS, CATEGORIES)}


def scheme_by_key(key: str) -> ClassScheme:
    """The built-in scheme called `key` ('labelids', 'trainids', 'categories')."""
    try:
        return BUILTIN_SCHEMES[key.lower()]
    except KeyError:
        raise SchemeError(f"unknown class scheme {key!r}; known: {', '.join(BUILTIN_SCHEMES)}") from None


def load_custom_scheme(path: str | Path) -> ClassScheme:
    """Read a custom scheme: JSON `{"name": ..., "classes": [{"name": ..., "color": [r, g, b]}, ...],
    "ignore_value": 255}`, or a bare list of such class objects."""
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(source, f"cannot read class scheme: {exc}") from exc
    except RecursionError:
        raise InputError(source, "nested too deeply to be a class scheme") from None
    if isinstance(data, list):
        data = {"classes": data}
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise InputError(source, "a class scheme needs a 'classes' list")
    names: list[str] = []
    colors: list[RGB] = []
    for i, entry in enumerate(data["classes"]):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InputError(source, f"class {i} needs a 'name'")
        names.append(entry["name"])
        colors.append(_parse_color(entry.get("color"), i, source))
    ignore = data.get("ignore_value", IGNORE)
    try:
        return ClassScheme(f"custom:{data.get('name', source.stem)}", tuple(names), tuple(colors), ignore)
    except SchemeError as exc:
        raise InputError(source, str(exc)) from exc


def _parse_color(value: object, index: int, source: Path) -> RGB:
    if value is None:
        # A stable, well-spread default colour per index (golden-ratio hue walk).
        hue = (index * 0.618033988749895) % 1.0
        return _hsv_to_rgb(hue, 0.65, 0.95)
    if isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
    if (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(c, int) and 0 <= c <= 255 for c in value)
    ):
        return (value[0], value[1], value[2])
    raise InputError(source, f"class {index}: colour must be [r, g, b] in 0..255 or '#rrggbb', got {value!r}")


def _hsv_to_rgb(h: float, s: float, v: float) -> RGB:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (round(r * 255), round(g * 255), round(b * 255))


Granularity = Literal["labelids", "trainids", "categories", "custom"]


@dataclass(frozen=True)
class ClassMapping:
    """Maps a model's class values into the ground truth's id space (a 256-entry lookup table)."""

    source_names: tuple[str, ...]
    target: ClassScheme
    lut: np.ndarray = field(repr=False)
    granularity: Granularity

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """Model labels (uint8, model scheme) -> labels in the target id space (uint8). Returns `labels`
        itself when the table maps all its values to themselves (saved labelIds against labelIds)."""
        identical = self.__dict__.get("_identical_below")
        if identical is None:
            differs = np.flatnonzero(self.lut != np.arange(self.lut.size))
            identical = int(differs[0]) if differs.size else int(self.lut.size)
            object.__setattr__(self, "_identical_below", identical)
        if labels.dtype == np.uint8 and labels.size and int(labels.max()) < identical:
            return labels
        return np.take(self.lut, labels)

    def describe(self) -> list[tuple[str, str]]:
        """(model class, target class) pairs for display."""
        names = self.target.names
        return [
            (name, names[v] if (v := int(self.lut[i])) < len(names) else "(not evaluated)")
            for i, name in enumerate(self.source_names)
        ]


def map_by_name(model_names: Sequence[str], target: ClassScheme = LABELIDS) -> ClassMapping:
    """Map a model's class names into `target`'s id space by name; refuse names that do not map.

    For the Cityscapes id space (labelIds) a model may name labels ('car', 'traffic light') or
    categories ('vehicle', 'flat'); void-like names ('background', 'unlabeled') map to 'unlabeled'.
    """
    if not model_names:
        raise SchemeError("the model names no classes")
    if len(model_names) > 255:
        raise SchemeError(f"the model has {len(model_names)} classes; at most 255 are supported")
    wanted = [normalize_name(n) for n in model_names]
    lut = np.zeros(256, dtype=np.uint8)
    if target is LABELIDS:
        granularity = _cityscapes_granularity(wanted)
        label_ids = {normalize_name(name): i for i, name in enumerate(LABELIDS.names)}
        unmapped: list[str] = []
        for value, name in enumerate(wanted):
            if granularity == "categories" and name in CATEGORY_REPRESENTATIVE_ID:
                lut[value] = CATEGORY_REPRESENTATIVE_ID[name]
            elif name in label_ids:
                lut[value] = label_ids[name]
            elif name in _VOID_SYNONYMS:
                lut[value] = 0
            else:
                unmapped.append(model_names[value])
    else:
        granularity = "custom"
        lut[:] = target.num_classes  # values the model should never emit count as 'outside' (last column)
        target_ids = {normalize_name(name): i for i, name in enumerate(target.names)}
        unmapped = []
        void_value = target.num_classes
        for value, name in enumerate(wanted):
            if name in target_ids:
                lut[value] = target_ids[name]
            elif name in _VOID_SYNONYMS:
                lut[value] = void_value
            else:
                unmapped.append(model_names[value])
    if unmapped:
        known = ", ".join(target.names[:40])
        raise SchemeError(
            f"model class names not found in the {target.key} scheme: {', '.join(map(repr, unmapped))}. "
            f"Known names: {known}{', …' if target.num_classes > 40 else ''}. "
            "Rename them in the model manifest's class_names, or choose a custom scheme."
        )
    return ClassMapping(tuple(model_names), target, lut, granularity)


def _cityscapes_granularity(names: list[str]) -> Granularity:
    categories = set(CATEGORY_REPRESENTATIVE_ID)
    label_names = {normalize_name(lb.name) for lb in LABELS}
    meaningful = [n for n in names if n not in _VOID_SYNONYMS or n == "void"]
    # 'sky' is both a label and a category; a model is category-level when every name is a category.
    only_categories = all(n in categories for n in meaningful)
    if meaningful and only_categories and any(n not in label_names for n in meaningful):
        return "categories"
    evaluated_train = {normalize_name(lb.name) for lb in _TRAIN_LABELS}
    if set(names) - _VOID_SYNONYMS <= evaluated_train:
        return "trainids"
    return "labelids"


def builtin_mapping(scheme: ClassScheme) -> ClassMapping:
    """The mapping of a built-in scheme's values into labelIds (trainId 255 becomes 'unlabeled')."""
    mapping = map_by_name(scheme.names, LABELIDS)
    if scheme.ignore_value is not None:
        mapping.lut[scheme.ignore_value] = 0
    return mapping


@dataclass(frozen=True)
class EvalScheme:
    """The evaluated classes, each a group of ids of the ground truth's id space.

    `members[k]` are the id-space values counted as class k (only evaluated ids). Ids in no group are
    ignored in ground truth and count as 'wrong' when predicted on an evaluated pixel (as in the official
    Cityscapes evaluation).
    """

    key: str
    id_space: ClassScheme
    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    members: tuple[tuple[int, ...], ...]
    accepts: tuple[Granularity, ...]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # As ClassScheme's: the built-in evaluation schemes unpickle as this module's objects.
        if EVAL_SCHEMES.get(self.key) is self:
            return eval_scheme_by_key, (self.key,)
        return EvalScheme, (self.key, self.id_space, self.names, self.colors, self.members, self.accepts)

    @property
    def is_cityscapes(self) -> bool:
        return self.id_space is LABELIDS

    def id_to_class(self) -> np.ndarray:
        """256-entry uint8 table: id-space value -> evaluated class index, or IGNORE."""
        lut = np.full(256, IGNORE, dtype=np.uint8)
        for k, ids in enumerate(self.members):
            lut[list(ids)] = k
        return lut

    def evaluated_ids(self) -> np.ndarray:
        """All id-space values that belong to some evaluated class."""
        return np.array(sorted(i for ids in self.members for i in ids), dtype=np.int64)

    def check_model(self, mapping: ClassMapping, model_name: str) -> None:
        """Refuse to evaluate a model whose classes are coarser than this scheme (silent nonsense)."""
        if mapping.target is not self.id_space:
            raise SchemeError(
                f"model {model_name!r} predicts in the {mapping.target.key} id space but the evaluation "
                f"uses {self.id_space.key}"
            )
        if mapping.granularity not in self.accepts:
            raise SchemeError(
                f"model {model_name!r} predicts {mapping.granularity}; it cannot be evaluated on "
                f"{self.key} (choose: {', '.join(_coarsest_scheme_for(mapping.granularity))})"
            )


def _coarsest_scheme_for(granularity: Granularity) -> list[str]:
    return {"categories": ["categories"], "custom": ["custom"]}.get(granularity, ["trainids", "categories"])


EVAL_TRAINIDS = EvalScheme(
    "trainids",
    LABELIDS,
    TRAINIDS.names,
    TRAINIDS.colors,
    tuple((lb.id,) for lb in _TRAIN_LABELS),
    ("labelids", "trainids"),
)
EVAL_CATEGORIES = EvalScheme(
    "categories",
    LABELIDS,
    CATEGORY_NAMES,
    CATEGORY_COLORS,
    tuple(
        tuple(lb.id for lb in LABELS if lb.category == cat and lb.id >= 0 and not lb.ignore_in_eval)
        for cat in CATEGORY_NAMES
    ),
    ("labelids", "trainids", "categories"),
)
EVAL_SCHEMES: dict[str, EvalScheme] = {"trainids": EVAL_TRAINIDS, "categories": EVAL_CATEGORIES}


def eval_scheme_by_key(key: str) -> EvalScheme:
    """'trainids' (the 19 official classes) or 'categories' (the 8 categories, void never evaluated)."""
    try:
        return EVAL_SCHEMES[key.lower()]
    except KeyError:
        raise SchemeError(f"unknown evaluation scheme {key!r}; known: {', '.join(EVAL_SCHEMES)}") from None


def custom_eval_scheme(scheme: ClassScheme) -> EvalScheme:
    """Evaluate a custom scheme class by class; its ignore value never counts."""
    members = tuple((i,) for i in range(scheme.num_classes))
    return EvalScheme(scheme.key, scheme, scheme.names, scheme.colors, members, ("custom",))
