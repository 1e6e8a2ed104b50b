"""Builders of REAL Keras segmentation models for tests, benchmarks and later training code.

    build_vgg16_unet(input_shape, num_classes, width=1.0)   the baseline: VGG16 encoder + U-Net decoder
    dice_loss / iou_metric                                   custom loss/metric functions teams compile with

TensorFlow is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any

# The VGG16 blocks whose last conv feeds a decoder skip, from the finest (full resolution) to the coarsest.
VGG16_SKIPS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")
VGG16_BRIDGE = "block5_conv3"  # 1/16 resolution, 512 channels
DECODER_FILTERS = (512, 256, 128, 64)


def build_vgg16_unet(
    input_shape: tuple[int | None, int | None, int],
    num_classes: int,
    width: float = 1.0,
    *,
    activation: str | None = "softmax",
    input_lambda: bool = False,
    name: str = "vgg16_unet",
) -> Any:
    """A VGG16-UNet: tf.keras.applications.VGG16 (include_top=False, weights=None: never downloads) as the
    encoder, four up-sampling stages (Conv2DTranspose 2x2 stride 2, concatenate the VGG block's output,
    two 3x3 conv + BN + ReLU) and a 1x1 conv to `num_classes` at the input resolution.

    input_shape: (H, W, 3), H and W multiples of 16 (or None for any size). width scales the decoder
    filters (512, 256, 128, 64); the encoder is always the full VGG16. activation: "softmax" (the
    baseline), or None for logits. input_lambda puts a `Lambda(lambda x: x / 255.0)` in front, as some
    teams do for preprocessing (a file that only opens with safe_mode=False).
    """
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = layers.Lambda(lambda t: t / 255.0, name="scale_pixels")(inputs) if input_lambda else inputs
    encoder = tf.keras.applications.VGG16(include_top=False, weights=None, input_tensor=x)
    skips = [encoder.get_layer(n).output for n in VGG16_SKIPS]
    x = encoder.get_layer(VGG16_BRIDGE).output
    for stage, (skip, filters) in enumerate(zip(reversed(skips), DECODER_FILTERS, strict=True)):
        channels = max(4, round(filters * width))
        x = layers.Conv2DTranspose(channels, 2, strides=2, padding="same", name=f"up{stage}")(x)
        x = layers.Concatenate(name=f"skip{stage}")([x, skip])
        for i in range(2):
            x = layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"dec{stage}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"dec{stage}_bn{i}")(x)
            x = layers.Activation("relu", name=f"dec{stage}_relu{i}")(x)
    outputs = layers.Conv2D(num_classes, 1, activation=activation, name="classes")(x)
    return tf.keras.Model(inputs, outputs, name=name)


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
