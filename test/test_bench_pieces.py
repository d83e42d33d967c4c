"""The pure pieces of the benchmarks: stream scheduling with an injected clock, the gradient inner
product, scoring, statistics and the generated docs. Real torch, tiny models, no timing asserts."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ttt_perception.adaptation_config import AdaptationConfig
from ttt_perception.adapter import TestTimeAdapter
from ttt_perception.bench.common import parse_severities
from ttt_perception.bench.correlation import gradient_inner_product, pearson
from ttt_perception.bench.evaluation import JOINT, private_adapter, score_stream
from ttt_perception.bench.gradual import gradual_stream, severity_slope
from ttt_perception.bench.realtime import (
    ADAPT_AFTER,
    COLD,
    SkipIdleClock,
    budget_reference,
    budget_reference_ms,
    measure_plain_inference,
    percentiles,
    realtime_methods,
    run_fixed_rate,
    run_setting,
)
from ttt_perception.bench.report import (
    END,
    PARAMETERS_END,
    PARAMETERS_START,
    START,
    render_parameter_table,
    render_results,
    replace_section,
)
from ttt_perception.data import make_classification_frames, make_detection_frames
from ttt_perception.model import ModelConfig, build_model
from ttt_perception.objectives import plain_rotations
from ttt_perception.ros.parameters import SPECS
from ttt_perception.training import prepare_inputs


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 0.0)


def tiny_classifier():
    config = ModelConfig(task="classifier", input_size=16, width=8, groups=4, stem_stride=1, stage_strides=(1, 2, 2))
    return build_model(config, seed=0).eval()


def tiny_detector():
    config = ModelConfig(task="detector", input_size=32, width=8, groups=4, stem_stride=2, stage_strides=(1, 2, 1))
    return build_model(config, seed=0).eval()


# ---- stream scheduler ---------------------------------------------------------------------------


def test_slow_worker_drops_the_frames_that_arrive_while_busy():
    clock = FakeClock()

    def process(index, arrival):
        assert arrival == pytest.approx(index * 0.25)
        assert clock() >= arrival  # never works on a frame before it has arrived
        clock.now += 0.625  # 2.5 frame periods of work
        return f"out{index}"

    run = run_fixed_rate(10, 4.0, process, clock, clock.sleep)
    assert [p.index for p in run.processed] == [0, 2, 5, 7, 9]
    assert run.dropped == [1, 3, 4, 6, 8]
    held = run.held_outputs()
    # frame 1 arrives before anything was published; 3 and 4 see frame 0's output, 6 frame 2's, 8 frame 5's
    assert held == ["out0", None, "out2", "out0", "out0", "out5", "out2", "out7", "out5", "out9"]


def test_fast_worker_sleeps_until_each_arrival_and_drops_nothing():
    clock = FakeClock()
    starts = []

    def process(index, arrival):
        starts.append(clock())
        clock.now += 0.01
        return index

    run = run_fixed_rate(5, 10.0, process, clock, clock.sleep)
    assert run.dropped == []
    assert [p.index for p in run.processed] == list(range(5))
    assert starts == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert run.held_outputs() == list(range(5))


def test_idle_work_runs_once_before_each_frame_that_has_not_arrived_yet():
    clock = FakeClock()
    idle, starts = [], []

    def process(index, arrival):
        starts.append(clock())
        clock.now += 0.01 if index != 2 else 0.25  # frame 2's work outlasts frames 3 and 4
        return index

    def before_arrival(due):
        idle.append((round(clock(), 6), round(due, 6)))
        clock.now = due - 0.005  # sleeps until 5 ms before the frame, as the pre-warm does
        clock.now += 0.002  # and works 2 ms

    run = run_fixed_rate(7, 10.0, process, clock, clock.sleep, before_arrival)
    assert [p.index for p in run.processed] == [0, 1, 2, 4, 5, 6]  # 3 arrived while frame 2 was in work
    # called after frames 0, 1, 4 and 5, each with the due time of the frame that follows; never when a
    # frame had arrived already (after frame 2)
    assert idle == [(0.01, 0.1), (0.11, 0.2), (0.46, 0.5), (0.51, 0.6)]
    assert starts[1:3] == pytest.approx([0.1, 0.2])  # the frame still starts on its arrival


def test_realtime_methods_run_with_the_nodes_prewarm_and_two_without():
    methods = realtime_methods(1e-3)
    assert methods[JOINT].prewarm_ms == AdaptationConfig().prewarm_ms > 0
    assert methods[ADAPT_AFTER].prewarm_ms > 0 and methods[ADAPT_AFTER].adapt_after_publish
    cold = {name: cfg for name, cfg in methods.items() if cfg.prewarm_ms == 0}
    assert set(cold) == {JOINT + COLD, ADAPT_AFTER + COLD}
    assert dataclasses.replace(cold[ADAPT_AFTER + COLD], prewarm_ms=methods[ADAPT_AFTER].prewarm_ms) == \
        methods[ADAPT_AFTER]


def test_skip_idle_clock_jumps_over_sleeps_but_follows_its_base():
    base = FakeClock()
    clock = SkipIdleClock(base)
    base.now = 1.0
    clock.sleep(2.5)
    clock.sleep(-1.0)  # negative sleeps are ignored
    assert clock() == pytest.approx(3.5)
    base.now = 1.5
    assert clock() == pytest.approx(4.0)


def test_adapter_deadlines_follow_the_injected_stream_clock():
    """A stream driven by a skip-idle clock: the adapter's deadline bookkeeping uses the same timeline."""
    clock = SkipIdleClock(FakeClock())
    model = tiny_classifier()
    adapter = TestTimeAdapter(model, AdaptationConfig(mode="off", budget_ms=50.0), device="cpu", clock=clock)
    frames = make_classification_frames("val", 4, size=16, seed=0).images
    reports = []
    run = run_fixed_rate(4, 10.0, lambda i, t: reports.append(adapter.process(frames[i], arrival_time=t).report),
                         clock, clock.sleep)
    assert len(run.processed) == 4
    assert all(r.deadline_met for r in reports)  # fake base clock: work takes no time


