"""min_ssl_loss: adapt only while the source weights' running rotation loss says the frames are shifted."""

import numpy as np
import pytest
import torch

from ttt_perception.adaptation_config import AdaptationConfig
from ttt_perception.adapter import TestTimeAdapter
from ttt_perception.corruptions import corrupt_batch
from ttt_perception.data import make_detection_frames
from ttt_perception.default_models import load_default_model
from ttt_perception.ros import parameters as P

# The packaged profile on top of the node's defaults, without a deadline (steps must not depend on load).
PROFILE = {**P.adapter_settings({**P.defaults(), **P.read_parameters_file(P.profile_path("noisy_camera"))}),
           "budget_ms": 0.0}
# absolute thresholds only: open as soon as the level is known, or never
ALWAYS_OPEN = {**PROFILE, "min_ssl_loss": 1e-6, "min_ssl_loss_ratio": 0.0}
NEVER_OPEN = {**PROFILE, "min_ssl_loss": 50.0, "min_ssl_loss_ratio": 0.0}


@pytest.fixture(scope="module")
def detector():
    return load_default_model("detector", "cpu")


@pytest.fixture(scope="module")
def clean_frames():
    return make_detection_frames("val", 24, size=96, seed=5).images


def _reasons(adapter, images, stream="cam"):
    return [adapter.process(image, stream=stream).report.stop_reason for image in images]


def test_no_step_before_ten_frames_then_steps_while_the_level_is_above(detector, clean_frames):
    adapter = TestTimeAdapter(detector, AdaptationConfig(**ALWAYS_OPEN), "cpu")
    assert _reasons(adapter, clean_frames[:12]) == ["low_loss"] * 9 + ["done"] * 3
    adapter.reset("cam")  # a reset stream measures its level anew
    assert _reasons(adapter, clean_frames[:10]) == ["low_loss"] * 9 + ["done"]


def test_closed_gate_leaves_the_weights_at_the_source(detector, clean_frames):
    adapter = TestTimeAdapter(detector, AdaptationConfig(**NEVER_OPEN), "cpu")
    reports = [adapter.process(image, stream="cam").report for image in clean_frames]
    assert {(r.steps_taken, r.stop_reason) for r in reports} == {(0, "low_loss")}
    for name, tensor in adapter.stream_parameters("cam").items():
        assert torch.equal(tensor, adapter.source_parameters()[name]), name


def test_profile_stays_closed_on_clean_and_fog_and_opens_under_noise(detector, clean_frames):
    adapter = TestTimeAdapter(detector, AdaptationConfig(**PROFILE), "cpu")
    steps = {}
    for name, images in (("clean", clean_frames), ("fog", corrupt_batch(clean_frames, "fog", 5, seed=1)),
                         ("noise", corrupt_batch(clean_frames, "gaussian_noise", 5, seed=1))):
        steps[name] = sum(adapter.process(image, stream=name).report.steps_taken for image in images)
    assert steps["clean"] == steps["fog"] == 0, steps
    assert steps["noise"] >= 12, steps  # of 24 frames, the first 9 being the warm-up


def test_level_is_measured_on_the_source_weights(detector, clean_frames):
    """Adapting does not lower the signal that opened the gate (else adaptation would shut itself off)."""
    noisy = corrupt_batch(clean_frames, "gaussian_noise", 5, seed=2)
    adapting = TestTimeAdapter(detector, AdaptationConfig(**ALWAYS_OPEN), "cpu")
    watching = TestTimeAdapter(detector, AdaptationConfig(**NEVER_OPEN), "cpu")
    for image in noisy:
        adapting.process(image, stream="cam")
        watching.process(image, stream="cam")
    assert np.isclose(adapting.source_level("cam"), watching.source_level("cam"), rtol=1e-5)
    assert adapting.stream_parameters("cam").keys() and any(
        not torch.equal(t, adapting.source_parameters()[n]) for n, t in adapting.stream_parameters("cam").items())
    source = detector.state_dict()  # the frozen copy that measures the level kept the source weights
    assert all(torch.equal(t, source[n]) for n, t in adapting.source_model.state_dict().items())


