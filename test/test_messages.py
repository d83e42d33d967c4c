"""Message building: detections (vision_msgs layouts and the JSON fallback), uncertainty, diagnostics."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from std_msgs.msg import Header, String

from ttt_perception.ros.camera_stats import ERROR, OK, WARN, CameraStats, assess
from ttt_perception.ros.debug_image import class_colour, draw_detections
from ttt_perception.ros.detection_message import (
    FALLBACK_SCHEMA,
    FALLBACK_VERSION,
    DetectionMessageBuilder,
    detections_summary,
    parse_json_detections,
)
from ttt_perception.ros.diagnostics import camera_status, diagnostic_array, level_value, node_status
from ttt_perception.ros.log_throttle import LogThrottle
from ttt_perception.ros.uncertainty_message import build_uncertainty, parse_uncertainty


def _detections():
    return SimpleNamespace(boxes=np.array([[10, 20, 30, 60], [0, 0, 4, 4]], np.float32),
                           scores=np.array([0.9, 0.4], np.float32), class_ids=np.array([7, 2], np.int64))


def _header():
    return Header(stamp=Time(sec=12, nanosec=345), frame_id="camera_optical")


# Stand-ins with the field layouts of vision_msgs 4 (Humble and later) and 3 (Foxy/Galactic), for the
# code path that cannot run here because vision_msgs is not installed.
class _V4:
    class Array:
        def __init__(self):
            self.header, self.detections = None, []

    class Detection:
        def __init__(self):
            self.header, self.results, self.id = None, [], ""
            self.bbox = SimpleNamespace(center=SimpleNamespace(position=SimpleNamespace(x=0.0, y=0.0), theta=0.0),
                                        size_x=0.0, size_y=0.0)

    class Hypothesis:
        def __init__(self):
            self.hypothesis = SimpleNamespace(class_id="", score=0.0)
            self.pose = None


class _V3(_V4):
    class Detection(_V4.Detection):
        def __init__(self):
            super().__init__()
            self.bbox.center = SimpleNamespace(x=0.0, y=0.0, theta=0.0)

    class Hypothesis:
        def __init__(self):
            self.id, self.score = "", 0.0


@pytest.mark.parametrize("layout", [_V4, _V3])
def test_vision_msgs_layouts_carry_centre_size_class_and_score(layout):
    builder = DetectionMessageBuilder(classes=(layout.Array, layout.Detection, layout.Hypothesis))
    assert builder.uses_vision_msgs
    class_names = [str(i) for i in range(10)]
    msg = builder.build(_header(), _detections(), class_names)
    assert msg.header.frame_id == "camera_optical" and len(msg.detections) == 2
    assert msg.detections[0].header.stamp.nanosec == 345
    summary = detections_summary(msg)
    assert summary["detections"][0] == {"center": (20.0, 40.0), "size": (20.0, 40.0), "class_id": "7",
                                        "score": pytest.approx(0.9)}
    assert summary["detections"][1]["class_id"] == "2"


def test_json_fallback_follows_its_schema_and_carries_the_header():
    builder = DetectionMessageBuilder(classes=())
    assert not builder.uses_vision_msgs and builder.msg_type is String
    assert FALLBACK_SCHEMA in builder.description
    msg = builder.build(_header(), _detections(), ["zero", "one", "two"], image_size=(64, 48))
    document = json.loads(msg.data)
    assert document["schema"] == FALLBACK_SCHEMA and document["version"] == FALLBACK_VERSION
    assert document["header"] == {"stamp": {"sec": 12, "nanosec": 345}, "frame_id": "camera_optical"}
    assert document["image"] == {"width": 64, "height": 48}
    first = document["detections"][0]
    assert first["bbox"] == {"center": {"x": 20.0, "y": 40.0}, "size_x": 20.0, "size_y": 40.0}
    assert first["results"][0]["class_id"] == "7"  # no name for class 7: its index
    assert document["detections"][1]["results"][0]["class_id"] == "two"
    summary = detections_summary(msg)
    assert summary["stamp"] == (12, 345) and summary["frame_id"] == "camera_optical"
    with pytest.raises(ValueError):
        parse_json_detections(json.dumps(dict(document, version=2)))


def test_empty_detections_still_make_a_stamped_message():
    empty = SimpleNamespace(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0), class_ids=np.zeros(0))
    summary = detections_summary(DetectionMessageBuilder().build(_header(), empty, []))
    assert summary["detections"] == [] and summary["stamp"] == (12, 345)


def _report(**changes):
    report = dict(stream="front", mode="online", objective="rotation", steps_planned=2, steps_taken=1,
                  stop_reason="budget", adapt_ms=12.5, predict_ms=3.0, preprocess_ms=0.5, total_ms=16.0,
                  budget_ms=20.0, deadline_met=True, ssl_loss_before=1.2, ssl_loss_after=float("nan"),
                  entropy=0.25, max_prob=0.8, margin=0.6, auto_reset="")
    report.update(changes)
    return report


def test_uncertainty_is_stamped_with_the_image_header_and_round_trips():
    msg = build_uncertainty(_header(), _report(), "front")
    assert isinstance(msg, DiagnosticArray)
    assert msg.header.stamp.sec == 12 and msg.header.frame_id == "camera_optical"
    assert msg.status[0].level == DiagnosticStatus.OK
    values = parse_uncertainty(msg)
    assert values["schema"] == "ttt_perception/uncertainty" and values["version"] == 1
    assert values["camera"] == "front" and values["mode"] == "online"
    assert values["steps_taken"] == 1 and values["deadline_met"] is True
    assert values["entropy"] == 0.25 and np.isnan(values["ssl_loss_after"])
    assert values["stop_reason"] == "budget"


def test_uncertainty_warns_on_missed_deadline_or_automatic_reset():
    assert build_uncertainty(_header(), _report(deadline_met=False), "c").status[0].level == DiagnosticStatus.WARN
    msg = build_uncertainty(_header(), _report(auto_reset="ssl loss non-finite"), "c")
    assert msg.status[0].level == DiagnosticStatus.WARN and "ssl loss non-finite" in msg.status[0].message


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_camera_stats_account_for_every_frame_and_summarise_recent_ones():
    clock = _Clock()
    stats = CameraStats("front", clock=clock)
    for _ in range(10):
        clock.now += 0.1
        stats.received()
    stats.dropped(3)
    stats.rejected("unknown_encoding")
    stats.failed("boom")
    for i in range(4):
        stats.published(_report(deadline_met=i != 0, steps_taken=i, adapt_ms=float(10 * i)))
    snap = stats.snapshot()
    assert snap["counts"]["received"] == 10 and snap["in_flight"] == 10 - 3 - 1 - 1 - 4
    assert snap["input_hz"] == pytest.approx(10.0)
    assert snap["deadline_met_fraction"] == pytest.approx(0.75)
    assert snap["mean_steps"] == pytest.approx(1.5)
    assert snap["adapt_ms_p50"] == pytest.approx(15.0)
    assert snap["rejected_by_reason"] == {"unknown_encoding": 1}
    clock.now += 20.0
    later = stats.snapshot()
    assert later["recent"]["received"] == 0 and later["counts"]["received"] == 10


def test_assess_levels_and_reasons():
    clock = _Clock()
    stats = CameraStats("front", clock=clock)
    clock.now = 6.0
    level, message = assess(stats.snapshot(), active=True, input_hint="topic image, QoS sensor_data")
    assert level == WARN and "no frames received (topic image, QoS sensor_data)" in message
    assert assess(stats.snapshot(), active=False)[0] == OK
    for _ in range(5):
        stats.received()
        stats.published(_report())
    assert assess(stats.snapshot(), active=True) == (OK, "ok")
    stats.received()
    stats.rejected("nan")
    level, message = assess(stats.snapshot(), active=True)
    assert level == WARN and "nan x1" in message
    stats.received()
    stats.bad_stamp()  # answered all the same: not in the accounting of where a frame went
    stats.published(_report())
    level, message = assess(stats.snapshot(), active=True)
    assert level == WARN and "header stamp that is no time" in message and stats.snapshot()["in_flight"] == 0
    stats.received()
    stats.failed("CUDA out of memory")
    level, message = assess(stats.snapshot(), active=True)
    assert level == ERROR and "CUDA out of memory" in message


def test_diagnostic_statuses_have_levels_and_keys():
    stats = CameraStats("front")
    stats.received()
    stats.published(_report())
    status = camera_status(stats.snapshot(), "ttt_perception", active=True)
    keys = {pair.key for pair in status.values}
    assert {"input_hz", "output_hz", "dropped", "deadline_met_fraction", "mean_steps", "adapt_ms_p50",
            "adapt_ms_p95", "auto_resets", "rejected", "empty_frame_id", "bad_stamp"} <= keys
    assert status.name == "ttt_perception: camera front"
    node = node_status("ttt_perception", ERROR, "configure failed: model file /x.pt does not exist",
                       {"state": "unconfigured"})
    assert level_value(node.level) == ERROR
    array = diagnostic_array(Time(sec=1), [node, status])
    assert len(array.status) == 2


def test_debug_image_draws_boxes_in_the_class_colour_without_touching_the_input():
    rgb = np.zeros((48, 64, 3), np.uint8)
    out = draw_detections(rgb, _detections(), [str(i) for i in range(10)])
    assert rgb.max() == 0 and out.shape == rgb.shape
    np.testing.assert_array_equal(out[40, 10], class_colour(7))  # left edge of the first box
    np.testing.assert_array_equal(out[40, 20], 0)  # inside the box stays untouched


def test_log_throttle_lets_one_line_per_key_and_period_through():
    clock = _Clock()
    throttle = LogThrottle(period_s=5.0, clock=clock)
    lines = []
    assert throttle(("front", "nan"), lines.append, "a")
    assert not throttle(("front", "nan"), lines.append, "b")
    assert throttle(("rear", "nan"), lines.append, "c")
    clock.now = 6.0
    assert throttle(("front", "nan"), lines.append, "d")
    assert lines == ["a", "c", "d (1 similar messages suppressed)"]


def test_real_vision_msgs_detection_array_survives_serialisation():
    """The message type the node publishes where vision_msgs imports (make venv builds it)."""
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed")
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Detection2DArray

    builder = DetectionMessageBuilder()
    assert builder.uses_vision_msgs and builder.msg_type is Detection2DArray
    msg = builder.build(_header(), _detections(), [str(i) for i in range(10)])
    back = deserialize_message(serialize_message(msg), Detection2DArray)
    summary = detections_summary(back)
    assert summary["stamp"] == (12, 345) and summary["frame_id"] == "camera_optical"
    assert summary["detections"][0] == {"center": (20.0, 40.0), "size": (20.0, 40.0), "class_id": "7",
                                        "score": pytest.approx(0.9)}
