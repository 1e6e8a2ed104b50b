"""Builders of REAL Keras segmentation models for tests, benchmarks and later training code.

    build_vgg16_unet(input_shape, num_classes, width=1.0)   the baseline: VGG16 encoder + U-Net decoder
    dice_loss / iou_metric                                   custom loss/metric functions teams compile with

TensorFlow is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any


def build_vgg16_unet(
    input_shape: tuple[int | None, int | None, int],
    num_classes: int,
    width: float = 1.0,
    *,
    activation: str | None = "softmax",
    input_lambda: bool = False,
    name: str = "vgg16_unet",
) -> Any:
    """The app's VGG16-UNet (app/training/keras_trainer.build_vgg16_unet) with test-friendly defaults:
    input_shape (H, W, 3), softmax output."""
    import keras

    from app.training.keras_trainer import build_vgg16_unet as build

    size = (input_shape[0], input_shape[1])
    return build(keras, size, num_classes, width, activation, input_lambda=input_lambda, name=name)


def dice_loss(y_true: Any, y_pred: Any) -> Any:
    """Soft multi-class Dice loss on one-hot targets (N, H, W, K): 1 - mean over classes of Dice."""
    import tensorflow as tf

    y_true = tf.cast(y_true, y_pred.dtype)
    inter = tf.reduce_sum(y_true * y_pred, axis=(0, 1, 2))
    total = tf.reduce_sum(y_true + y_pred, axis=(0, 1, 2))
    return 1.0 - tf.reduce_mean((2.0 * inter + 1.0) / (total + 1.0))


def iou_metric(y_true: Any, y_pred: Any) -> Any:
    """Mean soft IoU over classes on one-hot targets (N, H, W, K)."""
    import tensorflow as tf

    y_true = tf.cast(y_true, y_pred.dtype)
    inter = tf.reduce_sum(y_true * y_pred, axis=(0, 1, 2))
    union = tf.reduce_sum(y_true + y_pred, axis=(0, 1, 2)) - inter
    return tf.reduce_mean((inter + 1.0) / (union + 1.0))
