"""The node as a ROS user types to it: unquoted YAML, integers for doubles, a plain start.

Each route goes through real rclpy: a parameters file and ``-p`` overrides parsed by rcl in the node's
own process, and parameters set by another node over the parameter services (what ``ros2 param set``
sends: it reads its value as YAML too, so ``off`` is BOOL false and ``150`` is INTEGER).
"""

import pytest
from lifecycle_msgs.msg import Transition
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import DescribeParameters, GetParameterTypes

from ros_helpers import FAST_PARAMETERS, NodeProcess, Probe, frame, make_tiny_detector

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_detector(tmp_path_factory.mktemp("model") / "detector.pt")


@pytest.fixture(scope="module")
def probe():
    probe = Probe("user_routes_probe")
    yield probe
    probe.close()


def _types(probe, node, names):
    response = probe.query(GetParameterTypes, f"{node}/get_parameter_types", GetParameterTypes.Request(names=names))
    return dict(zip(names, response.types))


def _describe(probe, node, name):
    return probe.query(DescribeParameters, f"{node}/describe_parameters",
                      DescribeParameters.Request(names=[name])).descriptors[0]


def _mode_of_an_answered_frame(probe, namespace):
    outputs = probe.subscribe_outputs(namespace)
    answer = probe.exchange(probe.publisher(f"{namespace}/image"), lambda i: frame(i, "routes_cam"), outputs)
    return answer["uncertainty"]["mode"]


