"""Joint training on real frames lowers both the main and the rotation loss."""

import pytest
import torch

from ttt_perception.data import make_classification_frames, make_detection_frames
from ttt_perception.model import ModelConfig, build_model
from ttt_perception.training import TrainConfig, train_joint

pytestmark = pytest.mark.slow  # tens of epochs each: about a minute on a 2-core CPU


def test_short_classifier_training_lowers_both_losses():
    data = make_classification_frames("train", 64, size=32, seed=0)
    model = build_model(ModelConfig(task="classifier", input_size=32, width=16, groups=8, stem_stride=2,
                                    stage_strides=(1, 2, 1)))
    history = train_joint(model, data, TrainConfig(epochs=40, batch_size=16, learning_rate=5e-3), progress=False)
    assert history[-1]["main_loss"] < 0.6 * history[0]["main_loss"]
    assert history[-1]["rotation_loss"] < 0.97 * history[0]["rotation_loss"]


def test_short_detector_training_lowers_both_losses_and_source_only_skips_rotation():
    data = make_detection_frames("train", 96, size=64, seed=0)
    config = ModelConfig(task="detector", input_size=64, width=8, groups=4)
    model = build_model(config)
    history = train_joint(model, data, TrainConfig(epochs=3, batch_size=16, learning_rate=5e-3), progress=False)
    assert history[-1]["main_loss"] < 0.8 * history[0]["main_loss"]
    assert history[-1]["rotation_loss"] < history[0]["rotation_loss"]

    source_only = build_model(config)
    ssl_before = {n: p.clone() for n, p in source_only.ssl_head.named_parameters()}
    history = train_joint(source_only, data, TrainConfig(epochs=1, batch_size=16, rotation_weight=0.0),
                          progress=False)
    assert history[0]["rotation_loss"] == 0.0
    assert all(torch.equal(p, ssl_before[n]) for n, p in source_only.ssl_head.named_parameters())
