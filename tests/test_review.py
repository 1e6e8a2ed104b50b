"""Review data: flags, tags, note, region boxes; validation; dict / JSON / CSV forms."""

from __future__ import annotations

import csv
import io
import json

import pytest

from app.core.domain.review import (
    DEFAULT_FLAGS,
    FlagVocabulary,
    ImageReview,
    RegionBox,
    normalize_flag,
    normalize_tag,
    reviews_from_json,
    reviews_to_csv,
    reviews_to_json,
)


def sample() -> ImageReview:
    return (
        ImageReview("val/frankfurt/frankfurt_000000_000294")
        .with_flag("to-correct")
        .with_flag("Question")
        .with_tag("night")
        .with_tag("  rain   heavy ")
        .with_note('pole mislabeled as "sign"; check, please')
        .with_box(RegionBox(10, 20, 30, 40, "rider → person"))
    )


def test_derived_values_and_round_trip() -> None:
    review = sample()
    assert review.flags == ("to-correct", "question")
    assert review.tags == ("night", "rain heavy")
    assert review.has_flag("TO-CORRECT") and not review.is_empty
    assert ImageReview.from_dict(json.loads(json.dumps(review.to_dict()))) == review
    toggled = review.toggled_flag("question").toggled_flag("resolved")
    assert toggled.flags == ("to-correct", "resolved")
    assert review.with_flag("to-correct") == review  # no duplicates
    moved = review.replacing_box(0, RegionBox(0, 0, 5, 5))
    assert moved.boxes == (RegionBox(0, 0, 5, 5),) and review.boxes[0].x == 10  # frozen: original kept
    cleared = review.without_box(0).without_tag("night").without_tag("rain heavy")
    assert cleared.without_flag("to-correct").without_flag("question").with_note("").is_empty


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"key": ""}, "key"),
        ({"key": "a", "flags": "to-correct"}, "list"),
        ({"key": "a", "flags": ["bad/flag"]}, "flag name"),
        ({"key": "a", "tags": ["a;b"]}, "tag"),
        ({"key": "a", "boxes": [{"x": 0, "y": 0, "w": 0, "h": 3}]}, "w, h > 0"),
        ({"key": "a", "boxes": [{"x": 1.5, "y": 0, "w": 2, "h": 3}]}, "integer"),
        ({"key": "a", "boxes": [{"x": 1, "y": 0, "w": 2}]}, "lacks 'h'"),
        ({"key": "a", "colour": "red"}, "unknown review fields"),
        ({"key": "a", "note": 3}, "note"),
    ],
)
def test_from_dict_refuses_bad_data(data, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        ImageReview.from_dict(data)


def test_direct_construction_must_be_normalized() -> None:
    with pytest.raises(ValueError, match="normalized"):
        ImageReview("k", flags=("To-Correct",))
    with pytest.raises(ValueError, match="repeat"):
        ImageReview("k", tags=("a", "a"))
    assert normalize_flag("  To   Review ") == "to review"
    assert normalize_tag(" a\tb ") == "a b"
    with pytest.raises(ValueError):
        normalize_flag("x" * 41)


def test_vocabulary_is_user_extendable() -> None:
    vocabulary = FlagVocabulary()
    assert vocabulary.names == DEFAULT_FLAGS
    extended = vocabulary.with_flag("Occlusion")
    assert "occlusion" in extended and extended.names[: len(DEFAULT_FLAGS)] == DEFAULT_FLAGS
    assert vocabulary.unknown(ImageReview("k").with_flag("occlusion")) == ("occlusion",)


def test_json_and_csv_exports() -> None:
    reviews = [sample(), ImageReview("a/first").with_flag("resolved")]
    vocabulary, parsed = reviews_from_json(reviews_to_json(reviews, FlagVocabulary().with_flag("extra")))
    assert parsed == sorted(reviews, key=lambda r: r.key)
    assert "extra" in vocabulary
    rows = list(csv.DictReader(io.StringIO(reviews_to_csv(reviews))))
    assert [r["key"] for r in rows] == ["a/first", sample().key]
    assert rows[1]["flags"] == "to-correct;question" and rows[1]["tags"] == "night;rain heavy"
    assert rows[1]["note"] == sample().note  # quotes and ';' survive the CSV quoting
    assert json.loads(rows[1]["boxes"]) == [{"x": 10, "y": 20, "w": 30, "h": 40, "text": "rider → person"}]
    with pytest.raises(ValueError, match="images"):
        reviews_from_json('{"flags": []}')
