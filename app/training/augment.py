"""Training augmentations applied to an image and its label map together (numpy + PIL, no extra package).

The seed's albumentations pipeline (horizontal flip, brightness/contrast, shift-scale-rotate, Gaussian
noise, Gaussian blur) is small enough to write here, and writing it keeps one rule visible: geometry moves
image and label by the same matrix, the label is resampled NEAREST (never interpolated, so it holds only
values it held before) and pixels shifted in from outside become 255 (ignored by the loss). Photometric
changes touch the image only.

Every random draw comes from the `rng` passed in, so a sample's augmentation depends only on that rng:
the loader seeds one rng per (seed, epoch, sample), which keeps runs reproducible under any thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

IGNORE = 255
IMAGE_FILL = (0, 0, 0)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; the defaults are close to albumentations' defaults for street scenes
    (rotation kept small: the horizon of a dash camera rarely tilts by 45 degrees)."""

    flip_p: float = 0.5
    color_p: float = 0.5
    brightness: float = 0.2  # additive, as a fraction of 255
    contrast: float = 0.2  # multiplicative around the image mean: 1 +- contrast
    ssr_p: float = 0.5
    shift: float = 0.0625  # fraction of the width / height
    scale: float = 0.1  # 1 +- scale
    rotate: float = 10.0  # degrees
    noise_p: float = 0.3
    noise_std: tuple[float, float] = (3.0, 8.0)
    blur_p: float = 0.2
    blur_radius: tuple[float, float] = (0.4, 1.2)

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all (validation, tests)."""
        return cls(flip_p=0.0, color_p=0.0, ssr_p=0.0, noise_p=0.0, blur_p=0.0)


def hflip(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right (Cityscapes has no left/right classes, so labels need no swap)."""
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(label[:, ::-1])


def brightness_contrast(image: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """(image - mean) * contrast + mean + brightness * 255, clipped to uint8."""
    img = image.astype(np.float32)
    mean = float(img.mean())
    out = (img - mean) * np.float32(contrast) + np.float32(mean + brightness * 255.0)
    return np.clip(out, 0, 255).astype(np.uint8)


def gaussian_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Add per-pixel, per-channel Gaussian noise of `std` grey levels."""
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(std)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def gaussian_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """PIL Gaussian blur of the image."""
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def ssr_matrix(size: tuple[int, int], shift: tuple[float, float], scale: float, angle: float) -> np.ndarray:
    """The forward 2x3 matrix of shift-scale-rotate in pixel coordinates (x right, y down).

    The image is scaled by `scale` and rotated by `angle` degrees (counter-clockwise as seen on screen)
    about its centre, then moved by shift = (dx, dy) as fractions of (width, height). A point p of the
    input lands at M[:, :2] @ p + M[:, 2].
    """
    height, width = size
    cx, cy = width / 2.0, height / 2.0
    theta = math.radians(angle)
    # y points down, so a counter-clockwise turn on screen is a clockwise one in (x, y) maths.
    cos, sin = math.cos(theta) * scale, math.sin(theta) * scale
    linear = np.array([[cos, sin], [-sin, cos]], dtype=np.float64)
    centre = np.array([cx, cy])
    offset = centre - linear @ centre + np.array([shift[0] * width, shift[1] * height])
    return np.hstack([linear, offset[:, None]])


def shift_scale_rotate(
    image: np.ndarray,
    label: np.ndarray,
    shift: tuple[float, float],
    scale: float,
    angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp image (bilinear) and label (nearest) by the same ssr_matrix; uncovered label pixels -> 255."""
    height, width = label.shape
    forward = ssr_matrix((height, width), shift, scale, angle)
    # PIL wants the inverse map: output pixel -> input position.
    inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 1.0]]))[:2]
    coeffs = tuple(float(v) for v in inverse.ravel())
    size = (width, height)
    warped = Image.fromarray(image).transform(
        size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR, fillcolor=IMAGE_FILL
    )
    warped_label = Image.fromarray(label).transform(
        size, Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST, fillcolor=IGNORE
    )
    return np.asarray(warped), np.asarray(warped_label)


def augment(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One random augmentation of (image HxWx3 uint8, label HxW uint8) following `config`."""
    if rng.random() < config.flip_p:
        image, label = hflip(image, label)
    if rng.random() < config.ssr_p:
        shift = (
            float(rng.uniform(-config.shift, config.shift)),
            float(rng.uniform(-config.shift, config.shift)),
        )
        scale = float(rng.uniform(1 - config.scale, 1 + config.scale))
        angle = float(rng.uniform(-config.rotate, config.rotate))
        image, label = shift_scale_rotate(image, label, shift, scale, angle)
    if rng.random() < config.color_p:
        brightness = float(rng.uniform(-config.brightness, config.brightness))
        contrast = float(rng.uniform(1 - config.contrast, 1 + config.contrast))
        image = brightness_contrast(image, brightness, contrast)
    if rng.random() < config.blur_p:
        image = gaussian_blur(image, float(rng.uniform(*config.blur_radius)))
    if rng.random() < config.noise_p:
        image = gaussian_noise(image, float(rng.uniform(*config.noise_std)), rng)
    return image, label