def test_plain_inference_at_a_rate_waits_a_period_between_frames():
    """On the wall clock the budgets' reference is plain inference as a camera delivers frames: each one
    after an idle wait, not back to back."""
    frames = make_classification_frames("val", 3, size=16, seed=0).images
    began = time.perf_counter()
    at_rate = measure_plain_inference(tiny_classifier(), frames, torch.device("cpu"), False, repeats=3, fps=50.0)
    assert time.perf_counter() - began >= 7 / 50.0  # 5 warm-up + 3 measured frames, a period after each start
    assert 0 < at_rate["forward_ms"] <= at_rate["plain_inference_ms"]


def test_budgets_are_multiples_of_plain_inference_measured_under_the_runs_clock():
    model, frames = tiny_classifier(), make_classification_frames("val", 3, size=16, seed=0).images
    cpu = torch.device("cpu")
    assert budget_reference(model, frames, cpu, False, 10.0, False, 1.25) == 1.25
    assert 0 < budget_reference(model, frames, cpu, False, 100.0, True, 1.25, repeats=2) != 1.25
    # what the plot reads back: the median of the runs' own references, or the one of older files
    runs = [{"fps": 10.0, "budget_multiple": 1.2, "plain_inference_ms": v} for v in (3.0, 3.4, 4.0)]
    runs.append({"fps": 10.0, "budget_multiple": 0.0, "plain_inference_ms": 1.5})  # no deadline: not a reference
    assert budget_reference_ms({"plain_inference_ms": 1.5, "runs": runs}, 10.0) == 3.4
    assert budget_reference_ms({"plain_inference_ms": 1.5, "runs": [{"fps": 10.0, "budget_multiple": 1.2}]},
                               10.0) == 1.5


def test_percentiles_of_nothing_are_nan():
    assert all(np.isnan(v) for v in percentiles([]).values())
    assert percentiles([1.0, 2.0, 3.0])["p50"] == pytest.approx(2.0)


