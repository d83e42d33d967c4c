"""The confidence check: online, a stream's adapted weights predict only while the main head is surer of
itself with them than with the source weights on the same recent frames."""

import numpy as np
import pytest
import torch

from ttt_perception.adaptation_config import AdaptationConfig
from ttt_perception.adapter import TestTimeAdapter
from ttt_perception.choices import GATE_OFF
from ttt_perception.data import make_classification_frames, make_detection_frames
from ttt_perception.detection import decode_detections
from ttt_perception.model import ModelConfig, build_model
from ttt_perception.preprocess import scale_to_image, to_model_input
from ttt_perception.stream_state import CONFIDENCE_MIN_FRAMES, ConfidenceRecord

# steps on every frame from the first (no shift gate), large enough to move the weights
STEPPING = {"mode": "online", **GATE_OFF, "learning_rate": 0.05}


def test_the_record_trusts_the_adapted_weights_only_when_surer_by_the_margin():
    record = ConfidenceRecord(window=4)
    for _ in range(CONFIDENCE_MIN_FRAMES - 1):
        record.add(source=0.5, adapted=0.9)
    assert not record.adapted_trusted(0.0)  # too few frames to judge
    record.add(source=0.5, adapted=0.9)
    assert record.adapted_trusted(0.0) and record.adapted_trusted(0.5) and not record.adapted_trusted(0.9)


def test_the_record_judges_only_its_window_and_skips_non_finite_values():
    record = ConfidenceRecord(window=3)
    for _ in range(3):
        record.add(source=0.5, adapted=0.9)
    record.add(source=float("nan"), adapted=0.1)
    assert record.adapted_trusted(0.05)
    for _ in range(3):  # the adapted weights lose their edge: the old frames leave the window
        record.add(source=0.6, adapted=0.4)
    assert not record.adapted_trusted(0.0)


def _models():
    classifier = build_model(ModelConfig(task="classifier", input_size=32, width=8, groups=4, stem_stride=1,
                                         stage_strides=(1, 2, 2)), seed=0)
    detector = build_model(ModelConfig(task="detector", input_size=32, width=8, groups=4, stem_stride=2,
                                       stage_strides=(1, 2, 1)), seed=0)
    return {"classifier": (classifier, make_classification_frames("val", 6, size=32, seed=3).images),
            "detector": (detector, make_detection_frames("val", 6, size=32, seed=3).images)}


MODELS = _models()


@pytest.mark.parametrize("task", ["classifier", "detector"])
@pytest.mark.parametrize("after_publish", [False, True])
def test_until_the_adapted_weights_are_judged_the_source_weights_predict(task, after_publish):
    model, frames = MODELS[task]
    checked = TestTimeAdapter(model, AdaptationConfig(**STEPPING, adapt_after_publish=after_publish,
                                                      confidence_fallback="source"), "cpu")
    unchecked = TestTimeAdapter(model, AdaptationConfig(**STEPPING, adapt_after_publish=after_publish,
                                                        verify_confidence=False), "cpu")
    plain = TestTimeAdapter(model, AdaptationConfig(mode="off"), "cpu")
    source = {n: p.detach().clone() for n, p in checked.model.extractor.named_parameters()}
    for image in frames[:CONFIDENCE_MIN_FRAMES]:
        result = checked.process(image)
        adapted = unchecked.process(image)
        off = plain.process(image)
        assert result.report.steps_taken == 1
        np.testing.assert_allclose(result.class_probs, off.class_probs, atol=1e-6)  # as if no step was taken
        np.testing.assert_allclose(result.detections.scores, off.detections.scores, atol=1e-6)
    assert result.report.source_predicted and not adapted.report.source_predicted
    assert not np.allclose(adapted.class_probs, off.class_probs, atol=1e-6)  # the steps did change the output
    moved = [n for n, p in checked.model.extractor.named_parameters() if not torch.equal(p, source[n])]
    assert moved, "the checked stream keeps adapting while the source weights predict"


