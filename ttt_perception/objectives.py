"""Self-supervised objectives computed on one frame: rotation prediction (TTT), entropy (Tent) and
feature alignment (TTT++ / TTAC: the stream's feature statistics pulled toward the clean ones)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .choices import PARAMETER_SETS
from .model import ROTATION_CLASSES, YNet


def rotate_quarters(images: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
    """Rotate each square image (N, C, S, S) by its own number of quarter turns."""
    out = torch.empty_like(images)
    for k in range(ROTATION_CLASSES):
        chosen = quarters == k
        if bool(chosen.any()):
            out[chosen] = torch.rot90(images[chosen], k, dims=(2, 3))
    return out


def augmented_copies(image: torch.Tensor, count: int, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """``count`` copies of one image (C, S, S): copy 0 plain, the rest randomly shifted crops.

    No flips, as in training: a mirrored digit is not a digit, and its rotation is a task the model
    never learnt. Random offsets come from a CPU generator; pixels never leave the image's device.
    """
    size = image.shape[-1]
    padded = F.pad(image[None], (pad, pad, pad, pad), mode="reflect")[0]
    offsets = torch.randint(0, 2 * pad + 1, (count, 2), generator=generator).tolist()
    copies = [image] + [padded[:, dy:dy + size, dx:dx + size] for dy, dx in offsets[1:]]
    return torch.stack(copies)


def rotation_batch(image: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Rotated copies and their labels; the first four are the plain image at 0/90/180/270 degrees."""
    count = max(batch_size, ROTATION_CLASSES)
    groups = -(-count // ROTATION_CLASSES)
    copies = augmented_copies(image, groups, generator)
    copies = copies.repeat_interleave(ROTATION_CLASSES, dim=0)[:count]
    labels = torch.arange(count, device=image.device) % ROTATION_CLASSES
    return rotate_quarters(copies, labels), labels


def plain_rotations(image: torch.Tensor):
    """The frame at the four rotations, with labels: the probe for the self-supervised loss."""
    labels = torch.arange(ROTATION_CLASSES, device=image.device)
    return rotate_quarters(image[None].expand(ROTATION_CLASSES, -1, -1, -1), labels), labels


def class_distribution(output) -> torch.Tensor:
    """Per-sample (classifier) or per-cell (detector) class probabilities, shape (M, C), and weights (M,)."""
    if isinstance(output, dict):
        heat = torch.sigmoid(output["heatmap"])  # (N, C, G, G)
        cells = heat.permute(0, 2, 3, 1).reshape(-1, heat.shape[1])
        weights = cells.max(dim=1).values.detach()
        return cells / cells.sum(dim=1, keepdim=True).clamp(min=1e-8), weights
    probs = torch.softmax(output, dim=1)
    return probs, torch.ones(probs.shape[0], device=probs.device)


def entropy_loss(model: YNet, images: torch.Tensor) -> torch.Tensor:
    """Tent's objective: mean prediction entropy (detector: per cell, weighted by its objectness)."""
    probs, weights = class_distribution(model(images))
    entropy = -(probs * torch.log(probs.clamp(min=1e-8))).sum(dim=1)
    return (entropy * weights).sum() / weights.sum().clamp(min=1e-8)


def adaptable_parameters(model: YNet, objective: str, which: str = "auto") -> dict[str, nn.Parameter]:
    """Parameters a test-time step may change; heads stay fixed except norm affines under Tent."""
    if which == "auto":
        which = "norm" if objective == "entropy" else "extractor"
    if which == "extractor":
        return {f"extractor.{n}": p for n, p in model.extractor.named_parameters()}
    if which == "stem":  # the first convolution and its norm: where pixel-level corruptions act
        return {f"extractor.{n}": p for n, p in model.extractor[:2].named_parameters()}
    if which == "norm":
        chosen = {}
        for prefix, part in (("extractor", model.extractor), ("main_head", model.main_head)):
            for module_name, module in part.named_modules():
                if isinstance(module, nn.GroupNorm):
                    for param_name, param in module.named_parameters(recurse=False):
                        chosen[f"{prefix}.{module_name}.{param_name}"] = param
        return chosen
    raise ValueError(f"parameters must be one of {PARAMETER_SETS}, got {which!r}")


class FeatureMoments:
    """A stream's running mean and covariance of pooled extractor features (per frame, exponential).

    Starts at the clean statistics, so the first frames of a stream are not pulled toward themselves.
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, rate: float = 0.1):
        self.mean, self.cov, self.rate = mean.clone(), cov.clone(), rate

    def blended(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Running moments with this frame's features (B, C) mixed in at ``rate``; differentiable in them."""
        frame_mean = features.mean(0)
        centred = features - self.mean
        frame_cov = centred.T @ centred / len(features)
        return ((1 - self.rate) * self.mean + self.rate * frame_mean,
                (1 - self.rate) * self.cov + self.rate * frame_cov)

    def update(self, features: torch.Tensor) -> None:
        """Mix in one frame's pooled features (1, C) once it has been processed."""
        self.mean, self.cov = self.blended(features.detach())


def feature_alignment_loss(model: YNet, images: torch.Tensor, moments: FeatureMoments,
                           source_mean: torch.Tensor, source_cov: torch.Tensor) -> torch.Tensor:
    """Distance of the stream's feature moments (this frame's copies mixed in) from the clean ones:
    squared mean gap over C plus squared covariance gap over C squared (C feature channels)."""
    features = model.extractor(images).mean(dim=(2, 3))
    mean, cov = moments.blended(features)
    channels = features.shape[1]
    return (mean - source_mean).pow(2).sum() / channels + (cov - source_cov).pow(2).sum() / channels**2
