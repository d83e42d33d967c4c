"""One-file checkpoints: weights, architecture, class names, input size, normalisation, metadata."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .model import ModelConfig, YNet

FORMAT = "ttt_perception.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def save_checkpoint(model: YNet, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name
    return path


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[YNet, dict]:
    """(model in eval mode on ``device``, metadata); CheckpointError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
    try:
        # TorchVersion: checkpoints written before training_metadata stored the version as a str
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, wrong pickle: all mean the same to a user
        raise CheckpointError(f"model file {path} is not a readable checkpoint (truncated or corrupt?): {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"model file {path} has format {found!r}, expected {FORMAT!r}")
    try:
        config = ModelConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"model file {path} has an invalid architecture config: {exc}") from exc
    model = YNet(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"model file {path} does not match its architecture: {exc}") from exc
    metadata = dict(payload.get("metadata", {}))
    model.reference_stats = metadata.get("source_stats")
    return model.to(device).eval(), metadata