@pytest.mark.parametrize("after_publish", [False, True])
def test_until_trusted_each_frame_goes_to_the_weights_surer_of_it(after_publish):
    model, frames = MODELS["classifier"]
    checked = TestTimeAdapter(model, AdaptationConfig(**STEPPING, adapt_after_publish=after_publish,
                                                      confidence_floor=0.0), "cpu")
    unchecked = TestTimeAdapter(model, AdaptationConfig(**STEPPING, adapt_after_publish=after_publish,
                                                        verify_confidence=False), "cpu")
    plain = TestTimeAdapter(model, AdaptationConfig(mode="off"), "cpu")
    picked = []
    for image in frames[:CONFIDENCE_MIN_FRAMES + 1]:
        record = checked._streams["default"].confidence if checked._streams else None
        trusted = record is not None and record.adapted_trusted(checked.config.confidence_margin)
        result, adapted, off = checked.process(image), unchecked.process(image), plain.process(image)
        if not trusted and not np.allclose(adapted.class_probs, off.class_probs, atol=1e-6):
            surer = adapted if adapted.class_probs.max() > off.class_probs.max() else off
            np.testing.assert_allclose(result.class_probs, surer.class_probs, atol=1e-6)
            assert result.report.source_predicted == (surer is off)
            picked.append(surer is adapted)
    assert True in picked and False in picked, "both weights won some frames (else the test shows nothing)"


def _surer_choices(floor: float, frames) -> list[tuple[float, bool]]:
    """(the adapted weights' confidence, whether they were published) on each frame where they were surer
    than the source weights, with a window that never trusts them."""
    model = MODELS["classifier"][0]
    config = AdaptationConfig(**STEPPING, confidence_margin=1.0, confidence_fallback="surer", confidence_floor=floor)
    checked = TestTimeAdapter(model, config, "cpu")
    unchecked = TestTimeAdapter(model, AdaptationConfig(**STEPPING, verify_confidence=False), "cpu")
    plain = TestTimeAdapter(model, AdaptationConfig(mode="off"), "cpu")
    choices = []
    for image in frames:
        result, adapted, off = checked.process(image), unchecked.process(image), plain.process(image)
        if adapted.class_probs.max() > off.class_probs.max() and not np.allclose(adapted.class_probs, off.class_probs):
            published = adapted if not result.report.source_predicted else off
            np.testing.assert_allclose(result.class_probs, published.class_probs, atol=1e-6)
            choices.append((float(adapted.class_probs.max()), not result.report.source_predicted))
    return choices


def test_below_the_confidence_floor_the_source_weights_answer_even_when_less_sure():
    frames = np.concatenate([MODELS["classifier"][1]] * 2)
    unfloored = _surer_choices(0.0, frames)
    assert len(unfloored) >= 2 and all(published for _, published in unfloored)
    levels = sorted(confidence for confidence, _ in unfloored)
    floor = (levels[0] + levels[-1]) / 2  # some of those frames above it, some below
    floored = _surer_choices(floor, frames)
    assert [c for c, _ in floored] == pytest.approx([c for c, _ in unfloored], abs=1e-6)  # the same steps
    assert [published for _, published in floored] == [c >= floor for c, _ in floored]
    assert {published for _, published in floored} == {True, False}


def test_the_floor_is_the_classifiers_by_default_and_checked():
    assert AdaptationConfig().resolved_for("classifier").confidence_floor == 0.75
    assert AdaptationConfig().resolved_for("detector").confidence_floor == 0.0
    assert AdaptationConfig(confidence_floor=0.5).resolved_for("classifier").confidence_floor == 0.5
    with pytest.raises(ValueError, match="confidence_floor must be in"):
        AdaptationConfig(confidence_floor=1.5).validated()


