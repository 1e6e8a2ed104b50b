"""The settings of one training run (what `seglens train` parses) and the architectures it knows."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# SegFormer sizes from the paper (Xie et al. 2021, table 6): MiT encoder widths and depths, MLP decoder width.
SEGFORMER_SIZES: dict[str, dict[str, Any]] = {
    "segformer-b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "segformer-b1": {"hidden_sizes": [64, 128, 320, 512], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "segformer-b2": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 6, 3], "decoder_hidden_size": 768},
}
KERAS_ARCHS = ("vgg16-unet",)
ARCHS: tuple[str, ...] = (*SEGFORMER_SIZES, *KERAS_ARCHS)
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run. Saved in the log and the resume state so a resume can check it."""

    dataset: Path
    arch: str
    scheme: str
    size: tuple[int, int]  # (height, width) the model is trained at
    epochs: int
    batch: int
    lr: float
    out: Path
    init: Path | None = None
    resume: Path | None = None
    patience: int = 10
    split: str = "train"
    val_split: str = "val"
    val_dataset: Path | None = None  # default: the training root
    val_limit: int | None = None
    workers: int = 2
    seed: int = 0
    width: float = 1.0  # vgg16-unet decoder width
    weight_decay: float = 0.01
    warmup: int | None = None  # steps; None: 5% of the run, at most 1500
    clip_norm: float = 1.0
    precision: str = "auto"
    threads: int | None = None
    max_minutes: float | None = None
    augment: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # arch overrides (tests: a tiny SegFormer config)

    @property
    def framework(self) -> str:
        """'keras' or 'torch'."""
        return "keras" if self.arch in KERAS_ARCHS else "torch"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (paths as text)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        data["size"] = list(self.size)
        return data

    def warmup_steps(self, total_steps: int) -> int:
        """Linear warmup length: the given steps, else 5% of the run capped at mmseg's 1500."""
        if self.warmup is not None:
            return max(0, min(self.warmup, total_steps))
        return min(1500, max(1, round(0.05 * total_steps)))

    # Settings that must not change between a run and its resume (others, like epochs, may).
    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the original."""
        return {"arch": self.arch, "scheme": self.scheme, "size": list(self.size), "width": self.width}


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX): autocast then pays off (measured
    2x on a 2-core EPYC for both SegFormer-B0 and the VGG16-UNet); elsewhere bf16 is emulated and slower."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.system() != "Linux" or not cpuinfo.exists():
        return False
    try:
        with cpuinfo.open(encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def use_bf16(precision: str) -> bool:
    """Whether to train with bf16 autocast for `--precision` (auto: when the CPU has bf16 units)."""
    if precision == "bf16":
        return True
    if precision == "fp32":
        return False
    return cpu_has_bf16()
