"""Builders of tiny but REAL ONNX segmentation models for tests and benchmarks (onnx.helper, no torch).

    make_onnx_segmenter(path, class_names, ...)  a working model: random convs or a colour-centroid classifier
    centroids_from_colors(colors, ...)           class centroids (normalized input space) from RGB colours
    make_wrong_rank_model / make_two_channel_model / make_no_input_model /
    make_text_file / make_truncated_model        deliberately broken files for load-time error tests

The "centroid" model averages the input over downsample x downsample blocks, then a 1x1 conv with weights
2*mu_k and bias -|mu_k|^2 scores every class: argmax_k (2 mu_k.x - |mu_k|^2) = argmin_k |x - mu_k|^2, so it
labels each block with the class whose colour is nearest — meaningful segmentations of synthetic scenes
painted with the class colours.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Output = Literal["logits", "probabilities", "labels"]


def centroids_from_colors(
    colors: Sequence[Sequence[int]],
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    scale: float = 1.0 / 255.0,
    channel_order: str = "RGB",
) -> np.ndarray:
    """(K, 3) float32 centroids in the model's normalized input space for RGB uint8 class colours."""
    rgb = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    if channel_order == "BGR":
        rgb = rgb[:, ::-1]
    return ((rgb * scale - np.asarray(mean)) / np.asarray(std)).astype(np.float32)


