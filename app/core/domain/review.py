"""Review data of one image: flags, free tags, a note and commented region boxes.

Region boxes follow cityscapesScripts' correction boxes (a rectangle x, y, w, h in pixels plus a text).
Everything here is a frozen dataclass: the GUI derives a new value (`with_flag`, `with_box`, ...) and hands
it to the project store, which saves it. `to_dict` / `from_dict` are the JSON form (validated on the way
in); `reviews_to_csv` / `reviews_to_json` are the exports.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_FLAGS: tuple[str, ...] = ("to-correct", "to-review", "resolved", "question")
MAX_NAME_LENGTH = 40
MAX_TAG_LENGTH = 64
MAX_TEXT_LENGTH = 10_000
_FLAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9 _.-]*")
CSV_COLUMNS: tuple[str, ...] = ("key", "flags", "tags", "note", "boxes")


def normalize_flag(name: str) -> str:
    """A flag name as stored: stripped and lower-cased; letters, digits, space, '_', '-', '.' only."""
    if not isinstance(name, str):
        raise ValueError(f"a flag name must be text, got {type(name).__name__}")
    flag = " ".join(name.split()).lower()
    if not flag or len(flag) > MAX_NAME_LENGTH or not _FLAG_PATTERN.fullmatch(flag):
        raise ValueError(
            f"bad flag name {name!r}: 1..{MAX_NAME_LENGTH} characters of a-z, 0-9, space, '_', '-', '.'"
        )
    return flag


def normalize_tag(tag: str) -> str:
    """A tag as stored: stripped, inner whitespace collapsed; any text except ';' and line breaks (the
    CSV export joins tags with ';')."""
    if not isinstance(tag, str):
        raise ValueError(f"a tag must be text, got {type(tag).__name__}")
    text = " ".join(tag.split())
    if not text or len(text) > MAX_TAG_LENGTH or ";" in text:
        raise ValueError(f"bad tag {tag!r}: 1..{MAX_TAG_LENGTH} characters, no ';'")
    return text


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class RegionBox:
    """A commented rectangle on the image (pixels; x, y is the top-left corner)."""

    x: int
    y: int
    w: int
    h: int
    text: str = ""

    def __post_init__(self) -> None:
        for name in ("x", "y", "w", "h"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"box {name} must be an integer, got {value!r}")
        if self.x < 0 or self.y < 0 or self.w <= 0 or self.h <= 0:
            raise ValueError(f"box ({self.x}, {self.y}, {self.w}, {self.h}) needs x, y >= 0 and w, h > 0")
        if not isinstance(self.text, str) or len(self.text) > MAX_TEXT_LENGTH:
            raise ValueError(f"box text must be text of at most {MAX_TEXT_LENGTH} characters")

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegionBox:
        """Validate and build; raises ValueError saying what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a box must be an object, got {type(data).__name__}")
        unknown = set(data) - {"x", "y", "w", "h", "text"}
        if unknown:
            raise ValueError(f"unknown box fields: {', '.join(sorted(unknown))}")
        try:
            return cls(data["x"], data["y"], data["w"], data["h"], data.get("text", ""))
        except KeyError as exc:
            raise ValueError(f"box lacks {exc.args[0]!r}") from None