@pytest.mark.parametrize("task", ["classifier", "detector"])
def test_until_trusted_the_average_of_both_weights_outputs_is_published(task):
    model, frames = MODELS[task]
    never_trusted = {**STEPPING, "confidence_margin": 1.0, "score_threshold": 0.0}
    averaging = TestTimeAdapter(model, AdaptationConfig(**never_trusted, confidence_fallback="average"), "cpu")
    unchecked = TestTimeAdapter(model, AdaptationConfig(**never_trusted, verify_confidence=False), "cpu")
    plain = TestTimeAdapter(model, AdaptationConfig(**{**never_trusted, "mode": "off"}), "cpu")
    for image in frames:  # a step on every frame before its prediction: the weights differ from the first
        result, adapted, off = averaging.process(image), unchecked.process(image), plain.process(image)
        assert result.report.outputs_averaged and not result.report.source_predicted
        x = to_model_input(image, model.config, "cpu")[None]
        with torch.no_grad():  # the weights that predicted: adapted ones after the frame's step, and the source
            outputs = [m.main_head(m.extractor(x)) for m in (unchecked.model, plain.model)]
        if task == "classifier":
            expected = sum(torch.softmax(o[0], dim=0) for o in outputs).numpy() / 2
            np.testing.assert_allclose(result.class_probs, expected, atol=1e-5)
            continue
        heat = sum(torch.sigmoid(o["heatmap"][0]) for o in outputs) / 2
        box = sum(o["box"][0] for o in outputs) / 2
        expected = decode_detections(torch.logit(heat, eps=1e-6), box, model.config.output_stride, 0.0,
                                     averaging.config.max_detections)
        np.testing.assert_allclose(result.detections.scores, expected.scores, atol=1e-5)
        in_image = expected.scaled(*scale_to_image(model.config, image.shape))
        np.testing.assert_allclose(result.detections.boxes, in_image.boxes, atol=1e-3)
    assert not np.allclose(adapted.class_probs, off.class_probs, atol=1e-4), "the steps changed the output"


@pytest.mark.parametrize("fallback", ["surer", "average"])
def test_the_second_prediction_is_taken_only_when_it_fits_the_deadline(fallback):
    model, frames = MODELS["classifier"]
    # a margin the adapted weights never reach: the window never trusts them
    config = AdaptationConfig(**STEPPING, adapt_after_publish=True, budget_ms=50.0, confidence_margin=1.0,
                              confidence_fallback=fallback)
    adapter = TestTimeAdapter(model, config, "cpu")
    plain = TestTimeAdapter(model, AdaptationConfig(mode="off"), "cpu")
    judged = 0
    for image in frames:  # every frame arrives already late: no time for a second prediction
        adapted_before = "default" in adapter._streams and adapter._streams["default"].adapted
        now = adapter.clock()
        result = adapter.process(image, arrival_time=now - 1.0, adapt_until=now + 60.0)
        assert result.report.steps_taken == 1 and not result.report.deadline_met
        if adapted_before:  # the source weights predict every such frame, as with fallback "source"
            assert result.report.source_predicted and not result.report.outputs_averaged
            np.testing.assert_allclose(result.class_probs, plain.process(image).class_probs, atol=1e-6)
            judged += 1
    assert judged == len(frames) - 1


def test_a_reset_stream_is_judged_afresh():
    model, frames = MODELS["classifier"]
    adapter = TestTimeAdapter(model, AdaptationConfig(**STEPPING, confidence_margin=0.0, confidence_fallback="source"),
                              "cpu")
    for image in frames:
        adapter.process(image, stream="a")
    adapter.reset("a")
    first = adapter.process(frames[0], stream="a").report
    assert first.steps_taken == 1 and first.source_predicted


def test_the_check_only_runs_online():
    model, frames = MODELS["classifier"]
    for mode in ("reset", "off"):
        adapter = TestTimeAdapter(model, AdaptationConfig(**{**STEPPING, "mode": mode}), "cpu")
        assert not any(adapter.process(image).report.source_predicted for image in frames)


def test_the_margin_is_checked():
    with pytest.raises(ValueError, match="confidence_margin"):
        AdaptationConfig(confidence_margin=-0.1).validated()
