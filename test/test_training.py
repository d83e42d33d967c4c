"""Joint training on real frames lowers both the main and the rotation loss."""

import numpy as np
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


def test_trained_model_carries_its_clean_reference_levels_through_the_checkpoint(tmp_path):
    from ttt_perception.checkpoint import load_checkpoint, save_checkpoint
    from ttt_perception.training import train_and_describe

    config = ModelConfig(task="classifier", input_size=16, width=8, groups=4, stem_stride=1, stage_strides=(1, 2, 2))
    data = make_classification_frames("train", 48, size=16, seed=0)
    reference = make_classification_frames("val", 20, size=16, seed=0)
    model, meta = train_and_describe(config, TrainConfig(epochs=2, batch_size=16, augment=True), data, reference,
                                     "cpu", False, "tiny")
    stats = meta["source_stats"]
    assert stats["frames"] == 20 and 0.0 <= stats["rotation_accuracy"] <= 1.0 and stats["ssl_loss"] > 0
    width = config.stage_widths()[1]  # the extractor ends with stage 2
    assert stats["feature_mean"].shape == (width,) and stats["feature_cov"].shape == (width, width)
    assert torch.allclose(stats["feature_cov"], stats["feature_cov"].T)
    assert meta["train_config"]["augment"] is True and len(meta["history"]) == 2

    loaded, loaded_meta = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt", meta))
    assert loaded.reference_stats["ssl_loss"] == stats["ssl_loss"]
    assert torch.equal(loaded.reference_stats["feature_cov"], stats["feature_cov"])


def test_hold_out_splits_a_set_without_overlap():
    from ttt_perception.user_data import hold_out

    data = make_detection_frames("val", 41, size=32, seed=0)
    kept, held = hold_out(data, fraction=0.1)
    assert len(held) == 4 and len(kept) == 37
    assert np.array_equal(held.images[0], data.images[9])
    assert not any(np.array_equal(h, k) for h in held.images for k in kept.images)
    assert [len(b) for b in held.boxes] == [len(data.boxes[i]) for i in (9, 19, 29, 39)]
