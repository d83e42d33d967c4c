"""The test-time adapter with real torch: modes, objectives, deadline policies, streams, safety."""

import math

import numpy as np
import pytest
import torch

from adapter_helpers import UNGATED, FakeClock
from ttt_perception.adaptation_config import PAPER_ONLINE, AdaptationConfig
from ttt_perception.adapter import TestTimeAdapter
from ttt_perception.choices import TASK_DEFAULTS
from ttt_perception.data import make_classification_frames
from ttt_perception.deadline import DurationEstimator
from ttt_perception.default_models import load_default_model
from ttt_perception.model import ModelConfig, build_model
from ttt_perception.preprocess import to_model_input


@pytest.fixture(scope="module")
def frames():
    return make_classification_frames("val", 24, size=32, seed=3)


@pytest.fixture()
def classifier():
    return load_default_model("classifier", "cpu")


def params_of(adapter):
    return {name: p.detach().clone() for name, p in adapter.model.named_parameters()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_reset_mode_restores_weights_bit_exactly(classifier, frames):
    config = AdaptationConfig(**UNGATED, mode="reset", max_steps=3, momentum=0.9, learning_rate=1e-2)
    adapter = TestTimeAdapter(classifier, config, "cpu")
    before = params_of(adapter)
    result = adapter.process(frames.images[0])
    assert result.report.steps_taken == 3
    assert_same(before, params_of(adapter))
    assert not adapter._optimizer.state  # momentum buffers are gone too
    # the prediction came from adapted weights: it differs from plain inference
    plain = TestTimeAdapter(load_default_model("classifier", "cpu"), AdaptationConfig(mode="off"), "cpu")
    assert not np.allclose(result.class_probs, plain.process(frames.images[0]).class_probs)


def test_online_mode_keeps_adapted_weights(classifier, frames):
    adapter = TestTimeAdapter(classifier, AdaptationConfig(**UNGATED, mode="online", max_steps=2), "cpu")
    source = {n: t.clone() for n, t in adapter.source_parameters().items()}
    adapter.process(frames.images[0], stream="cam")
    adapted = adapter.stream_parameters("cam")
    assert any(not torch.equal(adapted[n], source[n]) for n in source)
    heads_before = {n: p.clone() for n, p in adapter.model.named_parameters() if not n.startswith("extractor")}
    adapter.process(frames.images[1], stream="cam")
    later = adapter.stream_parameters("cam")
    assert any(not torch.equal(adapted[n], later[n]) for n in source)  # started from the adapted state
    for name, value in heads_before.items():  # rotation objective never touches the heads
        assert torch.equal(dict(adapter.model.named_parameters())[name], value)
    packaged = load_default_model("classifier").parameters()
    assert all(torch.equal(p, q) for p, q in zip(classifier.parameters(), packaged))


def test_off_equals_plain_inference(classifier, frames):
    adapter = TestTimeAdapter(classifier, AdaptationConfig(mode="off"), "cpu")
    for image in frames.images[:4]:
        result = adapter.process(image)
        with torch.no_grad():
            logits = adapter.model(to_model_input(image, classifier.config, torch.device("cpu"))[None])[0]
        np.testing.assert_allclose(result.class_probs, torch.softmax(logits, 0).numpy(), rtol=1e-5, atol=1e-6)
        assert result.report.steps_taken == 0 and result.report.stop_reason == "off"


def test_entropy_objective_updates_only_norm_affine_parameters(classifier, frames):
    adapter = TestTimeAdapter(classifier, AdaptationConfig(**UNGATED, mode="online", objective="entropy", max_steps=2,
                                                           learning_rate=0.05), "cpu")
    before = params_of(adapter)
    adapter.process(frames.images[0])
    after = params_of(adapter)
    norm_names = {f"{prefix}.{module_name}.{p}"
                  for prefix, part in (("extractor", adapter.model.extractor), ("main_head", adapter.model.main_head))
                  for module_name, module in part.named_modules() if isinstance(module, torch.nn.GroupNorm)
                  for p in ("weight", "bias")}
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and changed <= norm_names
    assert any(n.startswith("extractor") for n in changed)


def _timed_adapter(model, **config):
    clock = FakeClock(0.02)
    adapter = TestTimeAdapter(model, AdaptationConfig(**{**UNGATED, **config}), "cpu", clock=clock)
    clock.attach(adapter)
    adapter.calibrate()  # step 20 ms (one extractor forward), prediction 20 ms
    return adapter, clock


def test_truncate_takes_the_steps_that_fit(classifier, frames):
    adapter, clock = _timed_adapter(classifier, mode="reset", max_steps=10, budget_ms=100, policy="truncate",
                                    measure_ssl_loss=False)
    report = adapter.process(frames.images[0], arrival_time=clock()).report
    # 4 steps x 20 ms + prediction 20 ms = 100 ms: exactly the budget; a fifth step would not fit
    assert (report.steps_planned, report.steps_taken, report.stop_reason) == (10, 4, "budget")
    assert report.deadline_met and math.isclose(report.total_ms, 100.0)


def test_the_gates_measurement_counts_against_the_budget(classifier, frames):
    adapter, clock = _timed_adapter(classifier, mode="reset", max_steps=1, budget_ms=50, min_ssl_loss=1e-6,
                                    measure_ssl_loss=False)
    reports = [adapter.process(image, arrival_time=clock()).report for image in frames.images[:3]]
    # the first frame measures the gate (20 ms, one extractor forward); from then on gate + step +
    # prediction (60 ms) do not fit 50 ms, so neither is started and the prediction stays on time
    assert [r.stop_reason for r in reports] == ["low_loss", "budget", "budget"]
    assert all(r.deadline_met for r in reports[1:])


def test_skip_takes_all_or_nothing(classifier, frames):
    adapter, clock = _timed_adapter(classifier, mode="reset", max_steps=10, budget_ms=100, policy="skip",
                                    measure_ssl_loss=False)
    report = adapter.process(frames.images[0], arrival_time=clock()).report
    assert (report.steps_taken, report.stop_reason, report.deadline_met) == (0, "budget", True)
    adapter.update_config(max_steps=3)
    report = adapter.process(frames.images[0], arrival_time=clock()).report
    assert (report.steps_taken, report.stop_reason, report.deadline_met) == (3, "done", True)


def test_late_frame_is_only_predicted(classifier, frames):
    adapter, clock = _timed_adapter(classifier, mode="online", max_steps=5, budget_ms=100, measure_ssl_loss=False)
    report = adapter.process(frames.images[0], arrival_time=clock() - 0.2).report
    assert (report.steps_taken, report.stop_reason, report.deadline_met) == (0, "late", False)


def test_no_budget_takes_every_step(classifier, frames):
    adapter, clock = _timed_adapter(classifier, mode="reset", max_steps=6, budget_ms=0)
    report = adapter.process(frames.images[0], arrival_time=clock()).report
    assert (report.steps_taken, report.stop_reason, report.deadline_met) == (6, "done", True)


def test_non_finite_loss_resets_to_source(classifier, frames):
    adapter = TestTimeAdapter(classifier, AdaptationConfig(**UNGATED, mode="online"), "cpu")
    adapter.process(frames.images[0], stream="cam")
    with torch.no_grad():
        next(adapter.model.extractor.parameters()).fill_(float("nan"))
    report = adapter.process(frames.images[1], stream="cam").report
    assert "non-finite" in report.auto_reset
    assert_same(adapter.source_parameters(), adapter.stream_parameters("cam"))
    assert math.isfinite(report.ssl_loss_after) and math.isfinite(report.entropy)


def test_health_signal_resets_a_stream_whose_loss_leaves_its_range(classifier, frames):
    config = AdaptationConfig(**UNGATED, mode="online", health_sigma=3.0, health_patience=2)
    adapter = TestTimeAdapter(classifier, config, "cpu")
    for image in frames.images[:12]:
        assert adapter.process(image, stream="cam").report.auto_reset == ""
    with torch.no_grad():  # the online state drifts far away (finite, but broken)
        generator = torch.Generator().manual_seed(0)
        for param in adapter.model.extractor.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 3 * param.std().clamp(min=0.1))
    for image in frames.images[12:16]:
        reason = adapter.process(image, stream="cam").report.auto_reset
        if reason:
            break
    assert "sigma above its running range" in reason
    assert_same(adapter.stream_parameters("cam"), adapter.source_parameters())


