"""Online adaptation after publishing: the prediction comes first, the steps use the time before the
next frame, and the deadline bounds only the prediction. Also the settings that need a checkpoint's
clean reference levels (the relative shift gate, feature alignment)."""

import math

import numpy as np
import pytest
import torch

from adapter_helpers import UNGATED, FakeClock
from ttt_perception.adaptation_config import AdaptationConfig
from ttt_perception.adapter import TestTimeAdapter
from ttt_perception.data import make_classification_frames
from ttt_perception.model import ModelConfig, build_model
from ttt_perception.training import source_statistics


@pytest.fixture(scope="module")
def frames():
    return make_classification_frames("val", 12, size=32, seed=3).images


@pytest.fixture(scope="module")
def model(frames):
    """A small classifier that carries clean reference levels, as a trained checkpoint does."""
    net = build_model(ModelConfig(task="classifier", input_size=32, width=8, groups=4, stem_stride=1,
                                  stage_strides=(1, 2, 2)), seed=0)
    net.reference_stats = source_statistics(net, make_classification_frames("val", 16, size=32, seed=9))
    return net


def _params(adapter):
    return {n: p.detach().clone() for n, p in adapter.model.named_parameters()}


def test_prediction_comes_first_then_the_steps_change_the_weights(model, frames):
    adapter = TestTimeAdapter(model, AdaptationConfig(**UNGATED, mode="online", adapt_after_publish=True, max_steps=2,
                                                      learning_rate=0.05), "cpu")
    plain = TestTimeAdapter(model, AdaptationConfig(mode="off"), "cpu")
    seen = []

    def publish(result):  # what a consumer gets: made by the weights before this frame's steps
        seen.append((result.class_probs.copy(), _params(adapter), result.report.steps_taken))

    result = adapter.process(frames[0], stream="cam", publish=publish)
    assert len(seen) == 1
    probs, weights_at_publish, steps_at_publish = seen[0]
    np.testing.assert_allclose(probs, plain.process(frames[0]).class_probs, rtol=1e-5, atol=1e-6)
    assert steps_at_publish == 0  # the report is completed after the steps
    assert result.report.steps_taken == 2 and result.report.adapted_after_publish
    assert any(not torch.equal(weights_at_publish[n], p) for n, p in _params(adapter).items())
    # the next frame is predicted by the adapted weights
    second = adapter.process(frames[1], stream="cam")
    assert not np.allclose(second.class_probs, plain.process(frames[1]).class_probs)


def test_without_a_publish_callback_the_result_is_the_same(model, frames):
    configs = AdaptationConfig(**UNGATED, mode="online", adapt_after_publish=True, max_steps=1, learning_rate=0.05)
    a, b = TestTimeAdapter(model, configs, "cpu"), TestTimeAdapter(model, configs, "cpu")
    for image in frames[:4]:
        ra = a.process(image, stream="cam", publish=lambda r: None)
        rb = b.process(image, stream="cam")
        np.testing.assert_array_equal(ra.class_probs, rb.class_probs)


def _clocked(model, **config):
    clock = FakeClock(0.02)
    adapter = TestTimeAdapter(model, AdaptationConfig(**{**UNGATED, **config}), "cpu", clock=clock)
    clock.attach(adapter)
    adapter.calibrate()  # step 20 ms (one extractor forward), prediction 20 ms
    return adapter, clock


def test_the_deadline_bounds_the_prediction_and_the_steps_end_before_the_next_frame(model, frames):
    # budget 30 ms: prediction (20 ms) fits, a step before it would not
    before, clock = _clocked(model, mode="online", max_steps=5, budget_ms=30, measure_ssl_loss=False)
    report = before.process(frames[0], arrival_time=clock()).report
    assert (report.steps_taken, report.stop_reason, report.deadline_met) == (0, "budget", True)

    after, clock = _clocked(model, mode="online", max_steps=5, budget_ms=30, measure_ssl_loss=False,
                            adapt_after_publish=True)
    arrival = clock()
    published_at = []
    report = after.process(frames[0], arrival_time=arrival, publish=lambda r: published_at.append(clock()),
                           adapt_until=arrival + 0.1).report  # the next frame is due in 100 ms
    assert published_at == [pytest.approx(arrival + 0.02)] and report.deadline_met
    assert math.isclose(report.total_ms, 20.0)
    # 20 ms predicting, then 4 steps of 20 ms end exactly when the next frame is due
    assert (report.steps_taken, report.stop_reason) == (4, "budget")
    assert clock() <= arrival + 0.1 + 1e-9


def test_after_publish_without_a_next_frame_time_keeps_to_the_frame_budget(model, frames):
    after, clock = _clocked(model, mode="online", max_steps=5, budget_ms=70, measure_ssl_loss=False,
                            adapt_after_publish=True)
    arrival = clock()
    report = after.process(frames[0], arrival_time=arrival).report
    assert report.steps_taken == 2 and clock() <= arrival + 0.07 + 1e-9