def test_paired_errors_count_the_frames_where_only_one_method_errs():
    from ttt_perception.bench.common import paired_errors

    first = [1, 1, 0, 0, 1, 0, 0, 0, 1]
    second = [0, 1, 1, 1, 1, 1, 1, 0, 0]
    paired = paired_errors(first, second)  # only the first: frames 0, 8; only the second: 2, 3, 5, 6
    assert (paired["only_first_wrong"], paired["only_second_wrong"]) == (2, 4)
    assert paired["p_value"] == pytest.approx(44 / 64)  # P(X <= 2) + P(X >= 4), X ~ Binomial(6, 1/2)
    assert paired_errors([1, 0, 0, 0, 0, 0], [0] * 6)["p_value"] == 1.0  # one frame: no evidence either way
    assert paired_errors([0] * 8, [1] * 8)["p_value"] == pytest.approx(2 / 256)
    assert paired_errors([1, 0], [1, 0]) == {"only_first_wrong": 0, "only_second_wrong": 0, "p_value": 1.0}
    with pytest.raises(ValueError, match="the same frames"):
        paired_errors([1, 0, 1], [1, 0])


def test_the_realtime_error_target_says_where_the_runs_disagree_on_the_same_frames():
    from ttt_perception.bench.realtime import targets_for

    data = make_classification_frames("val", 6, size=16, seed=0)
    sets = {"a": data.images, "b": 255 - data.images}  # as the bench's corruptions: one set of labels for both
    methods = realtime_methods(1e-3)
    runs = []
    for name in (JOINT, ADAPT_AFTER):
        run = run_setting(tiny_classifier(), name, methods[name], 1000.0, 10.0, sets, data.labels,
                          torch.device("cpu"), seed=0, amp=False)
        run["budget_multiple"] = 1.2
        runs.append(run)
    off, after = runs
    for run in runs:  # the per-frame record is the error, frame by frame, in the sets' order
        assert len(run["wrong_frames"]) == 12 and set(run["wrong_frames"]) <= {"0", "1"}
        assert 100 * run["wrong_frames"].count("1") / 12 == pytest.approx(run["error"])
    after["wrong_frames"] = "110000" + off["wrong_frames"][6:]  # differ from off on the first set only
    after["error"] = 100 * after["wrong_frames"].count("1") / 12
    only_after = sum(a == "1" and o == "0" for a, o in zip(after["wrong_frames"], off["wrong_frames"]))
    only_off = sum(a == "0" and o == "1" for a, o in zip(after["wrong_frames"], off["wrong_frames"]))
    error_target = [t for t in targets_for(runs, (10.0,)) if "error below off" in t["target"]][0]
    assert error_target["passed"] == (only_after < only_off)
    assert f"wrong where off was right on {only_after} frames, right where off was wrong on {only_off}" \
        in error_target["detail"]
    for run in runs:  # files from before the per-frame record
        del run["wrong_frames"]
    error_target = [t for t in targets_for(runs, (10.0,)) if "error below off" in t["target"]][0]
    assert "wrong where off" not in error_target["detail"]


def test_realtime_detection_is_scored_by_map_per_stream_and_exact_frames():
    from ttt_perception.bench.realtime import score_held, targets_for
    from ttt_perception.metrics import frame_exactly_right, mean_average_precision

    data = make_detection_frames("val", 5, size=32, seed=0)
    truth = (data.boxes, data.labels)
    sets = {"a": data.images, "b": 255 - data.images}
    methods = realtime_methods(1e-3, "detector")
    assert all(cfg.score_threshold == 0.05 for cfg in methods.values())  # mAP wants the low-score tail
    runs = []
    for name in (JOINT, ADAPT_AFTER):
        run = run_setting(tiny_detector(), name, methods[name], 1000.0, 0.2, sets, truth, torch.device("cpu"),
                          seed=0, amp=False)  # a frame every 5 s: none dropped, even on a busy machine
        run["budget_multiple"] = 1.2
        runs.append(run)
    off, after = runs
    assert "error" not in off and off["drop_fraction"] == 0.0 and len(off["wrong_frames"]) == 10
    plain = private_adapter(tiny_detector(), methods[JOINT], "cpu")
    expected_map, expected_wrong = [], []
    for images in sets.values():
        dets = [plain.process(image).detections for image in images]
        expected_map.append(100 * mean_average_precision([d.boxes for d in dets], [d.scores for d in dets],
                                                         [d.class_ids for d in dets], *truth, 10))
        expected_wrong += [int(not frame_exactly_right(d.boxes, d.scores, d.class_ids, b, lab, 0.3))
                           for d, b, lab in zip(dets, *truth)]
    assert off["mAP"] == pytest.approx(np.mean(expected_map)) == pytest.approx(off["mAP_processed"])
    assert off["wrong_frames"] == "".join(map(str, expected_wrong))
    assert off["frame_error"] == pytest.approx(100 * np.mean(expected_wrong))
    quality = [t for t in targets_for(runs, (0.2,), "detector") if "1.2x:" in t["target"]][0]
    assert quality["target"].endswith("mAP above off") and quality["passed"] == (after["mAP"] > off["mAP"])
    assert f"mAP@0.5 {after['mAP']:.1f} vs {off['mAP']:.1f}; detections exactly right where off's" in quality["detail"]
    held = score_held([None] * 5, truth, "detector", 10)  # nothing published yet: no detections, every frame wrong
    assert held == {"wrong": [1] * 5, "mAP": 0.0}