def test_streams_adapt_independently_unless_shared(classifier, frames):
    adapter = TestTimeAdapter(classifier, AdaptationConfig(**UNGATED, mode="online", max_steps=2), "cpu")
    adapter.process(frames.images[0], stream="left")
    left = adapter.stream_parameters("left")
    assert_same(adapter.stream_parameters("right"), adapter.source_parameters())
    adapter.process(frames.images[1], stream="right")
    assert_same(adapter.stream_parameters("left"), left)  # right's steps did not touch left's state
    assert adapter.stream_names() == ["left", "right"]
    adapter.reset("left")
    assert_same(adapter.stream_parameters("left"), adapter.source_parameters())

    adapter.update_config(share_state=True)
    adapter.process(frames.images[0], stream="left")
    assert_same(adapter.stream_parameters("right"), adapter.stream_parameters("left"))


def test_invalid_config_is_refused_and_nothing_changes(classifier):
    adapter = TestTimeAdapter(classifier, AdaptationConfig(**UNGATED, mode="reset"), "cpu")
    for bad in ({"mode": "sometimes"}, {"learning_rate": -1.0}, {"max_steps": 1000}, {"policy": "x"},
                {"learning_rate": float("nan")}, {"no_such_setting": 1}):
        with pytest.raises(ValueError):
            adapter.update_config(**bad)
        assert adapter.config == AdaptationConfig(**UNGATED, mode="reset")


