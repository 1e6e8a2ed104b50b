"""`seglens train`: arguments, data checks, and the run. torch / TensorFlow load only once a run starts.

    seglens train --dataset DATA --arch segformer-b0 --scheme trainids --size 128x256 \\
        --epochs 60 --batch 8 --lr 6e-4 --out runs/segformer-b0

writes OUT/best/ (the best epoch by validation mIoU: a transformers checkpoint folder, or model.keras +
model.json for vgg16-unet; both open in SegLens and in `seglens export`), OUT/train_log.csv and
OUT/train_log.json (loss, val mIoU, LR and time per epoch) and OUT/resume/ (pass it to --resume).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.core.domain.errors import InputError
from app.core.runtime.argtypes import parse_size as parse_sizes
from app.core.runtime.argtypes import positive_int, workers_arg
from app.training.augment import AugmentConfig
from app.training.config import ARCHS, PRECISIONS, TrainConfig
from app.training.data import SCHEMES, TrainData, load_validation, open_labelled
from app.training.loop import RunState, Say, Trainer, run


def parse_size(text: str) -> tuple[int, int]:
    """'128x256' -> (128, 256); both multiples of 32 (SegFormer's 1/32 stage, VGG's 1/16 pooling)."""
    return parse_sizes(text, minimum=32, multiple=32)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--arch-config must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--arch-config must be a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `seglens train` argument parser."""
    p = argparse.ArgumentParser(prog="seglens train", description="Fine-tune SegFormer or the VGG16-UNet.")
    p.add_argument("--dataset", type=Path, required=True, help="Cityscapes-layout root with labelIds GT")
    p.add_argument("--arch", choices=ARCHS, required=True)
    p.add_argument("--init", type=Path, help="local start: HF checkpoint folder, or .h5 (ImageNet) / .keras")
    p.add_argument("--scheme", choices=tuple(SCHEMES), required=True, help="classes the model predicts")
    p.add_argument("--size", type=parse_size, required=True, help="training HxW, e.g. 128x256")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=6e-5, help="peak learning rate (default 6e-5)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", type=Path, help="OUT/resume of an earlier run")
    p.add_argument(
        "--patience",
        type=int,
        default=10,
        help="early stop after P epochs without a better val mIoU (0: never)",
    )
    p.add_argument("--split", default="train", help="training split (default train)")
    p.add_argument("--val-split", default="val", help="validation split (default val)")
    p.add_argument("--val-dataset", type=Path, help="validation root (default: --dataset)")
    p.add_argument("--val-limit", type=positive_int, help="validate on the first N images only")
    p.add_argument("--workers", type=workers_arg, default=2, help="data loading threads (default 2)")
    p.add_argument("--threads", type=int, help="compute threads of torch / TensorFlow (default: theirs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=float, default=1.0, help="vgg16-unet decoder width factor (default 1)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, help="warmup steps (default 5%% of the run, at most 1500)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 autocast where the CPU/GPU computes bf16 natively, else fp32",
    )
    p.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this wall time")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument(
        "--arch-config",
        type=_json_object,
        default={},
        help="JSON overrides of the architecture config (SegFormer: SegformerConfig fields)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from parsed arguments, with the numeric checks argparse does not do."""
    for name in ("epochs", "batch"):
        if getattr(args, name) < 1:
            raise InputError(None, f"--{name} must be at least 1")
    if args.lr <= 0:
        raise InputError(None, "--lr must be positive")
    if args.width <= 0:
        raise InputError(None, "--width must be positive")
    return TrainConfig(
        dataset=args.dataset,
        arch=args.arch,
        scheme=args.scheme,
        size=args.size,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        out=args.out,
        init=args.init,
        resume=args.resume,
        patience=args.patience,
        split=args.split,
        val_split=args.val_split,
        val_dataset=args.val_dataset,
        val_limit=args.val_limit,
        workers=args.workers,
        seed=args.seed,
        width=args.width,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        precision=args.precision,
        threads=args.threads,
        max_minutes=args.max_minutes,
        augment=not args.no_augment,
        extra=args.arch_config,
    )


def make_trainer(config: TrainConfig, say: Say) -> Trainer:
    """The framework's trainer (imports torch or TensorFlow now)."""
    if config.framework == "keras":
        from app.training.keras_trainer import KerasTrainer

        return KerasTrainer(config, say)
    from app.training.torch_trainer import SegformerTrainer

    return SegformerTrainer(config, say)


def train(config: TrainConfig, say: Say = print) -> RunState:
    """Check the data, build the model, run. Raises InputError for unusable data or checkpoints."""
    train_set = open_labelled(config.dataset, config.split, "training")
    val_root = config.val_dataset or config.dataset
    val_set = open_labelled(val_root, config.val_split, "validation")
    augment = AugmentConfig() if config.augment else AugmentConfig.off()
    data = TrainData(train_set, config.scheme, config.size, augment, config.seed, config.workers)
    data.sample(0)  # fail on a bad first file before the framework loads
    val_items = load_validation(val_set, config.val_limit)
    say(
        f"training on {len(train_set)} images ({config.split}), validating on {len(val_items)} "
        f"({config.val_split})"
    )
    trainer = make_trainer(config, say)
    return run(config, trainer, data, val_items, say)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `seglens train`. Returns the exit code (InputError propagates to app.cli)."""
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    start = time.perf_counter()
    state = train(config)
    print(
        f"{state.stopped}: best val mIoU {state.best_miou:.4f} at epoch {state.best_epoch} "
        f"({time.perf_counter() - start:.0f} s); model in {config.out / 'best'}",
        file=sys.stdout,
    )
    return 0


if __name__ == "__main__":
    from app.core.domain.errors import SegLensError

    try:
        sys.exit(main())
    except SegLensError as exc:
        print(f"seglens train: error: {exc}", file=sys.stderr)
        sys.exit(2)