# ---- gradient inner product ---------------------------------------------------------------------


def _manual_gradients(model, images, labels):
    params = list(model.extractor.parameters())
    for p in params:
        p.requires_grad_(True)
    main = F.cross_entropy(model(images), labels)
    g_main = torch.autograd.grad(main, params)
    rotated, rot_labels = plain_rotations(images[0])
    g_rot = torch.autograd.grad(F.cross_entropy(model.rotation_logits(rotated), rot_labels), params)
    return torch.cat([g.flatten() for g in g_main]), torch.cat([g.flatten() for g in g_rot])


def test_gradient_inner_product_matches_the_manual_computation_and_restores_flags():
    model = tiny_classifier()
    data = make_classification_frames("val", 2, size=16, seed=0)
    tensors = prepare_inputs(data, model)
    batch = {k: v[:1] for k, v in tensors.items()}
    for p in model.parameters():
        p.requires_grad_(False)  # as an adapter may leave them
    value = gradient_inner_product(model, batch)
    assert not any(p.requires_grad for p in model.parameters())
    a, b = _manual_gradients(model, batch["images"], batch["labels"])
    assert value["inner"] == pytest.approx(float(a @ b), rel=1e-4, abs=1e-8)
    assert value["cosine"] == pytest.approx(float(a @ b / (a.norm() * b.norm())), rel=1e-4, abs=1e-6)
    assert -1.0 <= value["cosine"] <= 1.0


def test_gradient_inner_product_works_for_the_detector():
    model = tiny_detector()
    data = make_detection_frames("val", 1, size=32, seed=0)
    tensors = prepare_inputs(data, model)
    value = gradient_inner_product(model, {k: v[:1] for k, v in tensors.items()})
    assert np.isfinite(value["inner"]) and -1.0 <= value["cosine"] <= 1.0


def test_pearson():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))


# ---- scoring and set-up -------------------------------------------------------------------------


def test_score_stream_classification_error_and_detection_map():
    model = tiny_classifier()
    data = make_classification_frames("val", 20, size=16, seed=0)
    adapter = private_adapter(model, AdaptationConfig(mode="off"), "cpu")
    out = score_stream(adapter, data.images, data.labels, "classifier", "s")
    expected = [int(np.argmax(adapter.process(img).class_probs) != lab) for img, lab in zip(data.images, data.labels)]
    assert out["wrong"] == expected
    assert out["error"] == pytest.approx(100.0 * np.mean(expected))
    assert out["error_first_tenth"] == pytest.approx(100.0 * np.mean(expected[:2]))  # 20 frames: tenths of 2
    assert out["error_last_tenth"] == pytest.approx(100.0 * np.mean(expected[-2:]))

    detector = tiny_detector()
    det = make_detection_frames("val", 2, size=32, seed=0)
    out = score_stream(private_adapter(detector, AdaptationConfig(mode="off", score_threshold=0.0), "cpu"),
                       det.images, (det.boxes, det.labels), "detector", "s")
    assert 0.0 <= out["mAP"] <= 100.0


def test_private_adapter_never_changes_the_callers_model():
    model = tiny_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapter = private_adapter(model, AdaptationConfig(mode="online", max_steps=1, batch_size=4), "cpu")
    adapter.process(make_classification_frames("val", 1, size=16, seed=0).images[0])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_parse_severities():
    assert parse_severities("5", (1,)) == (5,)
    assert parse_severities("1-3,5", (1,)) == (1, 2, 3, 5)
    assert parse_severities(None, (4, 5)) == (4, 5)
    with pytest.raises(ValueError):
        parse_severities("0-6", (5,))


