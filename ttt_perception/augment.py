"""Ordinary training augmentation, batched on the training device.

Colour jitter for every task (the digits' colours and the photographs are arbitrary anyway) and,
for the classifier, a small random affine warp. Never a mirror (a mirrored digit is not a digit),
never a quarter turn (that is the rotation task's label) and never one of the benchmark's
corruptions (noise, blur, weather, compression): those are what test-time training is measured on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BRIGHTNESS = 0.15  # added, in 0..1 pixel units
CONTRAST = (0.7, 1.3)  # factor around each image's mean
SATURATION = (0.3, 1.5)  # 0: grey, 1: unchanged
MAX_TURN_DEGREES = 12.0
SCALE = (0.9, 1.1)
MAX_SHIFT = 0.12  # of the image side


def _uniform(generator: torch.Generator, count: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def colour_jitter(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image: channel order, saturation, contrast, brightness. ``images`` (N, 3, S, S) in 0..1."""
    n, device = images.shape[0], images.device
    order = torch.rand(n, 3, generator=generator).argsort(dim=1).to(device)
    images = torch.gather(images, 1, order[:, :, None, None].expand_as(images))
    grey = (images * torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    saturation = _uniform(generator, n, *SATURATION).to(device).view(n, 1, 1, 1)
    images = grey + saturation * (images - grey)
    contrast = _uniform(generator, n, *CONTRAST).to(device).view(n, 1, 1, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + contrast * (images - mean)
    brightness = _uniform(generator, n, -BRIGHTNESS, BRIGHTNESS).to(device).view(n, 1, 1, 1)
    return (images + brightness).clamp_(0.0, 1.0)


def random_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image: a small turn, scale and shift (edges reflected). For whole-image labels only:
    boxes would have to move with it."""
    n, device = images.shape[0], images.device
    turn = torch.deg2rad(_uniform(generator, n, -MAX_TURN_DEGREES, MAX_TURN_DEGREES))
    scale = _uniform(generator, n, *SCALE)
    shift = _uniform(generator, 2 * n, -2 * MAX_SHIFT, 2 * MAX_SHIFT).view(n, 2)  # grid units: side = 2
    cos, sin = torch.cos(turn) / scale, torch.sin(turn) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
