"""Joint training: main-task loss + weight x rotation loss on the shared extractor (Sun et al. 2020).

A rotation weight of 0 trains the source-only baseline (the rotation head is then left untrained).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .detection import detection_loss, encode_targets
from .model import ROTATION_CLASSES, YNet
from .objectives import rotate_quarters
from .preprocess import batch_to_model_input


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    rotation_weight: float = 1.0
    seed: int = 0


def _shift_augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random shifts of whole images (no flips: digits are not mirror-symmetric)."""
    size = images.shape[-1]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + size, dx:dx + size]


def prepare_inputs(dataset, model: YNet) -> dict[str, torch.Tensor]:
    """Normalised images and, for detection, encoded heatmap/box targets, all on the CPU."""
    config = model.config
    tensors = {"images": batch_to_model_input(dataset.images, config, torch.device("cpu"))}
    if config.task == "classifier":
        tensors["labels"] = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.long)
        return tensors
    grid, stride = config.input_size // config.output_stride, config.output_stride
    heatmaps, boxes, masks = [], [], []
    for image, frame_boxes, frame_labels in zip(dataset.images, dataset.boxes, dataset.labels):
        scale = config.input_size / np.array([image.shape[1], image.shape[0]] * 2, np.float32)
        heatmap, box, mask = encode_targets(np.asarray(frame_boxes) * scale, frame_labels, config.num_classes, grid,
                                            stride)
        heatmaps.append(heatmap)
        boxes.append(box)
        masks.append(mask)
    tensors.update(heatmap=torch.from_numpy(np.stack(heatmaps)), box=torch.from_numpy(np.stack(boxes)),
                   mask=torch.from_numpy(np.stack(masks)))
    return tensors


def main_loss(model: YNet, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    output = model.main_head(features)
    if model.config.task == "classifier":
        return F.cross_entropy(output, batch["labels"])
    return detection_loss(output, batch["heatmap"], batch["box"], batch["mask"])


def rotation_loss(model: YNet, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image rotated by a random quarter turn; cross-entropy of the rotation head."""
    quarters = torch.randint(0, ROTATION_CLASSES, (images.shape[0],), generator=generator).to(images.device)
    return F.cross_entropy(model.rotation_logits(rotate_quarters(images, quarters)), quarters)


def train_joint(model: YNet, dataset, config: TrainConfig = TrainConfig(), device: torch.device | str = "cpu",
                progress: bool = True) -> list[dict]:
    """Train in place; returns one record per epoch (mean main and rotation loss, seconds)."""
    device = torch.device(device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device).train()
    for param in model.parameters():
        param.requires_grad_(True)
    data = prepare_inputs(dataset, model)
    count = len(data["images"])
    steps_per_epoch = max(1, math.ceil(count / config.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate,
                                                    total_steps=config.epochs * steps_per_epoch)
    history = []
    for epoch in tqdm(range(config.epochs), desc="joint training", disable=not progress, unit="epoch"):
        began, totals = time.perf_counter(), {"main_loss": 0.0, "rotation_loss": 0.0}
        order = torch.randperm(count, generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = {k: v[index].to(device) for k, v in data.items()}
            images = _shift_augment(batch["images"], generator) if model.config.task == "classifier" else batch["images"]
            loss_main = main_loss(model, model.extractor(images), batch)
            loss = loss_main
            loss_rot = torch.zeros((), device=device)
            if config.rotation_weight > 0:
                loss_rot = rotation_loss(model, images, generator)
                loss = loss + config.rotation_weight * loss_rot
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            totals["main_loss"] += float(loss_main.detach())
            totals["rotation_loss"] += float(loss_rot.detach())
        history.append({"epoch": epoch, "seconds": time.perf_counter() - began,
                        **{k: v / steps_per_epoch for k, v in totals.items()}})
    model.eval()
    return history


def training_metadata(config: TrainConfig, history: list[dict], dataset_description: str) -> dict:
    from .data import DATA_VERSION

    return {"train_config": asdict(config), "history": history, "data": dataset_description,
            "data_version": DATA_VERSION, "torch": str(torch.__version__)}
