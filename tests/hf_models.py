"""Tiny real transformers segmentation checkpoints with random weights, saved like hub checkpoints.

Each builder makes the architecture from its config class (no hub), seeds torch, and writes config.json +
model.safetensors (save_pretrained) and preprocessor_config.json (the image processor's save_pretrained)
into a directory. Used by tests/test_hf_backend.py and benchmarks/bench_hf.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.domain.labels import TRAINIDS

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def trainid_labels() -> dict[int, str]:
    """Cityscapes trainIds 0..18 -> name, as the public Cityscapes checkpoints' id2label."""
    return dict(enumerate(TRAINIDS.names))


def _label_kwargs(id2label: dict[int, str]) -> dict[str, Any]:
    return {
        "num_labels": len(id2label),
        "id2label": id2label,
        "label2id": {v: k for k, v in id2label.items()},
    }


def _spread(model: Any, name: str, std: float) -> None:
    """Random-init heads give almost flat (or all-zero) scores: one class everywhere. Redrawing the named
    weights with a larger spread makes the label maps varied, so that tests comparing labels can fail."""
    import torch

    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if name in param_name and param.ndim > 1:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def save_segformer(
    directory: Path,
    *,
    size: tuple[int, int] = (64, 128),
    id2label: dict[int, str] | None = None,
    tiny: bool = True,
    seed: int = 0,
) -> Path:
    """A SegFormer (tiny, or B0-sized with tiny=False) with a SegformerImageProcessor of `size`."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessorPil

    labels = id2label or trainid_labels()
    shape: dict[str, Any] = {}
    if tiny:
        shape = {
            "hidden_sizes": [8, 16, 24, 32],
            "depths": [1, 1, 1, 1],
            "num_attention_heads": [1, 1, 2, 2],
            "decoder_hidden_size": 32,
        }
    config = SegformerConfig(**shape, **_label_kwargs(labels))
    torch.manual_seed(seed)
    model = SegformerForSemanticSegmentation(config).eval()
    _spread(model, "decode_head.classifier", 1.0)
    model.save_pretrained(directory)
    processor = SegformerImageProcessorPil(
        size={"height": size[0], "width": size[1]}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    processor.save_pretrained(directory)
    return directory


def save_mobilevit(directory: Path, *, shortest_edge: int = 48, seed: int = 0) -> Path:
    """A tiny MobileViT + DeepLabV3 head; its processor resizes the shortest edge (bicubic), rescales
    without normalizing and flips RGB to BGR; center crop off (labels must cover the whole image)."""
    import torch
    from transformers import MobileViTConfig, MobileViTForSemanticSegmentation, MobileViTImageProcessorPil

    config = MobileViTConfig(
        hidden_sizes=[16, 24, 32],
        neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
        num_attention_heads=2,
        mlp_ratio=2.0,
        aspp_out_channels=16,
        atrous_rates=[2, 4, 6],
        output_stride=8,
        **_label_kwargs(trainid_labels()),
    )
    torch.manual_seed(seed)
    model = MobileViTForSemanticSegmentation(config).eval()
    with torch.no_grad():  # this init draws BatchNorm scales near 0: activations die out before the head
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.fill_(1.0)
    _spread(model, "segmentation_head.classifier", 1.0)
    model.save_pretrained(directory)
    processor = MobileViTImageProcessorPil(
        size={"shortest_edge": shortest_edge}, do_center_crop=False, do_flip_channel_order=True
    )
    processor.save_pretrained(directory)
    return directory


def save_mask2former(directory: Path, *, seed: int = 0) -> Path:
    """A small Mask2Former on a tiny Swin backbone; processor: shortest 48 / longest 200, divisor 32."""
    import torch
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessorPil,
        SwinConfig,
    )

    backbone = SwinConfig(
        image_size=64,
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=4,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = Mask2FormerConfig(
        backbone_config=backbone,
        use_pretrained_backbone=False,
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=64,
        dim_feedforward=64,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        num_queries=8,
        common_stride=4,
        **_label_kwargs(trainid_labels()),
    )
    torch.manual_seed(seed)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    _spread(model, "mask_embedder.2", 3.0)
    _spread(model, "class_predictor", 1.0)
    _spread(model, "queries_features", 3.0)  # distinct queries: otherwise all vote for the same class
    model.save_pretrained(directory)
    processor = Mask2FormerImageProcessorPil(
        size={"shortest_edge": 48, "longest_edge": 200},
        size_divisor=32,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        ignore_index=255,
    )
    processor.save_pretrained(directory)
    return directory
