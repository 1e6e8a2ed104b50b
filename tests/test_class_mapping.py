"""ClassMapping.apply: the lookup table applied, and the identity case returned without a copy."""

from __future__ import annotations

import numpy as np

from app.core.domain.labels import CATEGORIES, LABELIDS, TRAINIDS, builtin_mapping


def test_apply_equals_the_lookup_table() -> None:
    rng = np.random.default_rng(0)
    for scheme in (TRAINIDS, CATEGORIES, LABELIDS):
        mapping = builtin_mapping(scheme)
        labels = rng.integers(0, len(scheme.names), (40, 60), dtype=np.uint8)
        np.testing.assert_array_equal(mapping.apply(labels), mapping.lut[labels])
        wide = labels.astype(np.int64)
        np.testing.assert_array_equal(mapping.apply(wide), mapping.lut[wide])


def test_identity_mapping_returns_the_labels_and_out_of_range_values_still_mapped() -> None:
    mapping = builtin_mapping(LABELIDS)
    labels = np.random.default_rng(1).integers(0, 34, (30, 50), dtype=np.uint8)
    np.testing.assert_array_equal(mapping.lut[:34], np.arange(34))  # labelIds onto themselves
    assert mapping.apply(labels) is labels
    high = labels.copy()
    high[0, 0] = 250
    np.testing.assert_array_equal(mapping.apply(high), mapping.lut[high])
