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
    # Clean val-split frames (new digits and photographs) on which the trained model's reference levels
    # are measured and stored in its checkpoint (training.source_statistics).
    reference_frames: int = 1000


# Deeper than the first defaults (one block per stage) and trained on far more frames, so that the
# rotation head solves its task on clean frames: what test-time training needs to work at all.
# Cost on a 2-core CPU: see docs/training.md.
RECIPES = {
    "detector": Recipe(ModelConfig(task="detector", input_size=96, width=16, blocks_per_stage=(2, 2, 2),
                                   stem_stride=2, stage_strides=(2, 2, 1)),
                       TrainConfig(epochs=10, batch_size=64, learning_rate=3e-3, augment=True),
                       train_frames=40_000),
    "classifier": Recipe(ModelConfig(task="classifier", input_size=32, width=16, blocks_per_stage=(2, 2, 2),
                                     stem_stride=1, stage_strides=(1, 2, 2)),
                         TrainConfig(epochs=8, batch_size=64, learning_rate=3e-3, augment=True),
                         train_frames=60_000),
}


def cache_dir() -> Path:
    return Path(os.environ.get("TTT_PERCEPTION_CACHE", Path.home() / ".cache" / "ttt_perception"))


def default_model_path(task: str) -> Path:
    """The packaged file when present, else the cache location."""
    if task not in RECIPES:
        raise ValueError(f"no default model for task {task!r}; choose one of {sorted(RECIPES)}")
    packaged = PACKAGED_DIR / f"{task}.pt"
    return packaged if packaged.is_file() else cache_dir() / f"{task}.pt"


def recipe_frames(task: str, split: str, count: int, seed: int, workers: int = 1):
    """The synthetic frames a default recipe trains (split train) or is measured (split val) on."""
    from .data import make_classification_frames, make_detection_frames

    make = make_detection_frames if task == "detector" else make_classification_frames
    return make(split, count, size=RECIPES[task].model.input_size, seed=seed, workers=workers)


def train_default_model(task: str, rotation_weight: float | None = None, progress: bool = True,
                        device: str | torch.device = "cpu", workers: int | None = None,
                        train_config: TrainConfig | None = None, data=None) -> tuple[YNet, dict]:
    """Train the default recipe (rotation weight 0: the source-only baseline).

    ``train_config`` overrides the recipe's; ``data`` passes the recipe's training frames when the
    caller has rendered them already (they are the same frames either way).
    """
    from dataclasses import replace

    from .training import train_and_describe

    recipe = RECIPES[task]
    config = train_config or recipe.train
    if rotation_weight is not None:
        config = replace(config, rotation_weight=rotation_weight)
    workers = workers or os.cpu_count() or 1
    if data is None:
        data = recipe_frames(task, "train", recipe.train_frames, config.seed, workers)
    reference = recipe_frames(task, "val", recipe.reference_frames, config.seed, workers)
    return train_and_describe(recipe.model, config, data, reference, device, progress,
                              f"{task} frames, split train, {recipe.train_frames} frames")


def load_default_model(task: str = "detector", device: str | torch.device = "cpu") -> YNet:
    path = default_model_path(task)
    if not path.is_file():
        from .checkpoint import save_checkpoint

        _LOG.warning("default %s not found at %s: training it now (a few minutes, once)", task, path)
        model, meta = train_default_model(task, progress=False)
        save_checkpoint(model, path, meta)
    model, _ = load_checkpoint(path, device)
    return model
