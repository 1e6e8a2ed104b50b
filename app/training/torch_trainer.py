"""SegFormer training with torch + transformers (imported here only, when a SegFormer run starts).

The model is SegformerForSemanticSegmentation built from a config at the paper's B0/B1/B2 sizes (random
init: nothing is downloaded), or loaded from a LOCAL checkpoint with --init (local_files_only; a MiT
backbone-only checkpoint gets a fresh decode head). As in transformers' own loss, the 1/4-resolution
logits are upsampled bilinearly (align_corners=False) to the label size before CrossEntropy with
ignore_index=255. AdamW without weight decay on biases and norm weights (mmseg's SegFormer recipe),
gradient norm clipped, bf16 autocast where the hardware computes bf16 natively. The saved model is a
Hugging Face checkpoint (save_pretrained, safetensors, id2label/label2id) with the SegformerImageProcessor
describing the exact normalization used in training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from app.core.domain.errors import InputError
from app.training.config import SEGFORMER_SIZES, TrainConfig, use_bf16
from app.training.data import model_scheme
from app.training.loop import Say, replace_dir

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STATE_WEIGHTS = "trainer.pt"


def _labels(scheme_key: str) -> dict[str, Any]:
    names = model_scheme(scheme_key).names
    id2label = dict(enumerate(names))
    return {"num_labels": len(names), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def build_segformer(config: TrainConfig, say: Say) -> Any:
    """SegformerForSemanticSegmentation from --init (local) or from the arch's config (random init)."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    labels = _labels(config.scheme)
    if config.init is not None:
        if not (config.init / "config.json").is_file():
            raise InputError(
                config.init, "--init must be a local transformers checkpoint folder (config.json)"
            )
        say(f"initialising from {config.init} (the decode head is re-created when its classes differ)")
        return SegformerForSemanticSegmentation.from_pretrained(
            str(config.init), local_files_only=True, ignore_mismatched_sizes=True, **labels, **config.extra
        )
    shape = {**SEGFORMER_SIZES[config.arch], **config.extra}
    return SegformerForSemanticSegmentation(SegformerConfig(**shape, **labels))


def save_processor(directory: Path, size: tuple[int, int]) -> None:
    """The image processor matching training: resize to `size` (bilinear), x/255, ImageNet mean/std."""
    from transformers import SegformerImageProcessorPil

    processor = SegformerImageProcessorPil(
        size={"height": size[0], "width": size[1]},
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        do_reduce_labels=False,
    )
    processor.save_pretrained(str(directory))


class SegformerTrainer:
    """The Trainer of app.training.loop for SegFormer."""

    def __init__(self, config: TrainConfig, say: Say = print) -> None:
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.torch = torch
        self.config = config
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = build_segformer(config, say).to(self.device)
        self.bf16 = (
            torch.cuda.is_bf16_supported() if self.device.type == "cuda" else use_bf16(config.precision)
        )
        if config.precision == "fp32":
            self.bf16 = False
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.lr,
        )
        self.loss = torch.nn.CrossEntropyLoss(ignore_index=255)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1) * 255.0
        params = sum(p.numel() for p in self.model.parameters())
        say(
            f"SegFormer {config.arch}: {params / 1e6:.2f} M parameters, {self.device.type}, "
            f"{'bf16 autocast' if self.bf16 else 'fp32'}"
        )

    def _pixels(self, images: np.ndarray) -> Any:
        tensor = self.torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        return (tensor.permute(0, 3, 1, 2).float() - self.mean) / self.std

    def _autocast(self) -> Any:
        return self.torch.autocast(self.device.type, dtype=self.torch.bfloat16, enabled=self.bf16)

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """Forward, CrossEntropy on upsampled logits, backward, clip, AdamW step."""
        torch = self.torch
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        target = torch.from_numpy(np.ascontiguousarray(labels)).to(self.device).long()
        with self._autocast():
            logits = self.model(pixel_values=self._pixels(images)).logits
            logits = torch.nn.functional.interpolate(
                logits, size=target.shape[-2:], mode="bilinear", align_corners=False
            )
        loss = self.loss(logits.float(), target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.optimizer.step()
        return float(loss.detach())

    def predict_scores(self, images: np.ndarray) -> np.ndarray:
        """Logits (N, K, h/4, w/4) in fp32: validation measures what the FP32 export will compute."""
        self.model.eval()
        with self.torch.inference_mode():
            logits = self.model(pixel_values=self._pixels(images)).logits
        return np.asarray(logits.float().cpu().numpy(), dtype=np.float32)

    def save_model(self, directory: Path) -> Path:
        """Hugging Face checkpoint (safetensors) + image processor, replacing `directory` atomically."""
        staging = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        self.model.save_pretrained(str(staging), safe_serialization=True)
        save_processor(staging, self.config.size)
        replace_dir(staging, directory)
        return directory

    def save_state(self, directory: Path) -> None:
        """Weights, optimizer state (AdamW moments, step counts) for --resume."""
        staging = directory / f"{STATE_WEIGHTS}.tmp"
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        self.torch.save(state, staging)
        staging.replace(directory / STATE_WEIGHTS)
        (directory / "framework.json").write_text(json.dumps({"framework": "torch"}) + "\n", encoding="utf-8")

    def load_state(self, directory: Path) -> None:
        """Restore save_state's weights and optimizer."""
        path = directory / STATE_WEIGHTS
        if not path.is_file():
            raise InputError(directory, f"not a SegFormer training checkpoint (no {STATE_WEIGHTS})")
        state = self.torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