def make_onnx_segmenter(
    path: str | Path,
    class_names: Sequence[str],
    *,
    input_size: tuple[int, int] | None = (64, 128),
    output: Output = "logits",
    layout: Literal["NCHW", "NHWC"] = "NCHW",
    downsample: int = 4,
    weights: Literal["random", "centroid"] = "random",
    centroids: np.ndarray | Sequence[Sequence[float]] | None = None,
    seed: int = 0,
    metadata: bool | Mapping[str, str] = True,
    opset: int = 17,
    input_dtype: Literal["float32", "uint8"] = "float32",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    scale: float = 1.0 / 255.0,
    channel_order: Literal["RGB", "BGR"] = "RGB",
    hidden: int = 8,
    depth: int = 0,
    labels_keepdims: bool = False,
) -> Path:
    """Write a small ONNX segmentation model to `path` and return the path.

    input_size: (H, W) fixed, or None for dynamic H/W (batch stays 1).
    output: "logits" (N,K,h,w), "probabilities" (Softmax) or "labels" (ArgMax + Cast uint8: N,h,w, or
        N,1,h,w with labels_keepdims). NHWC layout transposes input and logits/probabilities.
    weights: "random" = log2(downsample) stride-2 3x3 convs + Relu (a stride-1 one when downsample is 1),
        then `depth` more 3x3 convs + Relu at the final resolution (to give benchmarks a realistic cost),
        then a 1x1 conv to K classes; "centroid" = AveragePool(downsample) then the nearest-centroid 1x1
        conv; `centroids` (K,3) are required, in the normalized input space (see centroids_from_colors).
    input_dtype: "uint8" puts Cast + scale/mean/std inside the graph, so the app must feed raw pixels.
    metadata: True writes the seglens.* metadata_props; a mapping is merged over them (an empty value
        removes a key); False writes none.
    """
    num_classes = len(class_names)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    x = "image"
    if input_dtype == "uint8":
        x = _normalize_in_graph(nodes, inits, x, layout, mean, std, scale)
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["x_nchw"], perm=[0, 3, 1, 2]))
        x = "x_nchw"
    if weights == "centroid":
        if centroids is None:
            raise ValueError("weights='centroid' needs centroids (K, 3) in the normalized input space")
        x = _centroid_head(nodes, inits, x, np.asarray(centroids, dtype=np.float32), num_classes, downsample)
    else:
        rng = np.random.default_rng(seed)
        x = _random_body(nodes, inits, x, num_classes, downsample, hidden, depth, rng)
    out_name, out_type, out_shape = _output_head(nodes, x, output, layout, num_classes, labels_keepdims)

    in_type = TensorProto.UINT8 if input_dtype == "uint8" else TensorProto.FLOAT
    h, w = input_size if input_size is not None else ("height", "width")
    in_shape: list[int | str] = [1, 3, h, w] if layout == "NCHW" else [1, h, w, 3]
    graph = helper.make_graph(
        nodes,
        "seglens_test_segmenter",
        [helper.make_tensor_value_info("image", in_type, in_shape)],
        [helper.make_tensor_value_info(out_name, out_type, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="seglens-modelzoo"
    )
    model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    if metadata is not False:
        props = _metadata(class_names, input_size, output, mean, std, scale, channel_order)
        if isinstance(metadata, Mapping):
            props.update(metadata)
        helper.set_model_props(model, {k: v for k, v in props.items() if v != ""})
    onnx.checker.check_model(model, full_check=True)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def _metadata(
    class_names: Sequence[str],
    input_size: tuple[int, int] | None,
    output: str,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float,
    channel_order: str,
) -> dict[str, str]:
    props = {
        "seglens.class_names": json.dumps(list(class_names)),
        "seglens.mean": json.dumps([float(v) for v in mean]),
        "seglens.std": json.dumps([float(v) for v in std]),
        "seglens.scale": repr(float(scale)),
        "seglens.channel_order": channel_order,
        "seglens.output": output,
    }
    if input_size is not None:
        props["seglens.input_size"] = f"{input_size[0]}x{input_size[1]}"
        props["seglens.resize"] = "fixed"
    else:
        props["seglens.resize"] = "any"
    return props


def _const(inits: list[onnx.TensorProto], name: str, value: np.ndarray) -> str:
    inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
    return name


def _normalize_in_graph(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    x: str,
    layout: str,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float,
) -> str:
    shape = (1, 3, 1, 1) if layout == "NCHW" else (1, 1, 1, 3)
    _const(inits, "norm_scale", np.array(scale, dtype=np.float32))
    _const(inits, "norm_mean", np.asarray(mean, dtype=np.float32).reshape(shape))
    _const(inits, "norm_std", np.asarray(std, dtype=np.float32).reshape(shape))
    nodes.append(helper.make_node("Cast", [x], ["x_f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Mul", ["x_f", "norm_scale"], ["x_scaled"]))
    nodes.append(helper.make_node("Sub", ["x_scaled", "norm_mean"], ["x_centred"]))
    nodes.append(helper.make_node("Div", ["x_centred", "norm_std"], ["x_norm"]))
    return "x_norm"


def _centroid_head(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    x: str,
    centroids: np.ndarray,
    num_classes: int,
    downsample: int,
) -> str:
    if centroids.shape != (num_classes, 3):
        raise ValueError(f"centroids must be ({num_classes}, 3), got {centroids.shape}")
    if downsample > 1:
        # ceil_mode keeps the border when the size is not a multiple; partial windows average valid pixels.
        nodes.append(
            helper.make_node(
                "AveragePool",
                [x],
                ["pooled"],
                kernel_shape=[downsample] * 2,
                strides=[downsample] * 2,
                ceil_mode=1,
            )
        )
        x = "pooled"
    w = _const(inits, "centroid_w", (2.0 * centroids).reshape(num_classes, 3, 1, 1).astype(np.float32))
    b = _const(inits, "centroid_b", (-(centroids.astype(np.float64) ** 2).sum(axis=1)).astype(np.float32))
    nodes.append(helper.make_node("Conv", [x, w, b], ["logits_nchw"], kernel_shape=[1, 1]))
    return "logits_nchw"


def _random_body(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    x: str,
    num_classes: int,
    downsample: int,
    hidden: int,
    depth: int,
    rng: np.random.Generator,
) -> str:
    steps = round(math.log2(downsample))
    if 2**steps != downsample:
        raise ValueError(f"random weights need a power-of-two downsample, got {downsample}")
    strides = ([2] * steps or [1]) + [1] * depth
    channels = 3
    for i, stride in enumerate(strides):
        w = rng.normal(0.0, math.sqrt(2.0 / (9 * channels)), (hidden, channels, 3, 3)).astype(np.float32)
        b = rng.normal(0.0, 0.1, hidden).astype(np.float32)
        _const(inits, f"conv{i}_w", w)
        _const(inits, f"conv{i}_b", b)
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"conv{i}_w", f"conv{i}_b"],
                [f"conv{i}"],
                kernel_shape=[3, 3],
                strides=[stride, stride],
                pads=[1, 1, 1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        x, channels = f"relu{i}", hidden
    w = rng.normal(0.0, math.sqrt(1.0 / channels), (num_classes, channels, 1, 1)).astype(np.float32)
    _const(inits, "head_w", w)
    _const(inits, "head_b", rng.normal(0.0, 0.1, num_classes).astype(np.float32))
    nodes.append(helper.make_node("Conv", [x, "head_w", "head_b"], ["logits_nchw"], kernel_shape=[1, 1]))
    return "logits_nchw"


def _output_head(
    nodes: list[onnx.NodeProto],
    x: str,
    output: str,
    layout: str,
    num_classes: int,
    labels_keepdims: bool,
) -> tuple[str, int, list[int | str]]:
    if output == "labels":
        keep = 1 if labels_keepdims else 0
        nodes.append(helper.make_node("ArgMax", [x], ["argmax"], axis=1, keepdims=keep))
        nodes.append(helper.make_node("Cast", ["argmax"], ["labels"], to=TensorProto.UINT8))
        shape: list[int | str] = [1, 1, "h", "w"] if keep else [1, "h", "w"]
        return "labels", TensorProto.UINT8, shape
    if output == "probabilities":
        nodes.append(helper.make_node("Softmax", [x], ["probs_nchw"], axis=1))
        x = "probs_nchw"
    elif output != "logits":
        raise ValueError(f"unknown output kind {output!r}")
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["scores"], perm=[0, 2, 3, 1]))
        return "scores", TensorProto.FLOAT, [1, "h", "w", num_classes]
    nodes.append(helper.make_node("Identity", [x], ["scores"]))
    return "scores", TensorProto.FLOAT, [1, num_classes, "h", "w"]


# --- deliberately broken files ---------------------------------------------------------------------


def window_model_pair(root: Path) -> tuple[Path, Path]:
    """The two models the window tests open: A gives trainId logits at a fixed 64x128 input, B gives
    labels at any input size."""
    from app.core.domain.labels import TRAINIDS

    a = make_onnx_segmenter(root / "alpha.onnx", TRAINIDS.names, input_size=(64, 128), seed=3)
    b = make_onnx_segmenter(root / "beta.onnx", TRAINIDS.names, input_size=None, seed=4, output="labels")
    return a, b


def make_wrong_rank_model(path: str | Path, num_classes: int = 19) -> Path:
    """A valid ONNX model whose output is rank 2 (N, K): a classifier, not a segmenter."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(num_classes, 3, 1, 1)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([1, num_classes], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"], kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["conv"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "shape"], ["scores"]),
    ]
    return _save_graph(path, nodes, inits, [1, 3, 32, 32], TensorProto.FLOAT, [1, num_classes])


def make_two_channel_model(path: str | Path, num_classes: int = 19) -> Path:
    """A valid ONNX model whose input has 2 channels (N, 2, H, W)."""
    w = np.random.default_rng(0).normal(size=(num_classes, 2, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["image", "w"], ["scores"], kernel_shape=[1, 1])]
    inits = [numpy_helper.from_array(w, "w")]
    return _save_graph(path, nodes, inits, [1, 2, 32, 32], TensorProto.FLOAT, [1, num_classes, 32, 32])


def make_no_input_model(path: str | Path, num_classes: int = 19) -> Path:
    """A valid ONNX model with no graph input at all (a constant output)."""
    value = np.zeros((1, num_classes, 8, 8), dtype=np.float32)
    nodes = [
        helper.make_node("Constant", [], ["scores"], value=numpy_helper.from_array(value, "const_value"))
    ]
    return _save_graph(path, nodes, [], None, TensorProto.FLOAT, [1, num_classes, 8, 8])


def make_text_file(path: str | Path, text: str = "this is not an ONNX model\n") -> Path:
    """A plain text file (with whatever suffix the caller gives it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def make_truncated_model(path: str | Path, source: str | Path) -> Path:
    """The first half of the bytes of the valid model `source` (an unparsable protobuf)."""
    data = Path(source).read_bytes()
    target = Path(path)
    target.write_bytes(data[: len(data) // 2])
    return target


def _save_graph(
    path: str | Path,
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    in_shape: list[int | str] | None,
    out_type: int,
    out_shape: list[int | str],
) -> Path:
    inputs = [] if in_shape is None else [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)]
    graph = helper.make_graph(
        nodes,
        "seglens_broken",
        inputs,
        [helper.make_tensor_value_info("scores", out_type, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def make_rank3_input_model(path: str | Path, num_classes: int = 19) -> Path:
    """A valid ONNX model whose input is rank 3 (3, H, W): no batch axis."""
    w = np.random.default_rng(0).normal(size=(num_classes, 3, 1, 1)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["image", "axes"], ["batched"]),
        helper.make_node("Conv", ["batched", "w"], ["scores"], kernel_shape=[1, 1]),
    ]
    return _save_graph(path, nodes, inits, [3, 32, 32], TensorProto.FLOAT, [1, num_classes, 32, 32])