def test_auto_values_take_the_models_task_choice_and_follow_live_changes(classifier):
    detector = build_model(ModelConfig(task="detector", input_size=32, width=8, groups=4))
    for model in (classifier, detector):
        chosen = TASK_DEFAULTS[model.config.task]
        adapter = TestTimeAdapter(model, AdaptationConfig(), "cpu")
        assert adapter.config.learning_rate == 0 and adapter.config.confidence_fallback == "auto"
        effective = adapter.effective_config
        assert (effective.learning_rate, effective.confidence_fallback) == (chosen["learning_rate"],
                                                                             chosen["confidence_fallback"])
        assert adapter._optimizer.param_groups[0]["lr"] == chosen["learning_rate"]
        adapter.update_config(learning_rate=0.02, confidence_fallback="source")
        assert adapter._optimizer.param_groups[0]["lr"] == 0.02
        assert adapter.effective_config.confidence_fallback == "source"
        adapter.update_config(learning_rate=0.0)  # back to the task's rate, live
        assert adapter._optimizer.param_groups[0]["lr"] == chosen["learning_rate"]
    with pytest.raises(ValueError, match="confidence_fallback"):
        AdaptationConfig(confidence_fallback="both").validated()


def test_momentum_and_copies_auto_are_the_tasks_and_zero_momentum_is_a_momentum_of_its_own(classifier, monkeypatch):
    import ttt_perception.adaptation_config as config_module

    detector = build_model(ModelConfig(task="detector", input_size=32, width=8, groups=4))
    # both packaged tasks step without momentum (val: tune16, tune17); a task whose choice differs
    # shows that -1 takes the task's value and 0 is a momentum of its own
    by_task = {**TASK_DEFAULTS, "classifier": {**TASK_DEFAULTS["classifier"], "momentum": 0.5}}
    monkeypatch.setattr(config_module, "TASK_DEFAULTS", by_task)
    for model in (classifier, detector):
        chosen = by_task[model.config.task]["momentum"]
        adapter = TestTimeAdapter(model, AdaptationConfig(), "cpu")
        assert adapter.config.momentum == -1 and adapter.effective_config.momentum == chosen
        assert adapter._optimizer.param_groups[0]["momentum"] == chosen
        adapter.update_config(momentum=0.0)  # explicit: no momentum, whatever the task's choice
        assert adapter.effective_config.momentum == 0.0 and adapter._optimizer.param_groups[0]["momentum"] == 0.0
        adapter.update_config(momentum=-1.0)
        assert adapter._optimizer.param_groups[0]["momentum"] == chosen
        copies = TASK_DEFAULTS[model.config.task]["batch_size"]
        assert adapter.config.batch_size == 0 and adapter.effective_config.batch_size == copies
        assert adapter._step_kind()[-1] == copies  # the steps' cost is planned for the copies they take
        adapter.update_config(batch_size=3)
        assert adapter._step_kind()[-1] == 3
    stepping = TestTimeAdapter(classifier, AdaptationConfig(**UNGATED, mode="online"), "cpu")
    sizes = []
    stepping.model.extractor.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    assert stepping.process(np.zeros((32, 32, 3), np.uint8)).report.steps_taken == 1
    assert max(sizes) == TASK_DEFAULTS["classifier"]["batch_size"]  # the step's batch: that many copies
    assert PAPER_ONLINE.resolved_for("classifier").momentum == 0.0  # the paper's SGD has none
    for bad in (-0.5, 1.0, float("nan")):
        with pytest.raises(ValueError, match="momentum"):
            AdaptationConfig(momentum=bad).validated()