def test_gradual_stream_and_slope():
    images = make_classification_frames("val", 6, size=16, seed=0).images
    stream = gradual_stream(images, "brightness", (1, 5, 1), 2, seed=0)
    assert stream.shape == images.shape
    assert not np.array_equal(stream[2:4], images[2:4])
    assert severity_slope([10, 20, 30, 40, 50, 40, 30, 20, 10], (1, 2, 3, 4, 5, 4, 3, 2, 1)) == pytest.approx(10.0)


# ---- generated docs -----------------------------------------------------------------------------


def test_replace_section_adds_markers_once_and_keeps_the_rest():
    first = replace_section("# Title\n\nIntro.\n", "numbers v1\n")
    assert first.startswith("# Title\n\nIntro.\n\n## Results\n")
    assert first.count(START) == 1 and first.count(END) == 1
    second = replace_section(first + "\n## After\nkept\n", "numbers v2\n")
    assert "numbers v1" not in second and "numbers v2" in second
    assert second.endswith("## After\nkept\n") and second.startswith("# Title\n\nIntro.\n")
    assert replace_section(second, "numbers v2\n") == second  # idempotent
    assert replace_section("", "x\n") == f"## Results\n\n{START}\nx\n{END}\n"


def _accuracy_payload():
    sets = {"clean": {"error": 10.0, "ms_per_frame": 1.0, "mean_steps": 0.0}}
    sets.update({f"{c}/5": {"error": 50.0, "ms_per_frame": 1.0, "mean_steps": 0.0} for c in ("fog", "snow")})
    summary = {"clean": 10.0, "mean_by_severity": {"5": 50.0}, "ms_per_frame": 1.0, "mean_steps": 0.0}
    return {"command": "ttt-perception bench accuracy --quick", "profile": "quick", "seed": 0,
            "machine": "CPU test machine", "created": "today", "split": "test", "severities": [5],
            "corruptions": ["fog", "snow"],
            "tasks": {"classifier": {"frames_per_set": 3, "model": "m", "results": {"off": sets},
                                     "tent_lr": {"chosen_lr": 0.001, "criterion": "val", "val": {"0.001": 40.0}}}},
            "summary": {"classifier": {"off": summary}},
            "targets": [{"target": "a target", "passed": False, "detail": "50 vs 40"}]}


def test_render_results_names_command_machine_and_targets():
    text = render_results({"accuracy_quick_test": _accuracy_payload(), "tent_lr_classifier": {}})
    assert "`ttt-perception bench accuracy --quick`" in text
    assert "CPU test machine" in text
    assert "**MISS** a target: 50 vs 40" in text
    assert "| off | 10.0 | 50.0 |" in text
    assert "results/accuracy_quick_test.png" in text
    assert "No results yet" in render_results({})
    assert "along the streams" not in text  # the run did not measure it
    assert "Tent's learning rate" not in text  # nor Tent: its learning rate is not shown
    assert "frames per set, lower is better; seed 0; model" in text  # one seed: no spread over seeds
    several = _accuracy_payload()
    several["seeds"] = [0, 1]
    several["summary"]["classifier"]["off"]["spread_by_severity"] = {"5": 0.25}
    assert "| off | 10.0 | 50.0 ± 0.2 |" in render_results({"accuracy_quick_test": several})
    payload = _accuracy_payload()
    tent = "Tent (entropy, norm affine, online)"
    payload["tasks"]["classifier"]["results"][tent] = payload["tasks"]["classifier"]["results"]["off"]
    payload["summary"]["classifier"][tent] = payload["summary"]["classifier"]["off"]
    assert "Tent's learning rate 0.001: val" in render_results({"accuracy_quick_test": payload})


def test_render_results_shows_the_error_along_the_streams_when_measured():
    payload = _accuracy_payload()
    payload["summary"]["classifier"]["off"].update(error_first_tenth_by_severity={"5": 55.0},
                                                   error_last_tenth_by_severity={"5": 45.0})
    text = render_results({"accuracy_quick_test": payload})
    assert "Mean error along the streams at severity 5" in text
    assert "| off | 55.0 | 45.0 | 50.0 |" in text


