"""The Y-shaped network of test-time training (Sun et al., ICML 2020).

``image -> extractor -> features``; ``features -> main head -> task output``;
``features -> rotation head -> 4 logits``. The extractor is the stem and the first two residual
stages; each head owns its own third stage, as in the paper's ResNet-26 split. GroupNorm throughout:
a test-time batch is copies of one image, on which BatchNorm statistics are meaningless.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

TASKS = ("classifier", "detector")
ROTATION_CLASSES = 4


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a YNet; stored in every checkpoint."""

    task: str = "detector"
    num_classes: int = 10
    input_size: int = 96
    width: int = 16
    blocks_per_stage: tuple[int, int, int] = (1, 1, 1)
    stem_stride: int = 2
    stage_strides: tuple[int, int, int] = (1, 2, 1)
    groups: int = 8
    split_after_stage: int = 2
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    class_names: tuple[str, ...] = field(default_factory=lambda: tuple(str(i) for i in range(10)))

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if not 1 <= self.split_after_stage <= 2:
            raise ValueError("split_after_stage must be 1 or 2 (the heads need at least one own stage)")
        if self.width % self.groups:
            raise ValueError(f"width {self.width} is not divisible by groups {self.groups}")

    @property
    def output_stride(self) -> int:
        stride = self.stem_stride
        for s in self.stage_strides:
            stride *= s
        return stride

    def stage_widths(self) -> tuple[int, int, int]:
        return (self.width, self.width * 2, self.width * 4)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        for key in ("blocks_per_stage", "stage_strides", "mean", "std", "class_names"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


class ResidualBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.GroupNorm(groups, out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def _stage(in_ch: int, out_ch: int, blocks: int, stride: int, groups: int) -> nn.Sequential:
    layers = [ResidualBlock(in_ch, out_ch, stride, groups)]
    layers += [ResidualBlock(out_ch, out_ch, 1, groups) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _later_stages(config: ModelConfig) -> nn.Sequential:
    """The stages after the split point; each head owns one copy."""
    widths = config.stage_widths()
    stages = []
    for index in range(config.split_after_stage, 3):
        stages.append(
            _stage(widths[index - 1], widths[index], config.blocks_per_stage[index],
                   config.stage_strides[index], config.groups)
        )
    return nn.Sequential(*stages)


class ClassifierHead(nn.Module):
    def __init__(self, config: ModelConfig, num_outputs: int):
        super().__init__()
        self.stages = _later_stages(config)
        self.fc = nn.Linear(config.stage_widths()[2], num_outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(features).mean(dim=(2, 3)))


class DetectorHead(nn.Module):
    """Dense anchor-free head: per-class centre heatmap logits, box size and sub-cell offset per cell."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.stages = _later_stages(config)
        channels = config.stage_widths()[2]
        self.neck = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.GroupNorm(config.groups, channels), nn.ReLU()
        )
        self.heatmap = nn.Conv2d(channels, config.num_classes, 1)
        self.box = nn.Conv2d(channels, 4, 1)  # (log w, log h) in cells, (dx, dy) offset in cells
        nn.init.constant_(self.heatmap.bias, -2.19)  # prior probability 0.1: stable focal-loss start

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.neck(self.stages(features))
        return {"heatmap": self.heatmap(x), "box": self.box(x)}


class YNet(nn.Module):
    """Shared extractor with a main head and a rotation (self-supervised) head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # Levels measured on clean held-out frames after training (training.source_statistics),
        # restored from the checkpoint; None for a model that has none.
        self.reference_stats: dict | None = None
        widths = config.stage_widths()
        self.extractor = nn.Sequential(
            nn.Conv2d(3, config.width, 3, config.stem_stride, 1, bias=False),
            nn.GroupNorm(config.groups, config.width),
            nn.ReLU(),
            *[
                _stage(widths[max(i - 1, 0)], widths[i], config.blocks_per_stage[i], config.stage_strides[i],
                       config.groups)
                for i in range(config.split_after_stage)
            ],
        )
        if config.task == "classifier":
            self.main_head: nn.Module = ClassifierHead(config, config.num_classes)
        else:
            self.main_head = DetectorHead(config)
        self.ssl_head = ClassifierHead(config, ROTATION_CLASSES)

    def forward(self, x: torch.Tensor):
        return self.main_head(self.extractor(x))

    def rotation_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.ssl_head(self.extractor(x))


def build_model(config: ModelConfig | None = None, seed: int = 0) -> YNet:
    torch.manual_seed(seed)
    return YNet(config or ModelConfig())