def test_detector_boxes_come_back_in_image_pixels():
    model = build_model(ModelConfig(task="detector", input_size=64, width=8, groups=4))
    config = AdaptationConfig(**UNGATED, mode="online", score_threshold=0.0, max_detections=5)
    adapter = TestTimeAdapter(model, config, "cpu")
    result = adapter.process(np.zeros((240, 320, 3), np.uint8))
    assert len(result.detections) == 5
    assert result.detections.boxes[:, [0, 2]].max() > 64  # scaled from 64 px input to 320 px width
    assert 0.0 <= result.report.entropy <= 1.0 and 0.0 <= result.report.margin <= 1.0


def test_bad_images_raise_clear_errors(classifier):
    adapter = TestTimeAdapter(classifier, AdaptationConfig(mode="off"), "cpu")
    for bad, reason in ((np.zeros((0, 10, 3), np.uint8), "zero size"), (np.zeros((8, 8), np.uint8), "HxWx3"),
                        (np.zeros((8, 8, 3), np.float32), "uint8")):
        with pytest.raises(ValueError, match=reason):
            adapter.process(bad)


def test_refused_steps_are_retried_after_a_window_of_refusals(classifier, frames):
    adapter, clock = _timed_adapter(classifier, mode="online", max_steps=1, budget_ms=30, policy="truncate",
                                    measure_ssl_loss=False)
    # one slow step (a passing hiccup) fills the estimate: every later step looks too long for 30 ms
    kind = adapter._step_kind()
    for _ in range(adapter.timings._samples[kind].maxlen):
        adapter.timings.record(kind, 1.0)
    reports = [adapter.process(frames.images[i % 24], arrival_time=clock()).report for i in range(40)]
    assert reports[0].steps_taken == 0 and reports[0].stop_reason == "budget"
    assert any(r.steps_taken == 1 for r in reports)  # re-measured once the slow samples aged out


def test_a_step_that_never_fits_is_probed_ever_more_rarely():
    """Budget 30 ms, step 20 ms + prediction 20 ms: a step never fits. A probe after a window of
    refusals, then after twice as many each time (a probe leaves one sample; refusals must not empty
    the estimate again at once)."""
    adapter, clock = _timed_adapter(build_model(ModelConfig(task="classifier", input_size=32, width=8), seed=0),
                                    mode="online", max_steps=1, budget_ms=30, measure_ssl_loss=False)
    frame = np.zeros((32, 32, 3), np.uint8)
    reports = [adapter.process(frame, arrival_time=clock()).report for _ in range(250)]
    probes = [i for i, r in enumerate(reports) if r.steps_taken]
    window = adapter.timings.window
    # after 32 refusals, then 64, then 128: 3 late frames of 250 (one a window would be 7)
    assert probes == [window, 2 * window + 1 + window, 4 * window + 1 + 3 * window + 1], probes
    assert sum(not r.deadline_met for r in reports) == len(probes)


def test_the_wait_before_a_probe_starts_afresh_once_work_fits_again():
    timings, kind = DurationEstimator(window=4), ("step",)

    def refuse(times: int) -> bool:
        """Refuse ``times`` times; whether the estimate was dropped for a probe."""
        for _ in range(times):
            timings.refused(kind)
        return timings.estimate(kind) is None

    timings.record(kind, 1.0)
    assert refuse(4)
    timings.record(kind, 1.0)  # the probe: still slow
    assert not refuse(4) and refuse(4)  # the next wait is twice as long
    timings.record(kind, 1.0)
    assert not refuse(8)
    timings.record(kind, 0.01)  # work taken on its estimate (a budget raised): the slowdown has passed
    assert refuse(4)