def test_reset_mode_adapts_before_predicting_whatever_the_setting(model, frames):
    adapter = TestTimeAdapter(model, AdaptationConfig(**UNGATED, mode="reset", adapt_after_publish=True, max_steps=1,
                                                      learning_rate=0.05), "cpu")
    plain = TestTimeAdapter(model, AdaptationConfig(mode="off"), "cpu")
    result = adapter.process(frames[0])
    assert not result.report.adapted_after_publish and result.report.steps_taken == 1
    assert not np.allclose(result.class_probs, plain.process(frames[0]).class_probs)


def test_relative_gate_threshold_is_a_multiple_of_the_clean_loss(model, frames):
    clean = model.reference_stats["ssl_loss"]
    closed = TestTimeAdapter(model, AdaptationConfig(mode="online", min_ssl_loss_ratio=100.0), "cpu")
    opened = TestTimeAdapter(model, AdaptationConfig(mode="online", min_ssl_loss_ratio=1e-3), "cpu")
    reasons_closed = [closed.process(f, stream="cam").report.stop_reason for f in frames]
    reasons_opened = [opened.process(f, stream="cam").report.stop_reason for f in frames]
    assert reasons_closed == ["low_loss"] * 12  # no untrained model's loss is 100x its clean level
    assert reasons_opened == ["low_loss"] * 9 + ["done"] * 3  # the level is known after 10 frames
    assert closed.source_level("cam") < 100 * clean


def test_settings_that_need_reference_levels_are_refused_or_noted_for_a_model_without_them(frames):
    bare = build_model(ModelConfig(task="classifier", input_size=32, width=8, groups=4), seed=0)
    with pytest.raises(ValueError, match="checkpoint"):
        TestTimeAdapter(bare, AdaptationConfig(objective="features"), "cpu")
    adapter = TestTimeAdapter(bare, AdaptationConfig(mode="online", min_ssl_loss_ratio=0.0), "cpu")
    with pytest.raises(ValueError, match="checkpoint"):
        adapter.update_config(objective="features")
    assert adapter.config.objective == "rotation" and adapter.gate_note == ""
    # a relative gate (on by default) cannot be placed without the clean level: the adapter says so
    # and adapts as without it, instead of refusing to start on the defaults
    adapter.update_config(min_ssl_loss_ratio=1.3)
    assert "min_ssl_loss_ratio has no effect" in adapter.gate_note
    assert [adapter.process(f, stream="cam").report.stop_reason for f in frames[:3]] == ["done"] * 3
    adapter.update_config(min_ssl_loss=100.0)  # the absolute threshold still gates
    assert adapter.process(frames[3], stream="cam").report.stop_reason == "low_loss"


def test_feature_alignment_moves_the_extractor_only_and_tracks_the_stream(model, frames):
    adapter = TestTimeAdapter(model, AdaptationConfig(**UNGATED, mode="online", objective="features", max_steps=1,
                                                      learning_rate=0.05), "cpu")
    before = _params(adapter)
    reports = [adapter.process(image, stream="cam").report for image in frames[:4]]
    after = _params(adapter)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(n.startswith("extractor.") for n in changed)
    assert all(r.steps_taken == 1 and math.isfinite(r.ssl_loss_before) for r in reports)
    moments = adapter._streams["cam"].moments
    assert not torch.allclose(moments.mean, model.reference_stats["feature_mean"])  # moved with the frames


def test_prewarm_predicts_the_last_frame_again_and_changes_nothing(model, frames):
    config = AdaptationConfig(**UNGATED, mode="online", adapt_after_publish=True, max_steps=1, learning_rate=0.05)
    warmed, plain = TestTimeAdapter(model, config, "cpu"), TestTimeAdapter(model, config, "cpu")
    assert not warmed.prewarm()  # no frame yet
    for image in frames[:4]:
        a, b = warmed.process(image, stream="cam"), plain.process(image, stream="cam")
        np.testing.assert_array_equal(a.class_probs, b.class_probs)
        assert warmed.prewarm()
    assert (warmed.prewarms, plain.prewarms) == (4, 0)
    theirs = _params(plain)
    assert all(torch.equal(p, theirs[n]) for n, p in _params(warmed).items())
    warmed.reset()
    assert not warmed.prewarm()  # the stream starts anew with its next frame


def test_prewarm_is_skipped_when_it_would_end_after_the_frame_is_due(model, frames):
    adapter, clock = _clocked(model, mode="off")
    adapter.process(frames[0], arrival_time=clock())
    assert not adapter.prewarm(until=clock() + 0.01)  # a prediction takes 20 ms
    assert adapter.prewarm(until=clock() + 0.03)
    assert adapter.prewarms == 1
    # started so that it ends prewarm_ms (5 ms by default) before the frame is due
    assert adapter.prewarm_at(1.0) == pytest.approx(1.0 - 0.005 - 0.02)
    never, _ = _clocked(model, mode="off", prewarm_ms=0.0)
    assert never.prewarm_at(1.0) is None
