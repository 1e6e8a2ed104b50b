"""resize_rgb: resizing in two bands on two threads gives PIL's whole-image resize bit for bit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from app.inference.preprocess import resize_rgb


def _pil(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((1024, 2048), (128, 256)),  # the demo models' x8
        ((1024, 2048), (512, 1024)),
        ((1200, 1600), (300, 375)),  # whole factor vertically, not horizontally
        ((1024, 1024), (341, 512)),  # not a whole factor: one resize
        ((1024, 2048), (1024, 1000)),  # width only
        ((1024, 1024), (2048, 2048)),  # upscaling
        ((1024, 1024), (3, 5)),  # odd band heights
    ],
)
def test_banded_resize_equals_pillow(shape: tuple[int, int], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape) + sum(size))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = _pil(image, size)
    got = resize_rgb(image, size)
    assert got.shape == (*size, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


def test_concurrent_banded_resizes() -> None:
    rng = np.random.default_rng(9)
    images = [rng.integers(0, 256, (1024, 1536, 3), dtype=np.uint8) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda im: resize_rgb(im, (256, 384)), images))
    for image, got in zip(images, results, strict=True):
        np.testing.assert_array_equal(got, _pil(image, (256, 384)))
