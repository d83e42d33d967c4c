"""Camera image (any size, RGB uint8) <-> the model's square normalised input."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .model import ModelConfig


def validate_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB array HxWx3, got shape {getattr(image, 'shape', None)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("image has zero size")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")


def to_model_input(image: np.ndarray, config: ModelConfig, device: torch.device) -> torch.Tensor:
    """(3, S, S) float tensor on ``device``: only the uint8 pixels cross to the device."""
    validate_rgb(image)
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)
    x = pixels.permute(2, 0, 1).float().div_(255.0)
    size = config.input_size
    if x.shape[1] != size or x.shape[2] != size:
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return normalise(x, config)


def normalise(images: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Pixels in 0..1, (3, S, S) or (N, 3, S, S), to the model's normalised input."""
    mean, std = _normalisation(config.mean, config.std, images.device)
    return (images - mean) / std


@functools.lru_cache(maxsize=16)
def _normalisation(mean: tuple, std: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Made once per device: not a host-to-device copy on every frame."""
    return (torch.tensor(mean, device=device).view(3, 1, 1), torch.tensor(std, device=device).view(3, 1, 1))


def pixels_at_input_size(images: np.ndarray, config: ModelConfig) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, S, S) uint8 on the CPU: training sets stay compact."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    size = config.input_size
    if pixels.shape[2:] == (size, size):
        return pixels.contiguous()
    resized = [F.interpolate(p[None].float(), size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)[0] for p in pixels]
    return torch.stack(resized).round_().clamp_(0, 255).to(torch.uint8)


def scale_to_image(config: ModelConfig, image_shape: tuple[int, ...]) -> tuple[float, float]:
    """Factors mapping model-input pixels back to the camera image's pixels (x, y)."""
    return image_shape[1] / config.input_size, image_shape[0] / config.input_size