def test_report_command_rewrites_only_the_section(tmp_path):
    import json

    from ttt_perception.cli import main

    results = tmp_path / "results"
    results.mkdir()
    (results / "accuracy_quick_test.json").write_text(json.dumps(_accuracy_payload()))
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text(f"# Results\n\nWhat they say.\n\n{START}\nold\n{END}\n\n## Licence\nApache\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Project\n\n{PARAMETERS_START}\nold\n{PARAMETERS_END}\n\n## Licence\n")
    assert main(["bench", "report", "--out", str(page), "--readme", str(readme),
                 "--results", str(results)]) == 0
    text = page.read_text()
    assert "old" not in text and "CPU test machine" in text and text.endswith("## Licence\nApache\n")
    assert text.startswith("# Results\n\nWhat they say.")
    assert "](../results/accuracy_quick_test.png)" in text  # image links relative to the page
    assert readme.read_text() == (f"# Project\n\n{PARAMETERS_START}\n{render_parameter_table()}"
                                  f"{PARAMETERS_END}\n\n## Licence\n")


def test_readme_parameter_table_is_generated_from_the_specs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert PARAMETERS_START in readme and PARAMETERS_END in readme
    table = readme.split(PARAMETERS_START, 1)[1].split(PARAMETERS_END, 1)[0]
    assert table.strip() == render_parameter_table().strip(), "rerun: ttt-perception bench report"
    assert table.count("\n| `") == len(SPECS)


def test_rotation_error_counts_the_four_rotations_of_each_frame():
    from ttt_perception.bench.correlation import rotation_error

    model = tiny_classifier()
    tensors = prepare_inputs(make_classification_frames("val", 3, size=16, seed=0), model)
    value = rotation_error(model, tensors["images"])
    assert 0.0 <= value <= 100.0
    assert (value * 12 / 100.0) == pytest.approx(round(value * 12 / 100.0))  # a whole number of the 12 rotations


# ---- choices on val and the targets ---------------------------------------------------------------


def test_tune_candidates_are_typed_like_the_config_and_checked():
    from ttt_perception.bench.tune import parse_candidate

    values = parse_candidate("learning_rate=1e-3,min_ssl_loss_ratio=1.3,adapt_after_publish=true,max_steps=2")
    assert values == {"learning_rate": 1e-3, "min_ssl_loss_ratio": 1.3, "adapt_after_publish": True, "max_steps": 2}
    assert parse_candidate("parameters=stem,adapt_after_publish=false") == {"parameters": "stem",
                                                                           "adapt_after_publish": False}
    assert parse_candidate("defaults") == {}  # the node's defaults, next to the other candidates
    for bad in ("learning_rate", "no_such=1", "learning_rate=-1", "mode=sometimes"):
        with pytest.raises(ValueError):
            parse_candidate(bad)


def test_tune_records_a_command_that_reproduces_its_frames_and_candidates():
    import shlex

    from ttt_perception.bench.tune import _command, chosen_corruptions
    from ttt_perception.cli import build_parser

    for seeds in (["0"], ["0", "1", "2"]):
        argv = ["bench", "tune", "--task", "classifier", "--frames", "40", "--seeds", *seeds, "--corruptions", "fog",
                "contrast", "--candidate", "momentum=0.5,batch_size=16", "--candidate", "max_ssl_loss=0",
                "--candidate", "defaults"]
        args = build_parser().parse_args(argv)
        assert args.seeds == [int(s) for s in seeds]
        command = _command(args, args.candidate, chosen_corruptions(args))
        again = build_parser().parse_args(shlex.split(command)[1:])
        for field in ("task", "frames", "seeds", "corruptions", "candidate"):
            assert getattr(again, field) == getattr(args, field), field
    # the earlier spelling, as recorded in results/tune*.json, still reproduces its frames
    assert build_parser().parse_args(["bench", "tune", "--seed", "0"]).seeds == [0]
    from ttt_perception.bench.tune import main

    with pytest.raises(SystemExit, match="repeats a seed"):
        main(build_parser().parse_args(["bench", "tune", "--seeds", "0", "0"]))
    # defaults are written too, so a later change of a default cannot change what the file claims
    plain = build_parser().parse_args(["bench", "tune", "--candidate", "max_ssl_loss=0"])
    recorded = _command(plain, plain.candidate, chosen_corruptions(plain))
    assert "--seeds 1" in recorded and "--corruptions" not in recorded


