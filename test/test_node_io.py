"""The node over real DDS: frames in, detections and uncertainty out; parameters, reset, bad input, lifecycle.

One node process (namespace /io, cameras front and rear, an untrained detector checkpoint, raw input)
serves the module; every test leaves its parameters as it found them. A second one (namespace /io_jpeg,
one camera, ``input.transport: compressed``) serves the compressed input's tests.
"""

import re

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from ros_helpers import BEST_EFFORT, FAST_PARAMETERS, RELIABLE, Probe, frame, make_tiny_detector
from ttt_perception.bag.node_process import NodeProcess
from ttt_perception.ros.detection_message import detections_summary
from ttt_perception.ros.image_conversion import rgb_to_compressed

pytestmark = pytest.mark.ros
NS = "/io"
JPEG_NS = "/io_jpeg"
NODE = f"{NS}/ttt_perception"
CAMERAS = ("front", "rear")
REPORT_KEYS = {"entropy", "max_prob", "margin", "ssl_loss_before", "ssl_loss_after", "steps_taken",
               "steps_planned", "adapt_ms", "deadline_met", "stop_reason", "mode", "camera"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_detector(tmp_path_factory.mktemp("model") / "detector.pt")


@pytest.fixture(scope="module")
def node(model):
    process = NodeProcess({"model.path": str(model), "cameras": list(CAMERAS), "adaptation.mode": "reset",
                           "publish_debug_image": True, **FAST_PARAMETERS}, namespace=NS).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def probe(node):
    probe = Probe("io_probe")
    try:
        probe.wait_active(NODE, node)
        probe.outputs = {camera: probe.subscribe_outputs(f"{NS}/{camera}") for camera in CAMERAS}
        yield probe
    finally:
        probe.close()


@pytest.fixture(scope="module")
def jpeg_node(model, probe):
    """A node reading compressed images (the probe of the module talks to both nodes)."""
    process = NodeProcess({"model.path": str(model), "input.transport": "compressed", "adaptation.mode": "reset",
                           **FAST_PARAMETERS}, namespace=JPEG_NS).start()
    try:
        probe.wait_active(f"{JPEG_NS}/ttt_perception", process)
        probe.jpeg_outputs = probe.subscribe_outputs(JPEG_NS)
        yield process
    finally:
        process.stop()


def _jpeg(frame_id, size=(40, 56)):
    def make(index):
        rgb = np.random.default_rng(index).integers(0, 256, size=size + (3,), dtype=np.uint8)
        return rgb_to_compressed(rgb, "jpeg", header=Header(frame_id=frame_id))

    return make


def _clear(probe):
    for outputs in probe.outputs.values():
        for messages in outputs.values():
            messages.clear()


def test_detections_and_uncertainty_carry_the_input_header(probe):
    answer = probe.exchange(probe.publisher(f"{NS}/front/image", qos=RELIABLE),
                            lambda i: frame(i, "front_optical", size=(48, 64)), probe.outputs["front"])
    sent = answer["sent"].header
    detections = answer["detections"]
    assert detections["stamp"] == (sent.stamp.sec, sent.stamp.nanosec)
    assert detections["frame_id"] == "front_optical"
    uncertainty_header = answer["uncertainty_msg"].header
    assert (uncertainty_header.stamp.sec, uncertainty_header.stamp.nanosec) == (sent.stamp.sec, sent.stamp.nanosec)
    assert uncertainty_header.frame_id == "front_optical"
    # score threshold 0: the peaks are reported, at most max_detections, in the 64x48 image's pixels
    assert 1 <= len(detections["detections"]) <= 5
    for detection in detections["detections"]:
        x, y = detection["center"]
        assert 0 <= x <= 64 and 0 <= y <= 48
        assert detection["size"][0] > 0 and detection["size"][1] > 0
        assert detection["class_id"] in {str(i) for i in range(10)}
        assert 0.0 <= detection["score"] <= 1.0
    report = answer["uncertainty"]
    assert REPORT_KEYS <= set(report)
    assert report["camera"] == "front" and report["mode"] == "reset"
    assert 0.0 <= report["entropy"] <= 1.0 and 0.0 <= report["max_prob"] <= 1.0
    assert report["steps_taken"] == 1 and report["stop_reason"] == "done" and report["deadline_met"] is True


def test_best_effort_publisher_is_matched_with_the_default_qos(probe):
    answer = probe.exchange(probe.publisher(f"{NS}/front/image", qos=BEST_EFFORT),
                            lambda i: frame(i, "front_best_effort"), probe.outputs["front"],
                            what="an answer to a best-effort publisher")
    assert answer["detections"]["frame_id"] == "front_best_effort"


def _frame_ids(outputs):
    return ({m.header.frame_id for m in outputs["uncertainty"]}
            | {detections_summary(m)["frame_id"] for m in outputs["detections"]})


def _publish_for(probe, publisher, make_msg, seconds=2.0):
    for index in range(int(seconds / 0.25)):
        publisher.publish(make_msg(60_000 + index))
        probe.spin_for(0.25)


def test_raw_transport_reads_image_and_not_image_compressed(probe):
    """The default: a camera driver publishes every frame on both topics; the node reads only one."""
    probe.spin_until(lambda: probe.node.count_subscribers(f"{NS}/front/image") >= 1, what="the image subscription")
    assert probe.node.count_subscribers(f"{NS}/front/image/compressed") == 0
    _publish_for(probe, probe.publisher(f"{NS}/front/image/compressed", CompressedImage), _jpeg("front_jpeg_ignored"))
    answer = probe.exchange(probe.publisher(f"{NS}/front/image"), lambda i: frame(i, "front_raw_read"),
                            probe.outputs["front"])
    assert answer["detections"]["frame_id"] == "front_raw_read"
    assert "front_jpeg_ignored" not in _frame_ids(probe.outputs["front"])


def test_compressed_transport_reads_image_compressed_and_not_image(probe, jpeg_node):
    probe.spin_until(lambda: probe.node.count_subscribers(f"{JPEG_NS}/image/compressed") >= 1,
                     what="the compressed image subscription")
    assert probe.node.count_subscribers(f"{JPEG_NS}/image") == 0
    _publish_for(probe, probe.publisher(f"{JPEG_NS}/image"), lambda i: frame(i, "raw_ignored"))
    answer = probe.exchange(probe.publisher(f"{JPEG_NS}/image/compressed", CompressedImage), _jpeg("jpeg_read"),
                            probe.jpeg_outputs, what="an answer to a JPEG frame")
    assert answer["detections"]["frame_id"] == "jpeg_read"
    assert answer["uncertainty"]["camera"] == "default"
    for detection in answer["detections"]["detections"]:  # in the 56x40 JPEG's pixels
        assert 0 <= detection["center"][0] <= 56 and 0 <= detection["center"][1] <= 40
    assert "raw_ignored" not in _frame_ids(probe.jpeg_outputs)
    assert "inputs /io_jpeg/image/compressed (transport compressed" in jpeg_node.log()


def test_two_cameras_are_answered_independently(probe):
    _clear(probe)
    publishers = {camera: probe.publisher(f"{NS}/{camera}/image") for camera in CAMERAS}
    counter = iter(range(10_000, 20_000))

    def publish_both():
        for camera in CAMERAS:
            index = next(counter)
            msg = frame(index, f"{camera}_two")
            msg.header.stamp.sec = index
            publishers[camera].publish(msg)

    def both_answered():
        return all(any(m.header.frame_id == f"{camera}_two" for m in probe.outputs[camera]["uncertainty"])
                   for camera in CAMERAS)

    probe.spin_until(both_answered, every=publish_both, what="answers on both cameras")
    for camera in CAMERAS:
        outputs = probe.outputs[camera]
        assert {m.header.frame_id for m in outputs["uncertainty"]} == {f"{camera}_two"}
        assert {detections_summary(m)["frame_id"] for m in outputs["detections"]} == {f"{camera}_two"}
        for msg in outputs["uncertainty"]:
            values = {pair.key: pair.value for pair in msg.status[0].values}
            assert values["camera"] == camera


def test_mode_change_through_set_parameters_shows_in_the_next_report(probe):
    publisher = probe.publisher(f"{NS}/front/image")
    try:
        results = probe.set_parameters(NODE, {"adaptation.mode": "online"})
        assert results[0].successful, results[0].reason
        assert probe.get_parameters(NODE, ["adaptation.mode"]) == {"adaptation.mode": "online"}
        answer = probe.exchange(publisher, lambda i: frame(i, "front_online"), probe.outputs["front"])
        assert answer["uncertainty"]["mode"] == "online"
    finally:
        assert probe.set_parameters(NODE, {"adaptation.mode": "reset"})[0].successful
    answer = probe.exchange(publisher, lambda i: frame(i, "front_reset"), probe.outputs["front"])
    assert answer["uncertainty"]["mode"] == "reset"


def test_adapting_after_publishing_is_reported_and_answered(probe):
    publisher = probe.publisher(f"{NS}/front/image")
    settings = {"adaptation.mode": "online", "adaptation.adapt_after_publish": True}
    try:
        assert all(result.successful for result in probe.set_parameters(NODE, settings))
        answers = [probe.exchange(publisher, lambda i, n=n: frame(i, f"front_after_{n}"), probe.outputs["front"])
                   for n in range(3)]
    finally:
        assert probe.set_parameters(NODE, {"adaptation.mode": "reset",
                                           "adaptation.adapt_after_publish": False})[0].successful
    for answer in answers:
        report = answer["uncertainty"]
        assert report["mode"] == "online" and report["adapted_after_publish"] is True
        assert answer["detections"]["frame_id"] == answer["sent"].header.frame_id
    # the frames come seconds apart: the idle time before the next one fits the step
    assert any(answer["uncertainty"]["steps_taken"] == 1 for answer in answers)
    answer = probe.exchange(publisher, lambda i: frame(i, "front_before"), probe.outputs["front"])
    assert answer["uncertainty"]["adapted_after_publish"] is False and answer["uncertainty"]["steps_taken"] == 1


@pytest.mark.parametrize("name, value, reason", [
    ("adaptation.mode", "sometimes", "adaptation.mode must be one of off, reset, online"),
    ("deadline.policy", "maybe", "deadline.policy must be one of truncate, skip"),
    ("adaptation.learning_rate", -0.01, "adaptation.learning_rate must be in [0, 1]"),
    ("adaptation.max_steps", 1000, "adaptation.max_steps must be in [0, 100]"),
    ("adaptation.momentum", -0.5, "adaptation.momentum must be in [0, 0.99], or -1 for the model's task's"),
    ("adaptation.batch_size", "eight", "adaptation.batch_size must be a number"),
    # the test model's checkpoint stores no clean feature statistics: the loaded model refuses them
    ("adaptation.objective", "features", "objective 'features' needs the clean feature statistics"),
])
def test_an_invalid_value_is_refused_and_nothing_changes(probe, name, value, reason):
    before = probe.get_parameters(NODE, list(FAST_PARAMETERS) + ["adaptation.mode", "deadline.policy"])
    result = probe.set_parameters(NODE, {name: value})[0]
    assert not result.successful
    assert reason in result.reason
    assert probe.get_parameters(NODE, list(before)) == before
    answer = probe.exchange(probe.publisher(f"{NS}/front/image"), lambda i: frame(i, "front_after_refusal"),
                            probe.outputs["front"])
    assert answer["uncertainty"]["mode"] == "reset"
    assert answer["uncertainty"]["steps_planned"] == 1


def test_reset_service_returns_to_the_source_weights(probe):
    publisher = probe.publisher(f"{NS}/front/image")
    same_frame = frame(424242, "front_reset_test")

    def copy_of_frame(_):
        msg = Image()
        msg.header.frame_id = same_frame.header.frame_id
        msg.height, msg.width, msg.encoding, msg.step = same_frame.height, same_frame.width, "rgb8", same_frame.step
        msg.data = same_frame.data
        return msg

    def first_loss():
        probe.drain("/io/ttt_perception: camera front")  # no older frame waits to adapt the weights first
        answer = probe.exchange(publisher, copy_of_frame, probe.outputs["front"])
        assert answer["uncertainty"]["mode"] == "online" and answer["uncertainty"]["steps_taken"] == 1
        return answer["uncertainty"]["ssl_loss_before"]

    try:
        assert probe.set_parameters(NODE, {"adaptation.mode": "online"})[0].successful  # from the source
        source_loss = first_loss()
        adapted_loss = first_loss()
        assert adapted_loss != pytest.approx(source_loss, rel=1e-6, abs=1e-9)  # online steps changed the weights
        response = probe.call(Trigger, f"{NODE}/reset", Trigger.Request())
        assert response.success, response.message
        assert "source weights" in response.message
        assert first_loss() == pytest.approx(source_loss, rel=1e-4)
    finally:
        assert probe.set_parameters(NODE, {"adaptation.mode": "reset"})[0].successful


def _bad_raw(encoding="rgb8", width=8, height=6, step=None, data=None, frame_id="rear_bad"):
    msg = Image(height=height, width=width, encoding=encoding)
    msg.step = width * 3 if step is None else step
    msg.data = bytes(msg.step * height) if data is None else data
    msg.header.frame_id = frame_id
    return msg


def _nan_image():
    values = np.full((6, 8), 0.5, np.float32)
    values[2, 3] = np.nan
    msg = Image(height=6, width=8, encoding="32FC1", step=32, data=values.tobytes())
    msg.header.frame_id = "rear_bad"
    return msg


BAD_INPUTS = {
    "unknown_encoding": (Image, lambda: _bad_raw(encoding="yuv422", step=16)),
    "short_data": (Image, lambda: _bad_raw(data=bytes(10))),
    "zero_size": (Image, lambda: _bad_raw(width=0, step=0, data=b"")),
    "nan": (Image, _nan_image),
    "undecodable": (CompressedImage, lambda: CompressedImage(header=Header(frame_id="rear_bad"), format="jpeg",
                                                             data=b"\xff\xd8 not really a jpeg")),
}


@pytest.mark.parametrize("reason", sorted(BAD_INPUTS))
def test_a_bad_frame_is_counted_logged_and_the_next_good_frame_is_answered(probe, node, reason, request):
    msg_type, make_bad = BAD_INPUTS[reason]
    if msg_type is CompressedImage:  # the node that reads compressed images
        node = request.getfixturevalue("jpeg_node")
        topic, status_name, outputs = f"{JPEG_NS}/image/compressed", f"{JPEG_NS}/ttt_perception: camera default", \
            probe.jpeg_outputs
        good_publisher, make_good = probe.publisher(topic, CompressedImage), _jpeg("rear_good")
    else:
        topic, status_name, outputs = f"{NS}/rear/image", f"{NODE}: camera rear", probe.outputs["rear"]
        good_publisher, make_good = probe.publisher(topic), lambda i: frame(i, "rear_good")
    bad_publisher = probe.publisher(topic, msg_type)
    probe.received.get("/diagnostics", []).clear()
    status = probe.diagnostics(status_name, lambda s: int(s.get(f"rejected.{reason}", "0")) >= 1,
                               every=lambda: bad_publisher.publish(make_bad()))
    assert status["level"] >= 1 and "rejected" in status["message"]
    answer = probe.exchange(good_publisher, make_good, outputs, what=f"an answer after a {reason} frame")
    assert answer["detections"]["frame_id"] == "rear_good"
    assert f"frame rejected ({reason})" in node.log()


def test_a_frame_with_an_empty_frame_id_is_answered_counted_and_logged(probe, node):
    answer = probe.exchange(probe.publisher(f"{NS}/rear/image"), lambda i: frame(i, ""), probe.outputs["rear"])
    assert answer["detections"]["frame_id"] == ""
    status = probe.diagnostics("/io/ttt_perception: camera rear", lambda s: int(s["empty_frame_id"]) >= 1)
    assert status["level"] >= 1
    assert "empty header.frame_id" in node.log()
    answer = probe.exchange(probe.publisher(f"{NS}/rear/image"), lambda i: frame(i, "rear_good"),
                            probe.outputs["rear"])
    assert answer["detections"]["frame_id"] == "rear_good"


def test_deactivate_stops_outputs_and_activate_resumes_them(probe):
    publisher = probe.publisher(f"{NS}/front/image")
    probe.drain(f"{NODE}: camera front")
    try:
        assert probe.change_state(NODE, Transition.TRANSITION_DEACTIVATE)
        assert probe.lifecycle_state(NODE) == "inactive"
        _clear(probe)
        counter = iter(range(30_000, 40_000))

        def publish():
            index = next(counter)
            msg = frame(index, "front_inactive")
            msg.header.stamp.sec = index
            publisher.publish(msg)

        for _ in range(6):  # three seconds of frames while inactive
            publish()
            probe.spin_for(0.5)
        assert probe.outputs["front"]["detections"] == [] and probe.outputs["front"]["uncertainty"] == []
        status = probe.diagnostics("/io/ttt_perception: node", lambda s: s["state"] == "inactive")
        assert status["level"] == 0
    finally:
        assert probe.change_state(NODE, Transition.TRANSITION_ACTIVATE)
    assert probe.lifecycle_state(NODE) == "active"
    answer = probe.exchange(publisher, lambda i: frame(i, "front_active_again"), probe.outputs["front"])
    assert answer["detections"]["frame_id"] == "front_active_again"


def test_diagnostics_report_rates_drops_and_timing_per_camera(probe):
    probe.exchange(probe.publisher(f"{NS}/front/image"), lambda i: frame(i, "front_diag"), probe.outputs["front"])
    status = probe.diagnostics("/io/ttt_perception: camera front", lambda s: int(s["published"]) >= 1)
    for key in ("input_hz", "output_hz", "dropped", "deadline_met_fraction", "mean_steps", "adapt_ms_p50",
                "adapt_ms_p95", "auto_resets", "rejected", "failed"):
        assert key in status
    assert float(status["mean_steps"]) > 0
    assert float(status["deadline_met_fraction"]) == 1.0  # no budget: every deadline is met
    node_status = probe.diagnostics("/io/ttt_perception: node")
    assert node_status["device"] == "cpu" and node_status["mode"] == "reset"


def test_the_worker_prewarms_between_a_cameras_frames(probe):
    """A camera at 2 Hz: once its period is known, the worker runs a throwaway prediction before each frame."""
    publisher, index = probe.publisher(f"{NS}/front/image"), iter(range(10**6))
    status = probe.diagnostics("/io/ttt_perception: node", lambda s: int(s["prewarms"]) >= 2,
                               every=lambda: publisher.publish(frame(next(index), "front_prewarm")))
    assert int(status["prewarms"]) >= 2
    assert probe.get_parameters(NODE, ["deadline.prewarm_ms"])["deadline.prewarm_ms"] == 5.0


def test_diagnostics_report_the_settings_in_force_and_name_those_waiting_for_a_configure(probe):
    node_status = probe.diagnostics("/io/ttt_perception: node")
    model = node_status["model"]
    try:
        results = probe.set_parameters(NODE, {"model.path": "/nowhere/else.pt", "input.qos": "reliable"})
        assert all(result.successful for result in results)
        status = probe.diagnostics("/io/ttt_perception: node", lambda s: "pending_reconfigure" in s)
        assert status["pending_reconfigure"] == "input.qos, model.path"
        assert status["model"] == model  # the loaded one, not the one set for the next configure
    finally:
        results = probe.set_parameters(NODE, {"model.path": model, "input.qos": "sensor_data"})
        assert all(result.successful for result in results)
    assert "pending_reconfigure" not in probe.diagnostics("/io/ttt_perception: node",
                                                         lambda s: "pending_reconfigure" not in s)


def test_debug_image_has_the_input_header_and_size_and_boxes_drawn(probe):
    debug_images = probe.subscribe(f"{NS}/front/debug_image", Image)
    grey = np.full((48, 64, 3), 128, np.uint8)

    def grey_frame(_):
        from ttt_perception.ros.image_conversion import rgb_to_image

        return rgb_to_image(grey, "bgr8", header=Header(frame_id="front_debug"))

    answer = probe.exchange(probe.publisher(f"{NS}/front/image"), grey_frame, probe.outputs["front"])
    stamp = answer["sent"].header.stamp
    debug = probe.spin_until(lambda: next((m for m in debug_images if m.header.stamp == stamp), None),
                             every=lambda: probe.publisher(f"{NS}/front/image").publish(answer["sent"]),
                             what="a debug image of the answered frame")
    from ttt_perception.ros.image_conversion import image_to_rgb

    drawn = image_to_rgb(debug)
    assert debug.header.frame_id == "front_debug" and drawn.shape == (48, 64, 3)
    assert (drawn != 128).any(axis=2).sum() > 0  # boxes (score threshold 0: always some) were drawn


def test_stamp_clock_measures_the_budget_from_the_header_stamp(probe):
    from builtin_interfaces.msg import Time

    publisher = probe.publisher(f"{NS}/front/image")
    try:
        results = probe.set_parameters(NODE, {"deadline.clock": "stamp", "deadline.budget_ms": 50.0})
        assert all(result.successful for result in results)

        def old_frame(index):
            msg = frame(index, "front_old")
            now = probe.node.get_clock().now().nanoseconds
            msg.header.stamp = Time(sec=int(now // 10**9) - 10, nanosec=int(now % 10**9))  # 10 s old
            return msg

        answer = _answer_keeping_stamp(probe, publisher, old_frame)
        assert answer["uncertainty"]["stop_reason"] == "late"
        assert answer["uncertainty"]["steps_taken"] == 0 and answer["uncertainty"]["deadline_met"] is False
    finally:
        results = probe.set_parameters(NODE, {"deadline.clock": "arrival",
                                              "deadline.budget_ms": FAST_PARAMETERS["deadline.budget_ms"]})
        assert all(result.successful for result in results)


def test_a_negative_stamp_is_counted_and_logged_and_the_node_keeps_answering(probe, node):
    """With deadline.clock stamp, a header stamp with negative seconds is no time (rclpy refuses it): the
    frame is answered with its budget from its arrival, counted and logged; the process lives on."""
    from builtin_interfaces.msg import Time

    publisher = probe.publisher(f"{NS}/front/image")
    try:
        assert all(r.successful for r in probe.set_parameters(NODE, {"deadline.clock": "stamp"}))

        def negative(index):
            msg = frame(index, "front_negative_stamp")
            msg.header.stamp = Time(sec=-1 - index, nanosec=5)
            return msg

        answer = _answer_keeping_stamp(probe, publisher, negative)
        assert answer["uncertainty"]["deadline_met"] is True  # no budget (0): from the arrival, met
        status = probe.diagnostics(f"{NODE}: camera front", lambda s: int(s["bad_stamp"]) >= 1)
        assert status["level"] >= 1 and "header stamp that is no time" in status["message"]
        assert node.alive() and re.search(r"header.stamp -\d+ s 5 ns is no time", node.log())
        answer = probe.exchange(publisher, lambda i: frame(i, "front_after_negative"), probe.outputs["front"])
        assert answer["detections"]["frame_id"] == "front_after_negative"
    finally:
        assert all(r.successful for r in probe.set_parameters(NODE, {"deadline.clock": "arrival"}))
    assert node.alive()


def test_an_exception_in_the_image_callback_is_counted_and_logged_not_raised(model):
    """Whatever raises in the executor's image callback must not end spin() and the process: a node in
    this process, configured for real, given a message that is not one."""
    import rclpy

    from ttt_perception.ros.node import TTTPerceptionNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = TTTPerceptionNode(context=context, namespace="/io_callback", parameter_overrides=[
            Parameter("model.path", value=str(model)), Parameter("deadline.clock", value="stamp"),
            Parameter("adaptation.batch_size", value=2)])
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            node._on_image("", None, False)  # no header: AttributeError
            snapshot = node._cameras[""].stats.snapshot()
            assert snapshot["counts"]["received"] == 1 and snapshot["counts"]["failed"] == 1
            assert snapshot["in_flight"] == 0 and "in the image callback: AttributeError" in snapshot["last_error"]
        finally:
            node._release()
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def _answer_keeping_stamp(probe, publisher, make_msg):
    """Like Probe.exchange, for frames whose stamp matters (it is not replaced by a counter)."""
    sent = {}

    def publish():
        msg = make_msg(len(sent))
        sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
        publisher.publish(msg)

    def answered():
        for msg in probe.outputs["front"]["uncertainty"]:
            if (msg.header.stamp.sec, msg.header.stamp.nanosec) in sent:
                from ttt_perception.ros.uncertainty_message import parse_uncertainty

                return {"uncertainty": parse_uncertainty(msg)}
        return None

    return probe.spin_until(answered, every=publish, what="an answer to a stamped frame")


def test_a_burst_is_answered_or_counted_as_dropped(probe):
    status_name = f"{NODE}: camera rear"
    probe.drain(status_name)
    before = probe.diagnostics(status_name)
    _clear(probe)
    publisher = probe.publisher(f"{NS}/rear/image")
    for index in range(50_000, 50_030):  # as fast as possible: the model cannot keep up
        msg = frame(index, "rear_burst")
        msg.header.stamp.sec = index
        publisher.publish(msg)
    probe.drain(status_name)
    after = probe.diagnostics(status_name)
    delta = {key: int(after[key]) - int(before[key]) for key in ("received", "published", "dropped", "rejected",
                                                                   "failed")}
    assert 0 < delta["received"] <= 30
    assert delta["published"] + delta["dropped"] == delta["received"]
    assert delta["rejected"] == 0 and delta["failed"] == 0
    probe.spin_until(lambda: len(probe.outputs["rear"]["uncertainty"]) >= delta["published"],
                     what="every published answer")
    assert len(probe.outputs["rear"]["uncertainty"]) == delta["published"]
