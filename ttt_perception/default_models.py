"""The default detector and classifier: how they are trained, where they live, how to load them.

Both ship in the package (``ttt_perception/models/``, made by ``ttt-perception train --task T
--default``). If a file is missing, it is trained on first use with the same recipe and cached in
``$TTT_PERCEPTION_CACHE`` (default ``~/.cache/ttt_perception``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .model import ModelConfig, YNet
from .training import TrainConfig

_LOG = logging.getLogger(__name__)
PACKAGED_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class Recipe:
    model: ModelConfig
    train: TrainConfig
    train_frames: int


RECIPES = {
    "detector": Recipe(ModelConfig(task="detector", input_size=96, width=16, stem_stride=2, stage_strides=(1, 2, 1)),
                       TrainConfig(epochs=12, batch_size=32, learning_rate=3e-3), train_frames=3000),
    "classifier": Recipe(ModelConfig(task="classifier", input_size=32, width=16, stem_stride=1,
                                     stage_strides=(1, 2, 2)),
                         TrainConfig(epochs=15, batch_size=64, learning_rate=3e-3), train_frames=3500),
}


def cache_dir() -> Path:
    return Path(os.environ.get("TTT_PERCEPTION_CACHE", Path.home() / ".cache" / "ttt_perception"))


def default_model_path(task: str) -> Path:
    """The packaged file when present, else the cache location."""
    if task not in RECIPES:
        raise ValueError(f"no default model for task {task!r}; choose one of {sorted(RECIPES)}")
    packaged = PACKAGED_DIR / f"{task}.pt"
    return packaged if packaged.is_file() else cache_dir() / f"{task}.pt"


def train_default_model(task: str, rotation_weight: float | None = None, progress: bool = True,
                        device: str | torch.device = "cpu") -> tuple[YNet, dict]:
    """Train the default recipe (rotation weight 0: the source-only baseline)."""
    from dataclasses import replace

    from .data import make_classification_frames, make_detection_frames
    from .model import build_model
    from .training import train_joint, training_metadata

    recipe = RECIPES[task]
    train_config = recipe.train if rotation_weight is None else replace(recipe.train, rotation_weight=rotation_weight)
    if task == "detector":
        data = make_detection_frames("train", recipe.train_frames, size=recipe.model.input_size, seed=train_config.seed)
    else:
        data = make_classification_frames("train", recipe.train_frames, size=recipe.model.input_size,
                                          seed=train_config.seed)
    model = build_model(recipe.model, seed=train_config.seed)
    history = train_joint(model, data, train_config, device=device, progress=progress)
    meta = training_metadata(train_config, history, f"{task} frames, split train, {recipe.train_frames} frames")
    return model.cpu(), meta


def load_default_model(task: str = "detector", device: str | torch.device = "cpu") -> YNet:
    path = default_model_path(task)
    if not path.is_file():
        from .checkpoint import save_checkpoint

        _LOG.warning("default %s not found at %s: training it now (a few minutes, once)", task, path)
        model, meta = train_default_model(task, progress=False)
        save_checkpoint(model, path, meta)
    model, _ = load_checkpoint(path, device)
    return model