def test_unquoted_off_in_a_parameters_file_and_from_another_node(probe, model, tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(
        "/**/ttt_perception:\n"
        "  ros__parameters:\n"
        "    autostart: false\n"
        f"    model:\n      path: {model}\n"
        "    adaptation:\n      mode: off\n"  # unquoted, as users write it: YAML's boolean false
        "    deadline:\n      budget_ms: 0\n"  # an integer for a double
    )
    namespace, name = "/routes_file", "/routes_file/ttt_perception"
    node = NodeProcess({}, namespace=namespace, params_file=str(params_file)).start()
    try:
        probe.spin_until(lambda: node.alive() and probe.lifecycle_state(name) == "unconfigured",
                         what="the node to come up")
        assert probe.get_parameters(name, ["adaptation.mode", "deadline.budget_ms"]) == {
            "adaptation.mode": "off", "deadline.budget_ms": 0.0}
        assert _types(probe, name, ["adaptation.mode", "deadline.budget_ms"]) == {
            "adaptation.mode": ParameterType.PARAMETER_STRING, "deadline.budget_ms": ParameterType.PARAMETER_DOUBLE}
        assert "override refused" not in node.log()

        # `ros2 param set <node> adaptation.mode on` / `... off`
        refused = probe.set_parameters(name, {"adaptation.mode": True})[0]
        assert not refused.successful and "true names no mode" in refused.reason
        assert probe.set_parameters(name, {"adaptation.mode": "online"})[0].successful
        assert probe.set_parameters(name, {"adaptation.mode": False})[0].successful
        assert probe.get_parameters(name, ["adaptation.mode"]) == {"adaptation.mode": "off"}

        # `ros2 param set <node> deadline.budget_ms 150`: stays a double for get, describe and dump
        assert probe.set_parameters(name, {"deadline.budget_ms": 150})[0].successful
        assert probe.get_parameters(name, ["deadline.budget_ms"]) == {"deadline.budget_ms": 150.0}
        assert _types(probe, name, ["deadline.budget_ms"])["deadline.budget_ms"] == ParameterType.PARAMETER_DOUBLE
        assert _describe(probe, name, "deadline.budget_ms").type == ParameterType.PARAMETER_DOUBLE
        # a string is still no number
        assert not probe.set_parameters(name, {"deadline.budget_ms": "fast"})[0].successful

        # the minimum `describe` states (0: the task's rate) is accepted; below it is refused
        bounds = _describe(probe, name, "adaptation.learning_rate").floating_point_range[0]
        assert bounds.from_value == 0.0
        assert probe.set_parameters(name, {"adaptation.learning_rate": bounds.from_value})[0].successful
        assert not probe.set_parameters(name, {"adaptation.learning_rate": -0.01})[0].successful
        assert probe.set_parameters(name, {"adaptation.learning_rate": 0.05, "deadline.budget_ms": 0})[0].successful

        assert probe.change_state(name, Transition.TRANSITION_CONFIGURE)
        assert probe.change_state(name, Transition.TRANSITION_ACTIVATE)
        assert _mode_of_an_answered_frame(probe, namespace) == "off"
    finally:
        node.stop()


def test_unquoted_off_on_the_command_line(probe, model):
    namespace, name = "/routes_cli", "/routes_cli/ttt_perception"
    node = NodeProcess({"model.path": str(model), **FAST_PARAMETERS}, namespace=namespace,
                       ros_args=["-p", "adaptation.mode:=off", "-p", "deadline.budget_ms:=0"]).start()
    try:
        probe.wait_active(name, node)
        assert probe.get_parameters(name, ["adaptation.mode"]) == {"adaptation.mode": "off"}
        assert _types(probe, name, ["deadline.budget_ms"])["deadline.budget_ms"] == ParameterType.PARAMETER_DOUBLE
        assert _mode_of_an_answered_frame(probe, namespace) == "off"
    finally:
        node.stop()


def test_a_refused_override_fails_configure_instead_of_running_on_the_default(probe, model):
    namespace, name = "/routes_refused", "/routes_refused/ttt_perception"
    node = NodeProcess({"model.path": str(model), "deadline.budget_ms": 0.0}, namespace=namespace,
                       ros_args=["-p", "adaptation.batch_size:=2.5"]).start()
    try:
        probe.spin_until(lambda: "configure failed" in node.log(), what="autostart's configure to fail")
        assert "adaptation.batch_size" in node.log() and probe.lifecycle_state(name) == "unconfigured"
        assert probe.set_parameters(name, {"adaptation.batch_size": 2})[0].successful
        assert probe.change_state(name, Transition.TRANSITION_CONFIGURE)
    finally:
        node.stop()


def test_a_refused_autostart_override_does_not_start_the_node(probe, model):
    """autostart is read-only: a refused override (the string "false", quoted in YAML) cannot be set right
    on the running node, so it does not start it; configured by hand, the node works."""
    namespace, name = "/routes_autostart", "/routes_autostart/ttt_perception"
    node = NodeProcess({"model.path": str(model), **FAST_PARAMETERS}, namespace=namespace,
                       ros_args=["-p", "autostart:='false'"]).start()
    try:
        probe.spin_until(lambda: "not started by itself" in node.log() or not node.alive(),
                         what="the node to decide about autostart")
        log = node.log()
        assert node.alive() and "parameter autostart: override refused" in log and "configured:" not in log
        assert probe.lifecycle_state(name) == "unconfigured"
        status = probe.diagnostics(f"{name}: node")
        assert status["level"] == 1 and "autostart override was refused" in status["message"]
        assert probe.change_state(name, Transition.TRANSITION_CONFIGURE)
        assert probe.change_state(name, Transition.TRANSITION_ACTIVATE)
        assert _mode_of_an_answered_frame(probe, namespace) == "online"
    finally:
        node.stop()


def test_first_frames_after_a_plain_start_meet_their_deadline_and_adapt(probe, model):
    """As `ros2 launch` starts it: no thread settings in the environment, the node's own defaults.

    The budget leaves room for a busy shared CPU; a node whose first frames are judged on cold
    measurements (or whose torch threads fight over the cores) calls them late or takes no step.
    """
    namespace, name = "/routes_cold", "/routes_cold/ttt_perception"
    node = NodeProcess({"model.path": str(model), "adaptation.mode": "online", "adaptation.batch_size": 4,
                        "deadline.budget_ms": 400.0}, namespace=namespace).start()
    try:
        probe.wait_active(name, node)
        outputs = probe.subscribe_outputs(namespace)
        publisher = probe.publisher(f"{namespace}/image")
        first = []
        for index in range(40):
            publisher.publish(frame(index, "cold_cam", size=(480, 640)))
            probe.spin_for(0.25)
            first = [probe_report for probe_report in map(_report, outputs["uncertainty"])][:5]
            if len(first) == 5:
                break
        assert len(first) == 5, f"answered {len(first)} frames:\n{node.log()[-3000:]}"
        for report in first:
            assert report["stop_reason"] == "done" and report["steps_taken"] == 1, first
            assert report["deadline_met"] is True, first
        assert "(1 torch threads)" in node.log() and "warmed up" in node.log()
    finally:
        node.stop()


def _report(msg):
    from ttt_perception.ros.uncertainty_message import parse_uncertainty

    return parse_uncertainty(msg)


# vision_msgs 4.1's Detection2DArray as a ROS installation builds it (RIHS01, REP 2016): the hash in
# the generated detection2_d_array__description.c of a Jazzy build of ros-perception/vision_msgs
VISION_MSGS_DETECTION2DARRAY_HASH = ("RIHS01_214274120007f4a683866481336b7031"
                                     "0268cfa107aebe9d594a6acf75bda968")


def test_detections_are_vision_msgs_with_the_type_hash_of_a_ros_installation(probe, model):
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed (make venv builds it "
                        "where cmake and a C++ compiler exist)")
    namespace, name = "/routes_vision", "/routes_vision/ttt_perception"
    node = NodeProcess({"model.path": str(model), **FAST_PARAMETERS}, namespace=namespace).start()
    try:
        probe.wait_active(name, node)
        outputs = probe.subscribe_outputs(namespace)
        answer = probe.exchange(probe.publisher(f"{namespace}/image"), lambda i: frame(i, "vision_cam"),
                                outputs)
        msg = outputs["detections"][-1]
        assert type(msg).__module__.startswith("vision_msgs.msg")
        assert answer["detections"]["frame_id"] == "vision_cam" and answer["detections"]["detections"]
        (info,) = probe.node.get_publishers_info_by_topic(f"{namespace}/detections")
        assert info.topic_type == "vision_msgs/msg/Detection2DArray"
        assert str(info.topic_type_hash) == VISION_MSGS_DETECTION2DARRAY_HASH
        assert "vision_msgs/msg/Detection2DArray" in node.log()
    finally:
        node.stop()


def test_without_vision_msgs_the_node_publishes_the_json_fallback(probe, model, tmp_path):
    """A node process in which vision_msgs cannot be imported (as on a machine without it)."""
    from std_msgs.msg import String

    from ttt_perception.ros.detection_message import FALLBACK_SCHEMA, parse_json_detections

    hidden = tmp_path / "hide" / "vision_msgs"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('vision_msgs hidden by the test')\n")
    namespace, name = "/routes_json", "/routes_json/ttt_perception"
    node = NodeProcess({"model.path": str(model), **FAST_PARAMETERS}, namespace=namespace,
                       env={"PYTHONPATH": str(hidden.parent)}).start()
    try:
        probe.wait_active(name, node)
        detections = probe.subscribe(f"{namespace}/detections", String)
        publisher = probe.publisher(f"{namespace}/image")
        probe.spin_until(lambda: detections, every=lambda: publisher.publish(frame(1, "json_cam")),
                         what="a JSON detections message")
        document = parse_json_detections(detections[0].data)
        assert document["schema"] == FALLBACK_SCHEMA and document["header"]["frame_id"] == "json_cam"
        (info,) = probe.node.get_publishers_info_by_topic(f"{namespace}/detections")
        assert info.topic_type == "std_msgs/msg/String"
        assert "vision_msgs is not installed" in node.log()
    finally:
        node.stop()