@dataclass(frozen=True)
class ImageReview:
    """Everything a reviewer noted about one image (`key` is the dataset's SampleRef.key)."""

    key: str
    flags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    note: str = ""
    boxes: tuple[RegionBox, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("a review needs the image key")
        for flag in self.flags:
            if normalize_flag(flag) != flag:
                raise ValueError(f"flag {flag!r} is not normalized (use normalize_flag)")
        for tag in self.tags:
            if normalize_tag(tag) != tag:
                raise ValueError(f"tag {tag!r} is not normalized (use normalize_tag)")
        if len(set(self.flags)) != len(self.flags) or len(set(self.tags)) != len(self.tags):
            raise ValueError("flags and tags must not repeat")
        if not isinstance(self.note, str) or len(self.note) > MAX_TEXT_LENGTH:
            raise ValueError(f"the note must be text of at most {MAX_TEXT_LENGTH} characters")
        if not all(isinstance(b, RegionBox) for b in self.boxes):
            raise ValueError("boxes must be RegionBox values")

    @property
    def is_empty(self) -> bool:
        """Nothing noted: the store deletes such a review instead of keeping an empty row."""
        return not (self.flags or self.tags or self.note or self.boxes)

    def has_flag(self, name: str) -> bool:
        return normalize_flag(name) in self.flags

    def with_flag(self, name: str) -> ImageReview:
        return replace(self, flags=_unique((*self.flags, normalize_flag(name))))

    def without_flag(self, name: str) -> ImageReview:
        flag = normalize_flag(name)
        return replace(self, flags=tuple(f for f in self.flags if f != flag))

    def toggled_flag(self, name: str) -> ImageReview:
        return self.without_flag(name) if self.has_flag(name) else self.with_flag(name)

    def with_tag(self, tag: str) -> ImageReview:
        return replace(self, tags=_unique((*self.tags, normalize_tag(tag))))

    def without_tag(self, tag: str) -> ImageReview:
        text = normalize_tag(tag)
        return replace(self, tags=tuple(t for t in self.tags if t != text))

    def with_note(self, note: str) -> ImageReview:
        return replace(self, note=note)

    def with_box(self, box: RegionBox) -> ImageReview:
        return replace(self, boxes=(*self.boxes, box))

    def replacing_box(self, index: int, box: RegionBox) -> ImageReview:
        boxes = list(self.boxes)
        boxes[index] = box  # IndexError for a wrong index, as for any sequence
        return replace(self, boxes=tuple(boxes))

    def without_box(self, index: int) -> ImageReview:
        boxes = list(self.boxes)
        del boxes[index]
        return replace(self, boxes=tuple(boxes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "flags": list(self.flags),
            "tags": list(self.tags),
            "note": self.note,
            "boxes": [b.to_dict() for b in self.boxes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageReview:
        """Validate and build (flags and tags are normalized); raises ValueError saying what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a review must be an object, got {type(data).__name__}")
        unknown = set(data) - {"key", "flags", "tags", "note", "boxes"}
        if unknown:
            raise ValueError(f"unknown review fields: {', '.join(sorted(unknown))}")
        lists = {name: data.get(name, []) for name in ("flags", "tags", "boxes")}
        for name, value in lists.items():
            if not isinstance(value, list):
                raise ValueError(f"review {name} must be a list, got {type(value).__name__}")
        return cls(
            key=data.get("key", ""),
            flags=_unique(normalize_flag(f) for f in lists["flags"]),
            tags=_unique(normalize_tag(t) for t in lists["tags"]),
            note=data.get("note", ""),
            boxes=tuple(RegionBox.from_dict(b) for b in lists["boxes"]),
        )


@dataclass(frozen=True)
class FlagVocabulary:
    """The flags offered in the GUI: the defaults plus the user's own, in order."""

    names: tuple[str, ...] = DEFAULT_FLAGS

    def __post_init__(self) -> None:
        if any(normalize_flag(n) != n for n in self.names) or len(set(self.names)) != len(self.names):
            raise ValueError(f"flag names must be normalized and unique: {self.names}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def with_flag(self, name: str) -> FlagVocabulary:
        return FlagVocabulary(_unique((*self.names, normalize_flag(name))))

    def unknown(self, review: ImageReview) -> tuple[str, ...]:
        """Flags of `review` this vocabulary lacks."""
        return tuple(f for f in review.flags if f not in self.names)


def reviews_to_json(reviews: Iterable[ImageReview], vocabulary: FlagVocabulary | None = None) -> str:
    """All reviews (sorted by key) and the flag vocabulary as one JSON document."""
    return json.dumps(
        {
            "flags": list((vocabulary or FlagVocabulary()).names),
            "images": [r.to_dict() for r in sorted(reviews, key=lambda r: r.key)],
        },
        indent=2,
        ensure_ascii=False,
    )


def reviews_from_json(text: str) -> tuple[FlagVocabulary, list[ImageReview]]:
    """Parse what `reviews_to_json` wrote; raises ValueError saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError("expected an object with an 'images' list")
    flags = data.get("flags", list(DEFAULT_FLAGS))
    if not isinstance(flags, list):
        raise ValueError("'flags' must be a list")
    reviews = [ImageReview.from_dict(item) for item in data["images"]]
    vocabulary = FlagVocabulary(_unique(normalize_flag(f) for f in flags))
    for review in reviews:
        for flag in vocabulary.unknown(review):
            vocabulary = vocabulary.with_flag(flag)
    return vocabulary, reviews


def reviews_to_csv(reviews: Iterable[ImageReview]) -> str:
    """One row per image: key, flags and tags joined by ';', the note, the boxes as JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for review in sorted(reviews, key=lambda r: r.key):
        boxes = json.dumps([b.to_dict() for b in review.boxes], ensure_ascii=False) if review.boxes else ""
        writer.writerow([review.key, ";".join(review.flags), ";".join(review.tags), review.note, boxes])
    return buffer.getvalue()