def test_online_stream_returns_to_the_source_when_the_shift_is_over(detector, clean_frames):
    adapter = TestTimeAdapter(detector, AdaptationConfig(**PROFILE), "cpu")
    noisy = corrupt_batch(clean_frames, "gaussian_noise", 5, seed=3)
    noise_reports = [adapter.process(image, stream="cam").report for image in noisy]
    assert sum(r.steps_taken for r in noise_reports) > 0 and not any(r.auto_reset for r in noise_reports)
    moved = adapter.stream_parameters("cam")
    assert any(not torch.equal(moved[n], adapter.source_parameters()[n]) for n in moved)
    clean_reports = [adapter.process(image, stream="cam").report for image in np.concatenate([clean_frames] * 2)]
    resets = [r for r in clean_reports if r.auto_reset]
    assert len(resets) == 1 and "below the gate" in resets[0].auto_reset  # once, when the level drops
    assert all(r.steps_taken == 0 for r in clean_reports[clean_reports.index(resets[0]):])
    for name, tensor in adapter.stream_parameters("cam").items():
        assert torch.equal(tensor, adapter.source_parameters()[name]), name


def test_upper_bound_stops_the_steps_while_the_level_is_above_it(detector, clean_frames):
    """max_ssl_loss: the clean level (~0.2 for the packaged detector) is above a bound of 0.01, so no step
    after the level is known; without the lower bound, steps are taken until then."""
    config = AdaptationConfig(**{**ALWAYS_OPEN, "min_ssl_loss": 0.0, "max_ssl_loss": 0.01})
    adapter = TestTimeAdapter(detector, config, "cpu")
    reports = [adapter.process(image, stream="cam").report for image in clean_frames[:14]]
    assert [r.stop_reason for r in reports] == ["done"] * 9 + ["high_loss"] * 5
    resets = [r.auto_reset for r in reports if r.auto_reset]
    assert len(resets) == 1 and "above the gate's upper bound (0.01)" in resets[0]
    for name, tensor in adapter.stream_parameters("cam").items():  # what the steps learnt was dropped
        assert torch.equal(tensor, adapter.source_parameters()[name]), name
    adapter.update_config(max_ssl_loss=5.0)  # live: a bound above the level lets the steps go on
    assert adapter.process(clean_frames[14], stream="cam").report.stop_reason == "done"


def test_upper_bound_with_the_lower_one_opens_only_between_them(detector, clean_frames):
    noisy = corrupt_batch(clean_frames, "gaussian_noise", 5, seed=4)
    between = TestTimeAdapter(detector, AdaptationConfig(**{**ALWAYS_OPEN, "max_ssl_loss": 5.0}), "cpu")
    assert _reasons(between, noisy[:12]) == ["low_loss"] * 9 + ["done"] * 3
    level = between.source_level("cam")
    below = TestTimeAdapter(detector, AdaptationConfig(**{**ALWAYS_OPEN, "max_ssl_loss": level / 2}), "cpu")
    assert _reasons(below, noisy[:12]) == ["low_loss"] * 9 + ["high_loss"] * 3
    for bad in (-0.5, -2.0, float("nan")):
        with pytest.raises(ValueError, match="max_ssl_loss"):
            AdaptationConfig(max_ssl_loss=bad).validated()


def test_upper_bound_auto_is_the_tasks(detector, clean_frames, monkeypatch):
    """-1 takes the bound chosen for the model's task (the detector's: none, val tune19); a task whose
    bound is below the clean level stops its steps once the level is known; 0 is no bound of its own."""
    import ttt_perception.adaptation_config as config_module
    from ttt_perception.choices import TASK_DEFAULTS

    auto = {**ALWAYS_OPEN, "min_ssl_loss": 0.0, "max_ssl_loss": -1.0}
    assert TestTimeAdapter(detector, AdaptationConfig(**auto), "cpu").effective_config.max_ssl_loss == \
        TASK_DEFAULTS["detector"]["max_ssl_loss"]
    low = {**TASK_DEFAULTS, "detector": {**TASK_DEFAULTS["detector"], "max_ssl_loss": 0.01}}
    monkeypatch.setattr(config_module, "TASK_DEFAULTS", low)
    adapter = TestTimeAdapter(detector, AdaptationConfig(**auto), "cpu")
    assert _reasons(adapter, clean_frames[:12]) == ["done"] * 9 + ["high_loss"] * 3
    adapter.update_config(max_ssl_loss=0.0)  # explicit: no upper bound, whatever the task's
    assert _reasons(adapter, clean_frames[12:14]) == ["done"] * 2