def test_tune_averages_each_set_over_the_seeds_before_the_summary():
    from ttt_perception.bench.tune import pool_seeds, summary_of

    def records(clean, fog):  # one method's per-set records, as evaluate() writes them
        return {"clean": {"mAP": clean, "mean_steps": 1.0}, "fog/5": {"mAP": fog, "mean_steps": 1.0}}

    by_seed = {"0": {"off": records(90.0, 80.0), "a": records(90.0, 84.0)},
               "1": {"off": records(92.0, 70.0), "a": records(91.0, 68.0)}}
    pooled = {name: {s: r["mAP"] for s, r in per_set.items()} for name, per_set in pool_seeds(by_seed).items()}
    assert pooled == {"off": {"clean": 91.0, "fog/5": 75.0}, "a": {"clean": 90.5, "fog/5": 76.0}}
    summary = summary_of(pooled, "detector", ("fog",))
    # one seed lost 2 points on fog, the other gained 4: pooled, a gain of 1
    assert summary["a"]["worst_gain"] == pytest.approx(1.0) and summary["a"]["clean_gain"] == pytest.approx(-0.5)


def test_tune_summary_reports_the_worst_corruption_against_off():
    from ttt_perception.bench.tune import summary_of

    results = {"off": {"clean": 90.0, "fog/5": 80.0, "contrast/5": 50.0},
               "a": {"clean": 89.0, "fog/5": 78.0, "contrast/5": 60.0}}
    summary = summary_of(results, "detector", ("fog", "contrast"))
    assert summary["a"]["worst"] == "fog" and summary["a"]["worst_gain"] == pytest.approx(-2.0)
    assert summary["a"]["mean_gain"] == pytest.approx(4.0) and summary["a"]["clean_gain"] == pytest.approx(-1.0)
    errors = summary_of({"off": {"clean": 5.0, "fog/5": 20.0}, "b": {"clean": 4.0, "fog/5": 25.0}}, "classifier",
                        ("fog",))
    assert errors["b"]["worst_gain"] == pytest.approx(-5.0) and errors["b"]["clean_gain"] == pytest.approx(1.0)


def _summary_block(off, defaults, online=None, reset=None, rotation=0.9):
    from ttt_perception.corruptions import CORRUPTIONS

    methods = {"joint training (off)": off, "TTT online (node defaults)": defaults}
    if online is not None:
        methods["TTT online (paper)"] = online
    if reset is not None:
        methods["TTT reset (paper)"] = reset
        methods["joint training (off), first 100"] = off
    results = {n: {"clean": {"error": v, "mAP": v}, **{f"{c}/5": {"error": v, "mAP": v} for c in CORRUPTIONS}}
               for n, v in methods.items()}
    summary = {n: {"clean": v, "mean_by_severity": {"5": v}} for n, v in methods.items()}
    return {"results": results, "rotation_accuracy_clean": rotation}, summary


def test_accuracy_targets_follow_the_issue():
    from ttt_perception.bench.accuracy import targets_for

    cls_block, cls_summary = _summary_block(off=50.0, defaults=40.0, online=34.0, reset=49.0)
    det_block, det_summary = _summary_block(off=50.0, defaults=56.0, rotation=0.8)
    payload = {"tasks": {"classifier": cls_block, "detector": det_block},
               "summary": {"classifier": cls_summary, "detector": det_summary}}
    verdicts = {t["target"]: t["passed"] for t in targets_for(payload, 5)}
    assert verdicts["classifier: rotation head accuracy on clean frames >= 85%"]
    assert not verdicts["detector: rotation head accuracy on clean frames >= 85%"]
    assert verdicts["classifier: TTT online (paper) mean error >= 30% lower than off (severity 5)"]  # 32% lower
    assert verdicts["classifier: TTT online (node defaults) mean error >= 15% lower than off (severity 5)"]
    assert verdicts["detector: TTT online (node defaults) mean mAP >= 10% higher than off (severity 5)"]  # 12%
    assert verdicts["classifier: TTT reset (paper) mean error below off (severity 5, the same frames)"]
    assert verdicts["classifier: TTT online (node defaults) clean error within 0.5 point of off"]
    assert verdicts["classifier: TTT online (node defaults) no corruption more than 1 point worse than off"]

    cls_block["results"]["TTT online (node defaults)"]["fog/5"]["error"] = 51.5  # 1.5 points worse on fog
    cls_summary["TTT online (node defaults)"]["clean"] = 50.6
    verdicts = {t["target"]: t["passed"] for t in targets_for(payload, 5)}
    assert not verdicts["classifier: TTT online (node defaults) no corruption more than 1 point worse than off"]
    assert not verdicts["classifier: TTT online (node defaults) clean error within 0.5 point of off"]


