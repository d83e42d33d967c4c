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

from .augment import colour_jitter, random_affine
from .detection import detection_loss, encode_targets
from .model import ROTATION_CLASSES, ModelConfig, YNet
from .objectives import rotate_quarters
from .preprocess import normalise, pixels_at_input_size


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    rotation_weight: float = 1.0
    augment: bool = False  # colour jitter, and a small affine warp for the classifier (augment.py)
    seed: int = 0


def _shift_augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random shifts of whole images (no flips: digits are not mirror-symmetric)."""
    size = images.shape[-1]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + size, dx:dx + size]


def encode_dataset(dataset, config: ModelConfig) -> dict[str, torch.Tensor]:
    """uint8 ``pixels`` (N, 3, S, S) at the model's input size and the targets, all on the CPU:
    labels for a classifier; heatmap (float16), box and mask for a detector."""
    tensors = {"pixels": pixels_at_input_size(dataset.images, config)}
    if config.task == "classifier":
        tensors["labels"] = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.long)
        return tensors
    grid, stride = config.input_size // config.output_stride, config.output_stride
    heatmaps, boxes, masks = [], [], []
    for image, frame_boxes, frame_labels in zip(dataset.images, dataset.boxes, dataset.labels):
        scale = config.input_size / np.array([image.shape[1], image.shape[0]] * 2, np.float32)
        heatmap, box, mask = encode_targets(np.asarray(frame_boxes) * scale, frame_labels, config.num_classes, grid,
                                            stride)
        heatmaps.append(heatmap.astype(np.float16))
        boxes.append(box)
        masks.append(mask)
    tensors.update(heatmap=torch.from_numpy(np.stack(heatmaps)), box=torch.from_numpy(np.stack(boxes)),
                   mask=torch.from_numpy(np.stack(masks)))
    return tensors


def prepare_inputs(dataset, model: YNet) -> dict[str, torch.Tensor]:
    """Normalised float ``images`` and the targets, all on the CPU (for small sets: benchmarks, tests)."""
    tensors = encode_dataset(dataset, model.config)
    tensors["images"] = normalise(tensors.pop("pixels").float().div_(255.0), model.config)
    return tensors


def _training_images(pixels: torch.Tensor, model_config: ModelConfig, config: TrainConfig,
                     generator: torch.Generator) -> torch.Tensor:
    images = pixels.float().div_(255.0)
    if config.augment:
        images = colour_jitter(images, generator)
        if model_config.task == "classifier":
            images = random_affine(images, generator)
    elif model_config.task == "classifier":
        images = _shift_augment(images, generator)
    return normalise(images, model_config)


def main_loss(model: YNet, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    output = model.main_head(features)
    if model.config.task == "classifier":
        return F.cross_entropy(output, batch["labels"])
    return detection_loss(output, batch["heatmap"].float(), batch["box"], batch["mask"])


def rotation_loss(model: YNet, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image rotated by a random quarter turn; cross-entropy of the rotation head."""
    quarters = torch.randint(0, ROTATION_CLASSES, (images.shape[0],), generator=generator).to(images.device)
    return F.cross_entropy(model.rotation_logits(rotate_quarters(images, quarters)), quarters)


def train_joint(model: YNet, dataset, config: TrainConfig = TrainConfig(), device: torch.device | str = "cpu",
                progress: bool = True) -> list[dict]:
    """Train in place; returns one record per epoch (mean main and rotation loss, seconds).

    The whole set lives on the training device as uint8 (a GPU then never waits for the host);
    each batch is augmented and normalised there.
    """
    device = torch.device(device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device).train()
    for param in model.parameters():
        param.requires_grad_(True)
    data = {k: v.to(device) for k, v in encode_dataset(dataset, model.config).items()}
    count = len(data["pixels"])
    steps_per_epoch = max(1, math.ceil(count / config.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate,
                                                    total_steps=config.epochs * steps_per_epoch)
    history = []
    for epoch in tqdm(range(config.epochs), desc="joint training", disable=not progress, unit="epoch"):
        began = time.perf_counter()
        totals = torch.zeros(2, device=device)  # main, rotation: summed on the device, read once an epoch
        order = torch.randperm(count, generator=generator).to(device)
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = {k: v[index] for k, v in data.items()}
            images = _training_images(batch["pixels"], model.config, config, generator)
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
            totals += torch.stack([loss_main.detach(), loss_rot.detach()])
        main_total, rotation_total = (totals / steps_per_epoch).tolist()
        history.append({"epoch": epoch, "seconds": time.perf_counter() - began,
                        "main_loss": main_total, "rotation_loss": rotation_total})
    model.eval()
    return history


@torch.no_grad()
def source_statistics(model: YNet, dataset, device: torch.device | str = "cpu", batch_size: int = 256) -> dict:
    """Reference levels of a trained model on clean frames it was not trained on, kept in its checkpoint.

    ``ssl_loss`` and ``rotation_accuracy``: the rotation head on each frame's four plain rotations, as
    the adapter measures them (the shift gate's threshold is relative to this loss). ``feature_mean``
    and ``feature_cov``: the spatially pooled extractor features, what feature alignment pulls toward.
    """
    device = torch.device(device)
    model.to(device).eval()
    pixels = pixels_at_input_size(dataset.images, model.config)
    losses, hits, pooled = [], 0, []
    for start in range(0, len(pixels), batch_size):
        images = normalise(pixels[start:start + batch_size].to(device).float().div_(255.0), model.config)
        pooled.append(model.extractor(images).mean(dim=(2, 3)).double().cpu())
        labels = torch.arange(ROTATION_CLASSES, device=device).repeat(len(images))
        rotated = rotate_quarters(images.repeat_interleave(ROTATION_CLASSES, dim=0), labels)
        logits = model.rotation_logits(rotated)
        losses.append(F.cross_entropy(logits, labels, reduction="none").view(-1, ROTATION_CLASSES).mean(1).cpu())
        hits += int((logits.argmax(1) == labels).sum())
    features = torch.cat(pooled)
    return {"frames": len(pixels), "ssl_loss": float(torch.cat(losses).mean()),
            "rotation_accuracy": hits / (ROTATION_CLASSES * max(len(pixels), 1)),
            "feature_mean": features.mean(0).float(), "feature_cov": torch.cov(features.T).float()}


def train_and_describe(model_config: ModelConfig, config: TrainConfig, data, reference, device, progress: bool,
                       description: str) -> tuple[YNet, dict]:
    """A new model trained on ``data``, and its checkpoint metadata: the recipe, the loss history, and
    the reference levels measured on ``reference`` (clean frames it was not trained on)."""
    from .model import build_model

    began = time.perf_counter()
    model = build_model(model_config, seed=config.seed)
    history = train_joint(model, data, config, device=device, progress=progress)
    meta = training_metadata(config, history, description)
    meta["device"] = str(torch.device(device))
    meta["train_seconds"] = time.perf_counter() - began
    meta["source_stats"] = source_statistics(model, reference, device)
    model.reference_stats = meta["source_stats"]
    return model.cpu(), meta


def training_metadata(config: TrainConfig, history: list[dict], dataset_description: str) -> dict:
    from .data import DATA_VERSION

    return {"train_config": asdict(config), "history": history, "data": dataset_description,
            "data_version": DATA_VERSION, "torch": str(torch.__version__)}
