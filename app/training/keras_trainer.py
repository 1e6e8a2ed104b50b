"""VGG16-UNet baseline training with Keras 3 on TensorFlow (imported here only, when such a run starts).

The network is the teams' baseline (tests/keras_models.build_vgg16_unet, same layer names so that ImageNet
VGG16 weights load by name): keras.applications.VGG16 encoder (weights=None: never downloaded), four U-Net
up-sampling stages whose width `--width` scales, a 1x1 conv to the classes. Training uses logits and
SparseCategoricalCrossentropy(ignore_class=255); AdamW (weight decay 0.01, not on biases and BatchNorm),
global gradient-norm clipping, the same warmup + polynomial LR as SegFormer, mixed_bfloat16 where the CPU
computes bf16 natively. The saved model is a float32 copy ending in softmax (what the baseline files
hold), as `model.keras` with a manifest `model.json` naming the scheme and the normalization.

`--init FILE.h5`: ImageNet VGG16 weights the user has locally (keras' vgg16_..._notop.h5); the encoder
then expects keras' "caffe" preprocessing (BGR minus the ImageNet mean). Without it the inputs are
normalized "torch"-style (x/255, ImageNet mean/std), which a randomly initialised VGG trains well from.
`--init FILE.keras` starts from an earlier VGG16-UNet (layers matched by name and shape).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from app.core.domain.errors import InputError
from app.training.config import TrainConfig, use_bf16
from app.training.data import model_scheme
from app.training.loop import Say, replace_dir

VGG16_SKIPS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")
VGG16_BRIDGE = "block5_conv3"
DECODER_FILTERS = (512, 256, 128, 64)
WEIGHTS_FILE = "model.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"
MODEL_FILE = "model.keras"


def build_vgg16_unet(
    keras: Any,
    size: tuple[int | None, int | None],
    num_classes: int,
    width: float,
    activation: str | None,
    *,
    input_lambda: bool = False,
    name: str = "vgg16_unet",
) -> Any:
    """The baseline: keras.applications.VGG16 (include_top=False, weights=None: never downloads) as the
    encoder, four up-sampling stages (Conv2DTranspose 2x2 stride 2, concatenate the VGG block's output,
    two 3x3 conv + BN + ReLU) and a 1x1 conv to `num_classes` at the input resolution.

    size: (H, W), multiples of 16, or None for any size. width scales the decoder filters (512, 256, 128,
    64); the encoder is always the full VGG16. activation: "softmax" or None for logits. input_lambda puts
    a `Lambda(lambda x: x / 255.0)` in front, as some teams do (such a file only opens with safe_mode off).
    """
    layers = keras.layers
    inputs = keras.Input(shape=(size[0], size[1], 3), name="image")
    x = layers.Lambda(lambda t: t / 255.0, name="scale_pixels")(inputs) if input_lambda else inputs
    encoder = keras.applications.VGG16(include_top=False, weights=None, input_tensor=x)
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
    outputs = layers.Conv2D(num_classes, 1, activation=activation, name="classes", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def _copy_by_name(source: Any, target: Any) -> int:
    """Copy weights of same-named layers with the same shapes; returns how many layers were copied."""
    copied = 0
    wanted = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        other = wanted.get(layer.name)
        weights = layer.get_weights()
        if other is None or not weights:
            continue
        if [w.shape for w in weights] == [w.shape for w in other.get_weights()]:
            other.set_weights(weights)
            copied += 1
    return copied


class KerasTrainer:
    """The Trainer of app.training.loop for the VGG16-UNet."""

    def __init__(self, config: TrainConfig, say: Say = print) -> None:
        import tensorflow as tf  # type: ignore[import-untyped,unused-ignore]

        if config.threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(config.threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                # TensorFlow fixes its thread pools when first used in the process (e.g. a Keras model was
                # already opened): keep them rather than fail the training.
                say(f"--threads {config.threads} ignored: TensorFlow's thread pools were already set up")
        import keras  # type: ignore[import-untyped,unused-ignore]

        from app.inference.backends.keras_backend import NORMALIZATIONS

        keras.utils.set_random_seed(config.seed)
        self.tf, self.keras, self.config, self.say = tf, keras, config, say
        self.classes = model_scheme(config.scheme).num_classes
        self.bf16 = use_bf16(config.precision)
        self.model = self._build(None, "mixed_bfloat16" if self.bf16 else "float32")
        self.normalization = "torch"
        if config.init is not None:
            self.normalization = self._load_init(config.init)
        self.norm = NORMALIZATIONS[self.normalization]
        self.optimizer = keras.optimizers.AdamW(
            learning_rate=config.lr,
            weight_decay=config.weight_decay,
            global_clipnorm=config.clip_norm if config.clip_norm > 0 else None,
        )
        self.optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
        self._step = self._make_step()
        params = self.model.count_params() / 1e6
        say(
            f"VGG16-UNet (decoder width {config.width:g}): {params:.2f} M parameters, "
            f"{'mixed_bfloat16' if self.bf16 else 'float32'}, normalization {self.normalization}"
        )

    def _build(self, activation: str | None, policy: str) -> Any:
        previous = self.keras.mixed_precision.dtype_policy()
        self.keras.mixed_precision.set_dtype_policy(policy)
        try:
            return build_vgg16_unet(self.keras, self.config.size, self.classes, self.config.width, activation)
        finally:
            self.keras.mixed_precision.set_dtype_policy(previous)

    def _load_init(self, path: Path) -> str:
        """Weights from --init; returns the normalization they expect."""
        if not path.is_file():
            raise InputError(path, "--init must be a local .h5 (ImageNet VGG16, no top) or .keras file")
        if path.suffix.lower() == ".keras":
            source = self.keras.models.load_model(str(path), compile=False)
            manifest = path.with_suffix(".json")
            norm = "torch"
            if manifest.is_file():
                norm = (
                    json.loads(manifest.read_text(encoding="utf-8"))
                    .get("options", {})
                    .get("normalization", norm)
                )
        else:
            h, w = self.config.size
            source = self.keras.applications.VGG16(
                include_top=False, weights=str(path), input_shape=(h, w, 3)
            )
            norm = "caffe"
        copied = _copy_by_name(source, self.model)
        if copied == 0:
            raise InputError(path, "no layer of this file matches the VGG16-UNet (names and shapes)")
        self.say(f"initialised {copied} layers from {path} (normalization {norm})")
        return str(norm)

    def _make_step(self) -> Any:
        tf, model, loss_fn, optimizer = self.tf, self.model, self.loss, self.optimizer
        h, w = self.config.size
        signature = [tf.TensorSpec([None, h, w, 3], tf.float32), tf.TensorSpec([None, h, w], tf.int32)]

        @tf.function(input_signature=signature)
        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, tf.cast(logits, tf.float32))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        return step

    def _inputs(self, images: np.ndarray) -> np.ndarray:
        order = (2, 1, 0) if self.norm.channel_order == "BGR" else (0, 1, 2)
        x = images[..., order].astype(np.float32) * np.float32(self.norm.scale)
        x -= np.asarray(self.norm.mean, dtype=np.float32)
        x /= np.asarray(self.norm.std, dtype=np.float32)
        return x

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """One AdamW step at `lr`."""
        self.optimizer.learning_rate.assign(lr)
        loss = self._step(self._inputs(images), labels.astype(np.int32))
        return float(loss.numpy())

    def predict_scores(self, images: np.ndarray) -> np.ndarray:
        """Logits (N, K, h, w): their argmax is the saved softmax model's."""
        logits = self.model(self._inputs(images), training=False)
        return np.ascontiguousarray(np.asarray(logits, dtype=np.float32).transpose(0, 3, 1, 2))

    def save_model(self, directory: Path) -> Path:
        """float32 softmax copy as model.keras + manifest model.json, replacing `directory` atomically."""
        export = self._build("softmax", "float32")
        export.set_weights(self.model.get_weights())
        staging = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        staging.mkdir(parents=True, exist_ok=True)
        export.save(str(staging / MODEL_FILE))
        manifest = {
            "name": self.config.arch,
            "kind": "keras",
            "path": MODEL_FILE,
            "scheme": self.config.scheme,
            "options": {"normalization": self.normalization},
        }
        (staging / "model.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        replace_dir(staging, directory)
        return directory / MODEL_FILE

    def save_state(self, directory: Path) -> None:
        """Weights (.weights.h5) and every optimizer variable (moments, iteration count) for --resume."""
        self.model.save_weights(str(directory / f"tmp-{WEIGHTS_FILE}"))
        (directory / f"tmp-{WEIGHTS_FILE}").replace(directory / WEIGHTS_FILE)
        values = [np.asarray(v.numpy()) for v in self.optimizer.variables]
        with (directory / f"tmp-{OPTIMIZER_FILE}").open("wb") as handle:
            np.savez(handle, *values)  # stored as arr_0, arr_1, ... in the optimizer's variable order
        (directory / f"tmp-{OPTIMIZER_FILE}").replace(directory / OPTIMIZER_FILE)
        framework = {"framework": "keras", "normalization": self.normalization}
        (directory / "framework.json").write_text(json.dumps(framework) + "\n", encoding="utf-8")

    def load_state(self, directory: Path) -> None:
        """Restore save_state's weights, optimizer variables and normalization."""
        from app.inference.backends.keras_backend import NORMALIZATIONS

        if not (directory / WEIGHTS_FILE).is_file() or not (directory / OPTIMIZER_FILE).is_file():
            raise InputError(directory, f"not a VGG16-UNet training checkpoint (no {WEIGHTS_FILE})")
        self.model.load_weights(str(directory / WEIGHTS_FILE))
        self.optimizer.build(self.model.trainable_variables)
        with np.load(directory / OPTIMIZER_FILE) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(self.optimizer.variables):
            raise InputError(directory, "the optimizer state does not match this model")
        for variable, value in zip(self.optimizer.variables, values, strict=True):
            variable.assign(value)
        framework = json.loads((directory / "framework.json").read_text(encoding="utf-8"))
        self.normalization = str(framework.get("normalization", self.normalization))
        self.norm = NORMALIZATIONS[self.normalization]