def test_the_baselines_run_without_the_shift_gate():
    """The paper's settings, Tent and feature alignment are compared as published: no gate, from frame one,
    and no confidence check."""
    from ttt_perception.adaptation_config import PAPER_ONLINE, PAPER_RESET
    from ttt_perception.bench.evaluation import features_config, tent_config

    for config in (PAPER_RESET, PAPER_ONLINE, tent_config(1e-3), features_config(1e-3)):
        assert config.min_ssl_loss == 0.0 and config.min_ssl_loss_ratio == 0.0, config
        assert not config.verify_confidence, config


def test_update_puts_rerun_methods_beside_the_others_on_the_same_frames_only():
    import copy

    from ttt_perception.bench.accuracy import merge_into, parse_methods
    from ttt_perception.bench.evaluation import JOINT, TTT_DEFAULTS

    assert parse_methods("defaults,off") == {TTT_DEFAULTS, JOINT} and parse_methods(None) is None
    with pytest.raises(SystemExit, match="unknown"):
        parse_methods("defaults,bogus")
    old = _accuracy_payload()
    old["tasks"]["classifier"].update(seeds=[0], reset_frames=20, methods={"off": {}}, spread={"off": {}})
    new = copy.deepcopy(old)
    new.update(command="ttt-perception bench accuracy --methods defaults --update", created="tomorrow")
    block = new["tasks"]["classifier"]
    block["results"] = {"defaults": {"clean": {"error": 9.0}}}
    block["methods"], block["spread"] = {"defaults": {}}, {"defaults": {}}
    merged = merge_into(old, new)
    assert list(merged["tasks"]["classifier"]["results"]) == ["off", "defaults"]
    assert merged["command"] == old["command"]  # the original run; the rerun is listed beside it
    assert merged["updates"][0]["methods"] == ["defaults"] and merged["updates"][0]["created"] == "tomorrow"
    assert "Rerun later for defaults: `ttt-perception bench accuracy --methods defaults --update`" in \
        render_results({"accuracy_full_test": {**merged, "summary": old["summary"]}})
    again = merge_into(merged, {**new, "created": "the day after"})
    assert [u["created"] for u in again["updates"]] == ["the day after"]  # the earlier rerun is superseded
    block["seeds"] = [0, 1]
    with pytest.raises(SystemExit, match="seeds differs"):
        merge_into(old, new)


def test_update_keeps_the_files_baseline_learning_rates_and_refuses_another_model():
    """A rerun limited with --methods chooses no Tent / feature-alignment learning rate (None): the file's
    stay, beside the baselines' numbers they belong to; a rerun of another checkpoint is refused."""
    import copy

    from ttt_perception.bench.accuracy import merge_into

    old = _accuracy_payload()
    old["tasks"]["classifier"].update(seeds=[0], reset_frames=20, methods={"off": {}}, spread={"off": {}},
                                      model="default classifier", input_size=32,
                                      tent_lr={"chosen_lr": 1e-3}, features_lr={"chosen_lr": 3e-3})
    new = copy.deepcopy(old)
    block = new["tasks"]["classifier"]
    block.update(tent_lr=None, features_lr=None, results={"defaults": {"clean": {"error": 9.0}}},
                 methods={"defaults": {}}, spread={"defaults": {}})
    merged = merge_into(old, new)["tasks"]["classifier"]
    assert merged["tent_lr"] == {"chosen_lr": 1e-3} and merged["features_lr"] == {"chosen_lr": 3e-3}
    block["tent_lr"] = {"chosen_lr": 5e-4}  # Tent rerun: its new learning rate comes with it
    assert merge_into(old, new)["tasks"]["classifier"]["tent_lr"] == {"chosen_lr": 5e-4}
    block["model"] = "checkpoint other.pt"
    with pytest.raises(SystemExit, match="model differs"):
        merge_into(old, new)
