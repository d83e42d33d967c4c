"""Configure faults: a missing or corrupt model file, a device that does not exist. The node stays up,
unconfigured, says what is wrong, and works once the parameter is fixed; cleanup and configure again.

One node process (namespace /faults, the default single camera) goes through the story in order.
"""

import pytest
import torch
from lifecycle_msgs.msg import Transition
from std_srvs.srv import Trigger

from ros_helpers import FAST_PARAMETERS, Probe, frame, make_tiny_detector
from ttt_perception.bag.node_process import NodeProcess

pytestmark = pytest.mark.ros
NS = "/faults"
NODE = f"{NS}/ttt_perception"
MISSING = "/nonexistent/ttt_perception/missing_model.pt"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_tiny_detector(tmp_path_factory.mktemp("model") / "detector.pt")


@pytest.fixture(scope="module")
def node():
    process = NodeProcess({"model.path": MISSING, **FAST_PARAMETERS}, namespace=NS).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def probe(node):
    probe = Probe("faults_probe")
    try:
        probe.spin_until(lambda: "configure failed" in node.log() or not node.alive(), what="autostart to finish")
        probe.outputs = probe.subscribe_outputs(NS)
        yield probe
    finally:
        probe.close()


def _configure_fails(probe, node, text):
    assert not probe.change_state(NODE, Transition.TRANSITION_CONFIGURE)
    assert probe.lifecycle_state(NODE) == "unconfigured"
    assert node.alive()
    probe.spin_until(lambda: text in node.log(), what=f"'{text}' in the node's log")


def test_missing_model_file_fails_configure_and_the_node_stays_up(probe, node):
    assert node.alive()
    assert probe.lifecycle_state(NODE) == "unconfigured"
    assert f"configure failed: model file {MISSING} does not exist" in node.log()
    status = probe.diagnostics(f"{NODE}: node")
    assert status["level"] == 2 and MISSING in status["message"]
    response = probe.call(Trigger, f"{NODE}/reset", Trigger.Request())
    assert not response.success and "not configured" in response.message


def test_corrupt_model_file_fails_configure_naming_the_file(probe, node, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    assert probe.set_parameters(NODE, {"model.path": str(corrupt)})[0].successful
    _configure_fails(probe, node, f"configure failed: model file {corrupt}")


def test_a_device_that_does_not_exist_fails_configure_with_a_clear_error(probe, node, model_path):
    results = probe.set_parameters(NODE, {"model.path": str(model_path), "model.device": "cuda:7"})
    assert all(result.successful for result in results)
    _configure_fails(probe, node, "configure failed: model.device: device 'cuda:7'")
    log = node.log()
    assert "does not exist" in log or "CUDA is not available" in log


def test_after_fixing_the_parameters_the_node_configures_and_answers(probe, node):
    assert probe.set_parameters(NODE, {"model.device": "auto"})[0].successful
    assert probe.change_state(NODE, Transition.TRANSITION_CONFIGURE)
    if not torch.cuda.is_available():
        assert "model.device 'auto': no CUDA device available, using the CPU" in node.log()
    assert probe.change_state(NODE, Transition.TRANSITION_ACTIVATE)
    answer = probe.exchange(probe.publisher(f"{NS}/image"), lambda i: frame(i, "faults_cam"), probe.outputs)
    assert answer["detections"]["frame_id"] == "faults_cam"
    status = probe.diagnostics(f"{NODE}: node", lambda s: s["state"] == "active")
    assert status["level"] == 0


def test_cleanup_frees_the_model_and_configure_brings_it_back(probe, node):
    assert probe.change_state(NODE, Transition.TRANSITION_DEACTIVATE)
    assert probe.change_state(NODE, Transition.TRANSITION_CLEANUP)
    assert probe.lifecycle_state(NODE) == "unconfigured"
    assert not probe.call(Trigger, f"{NODE}/reset", Trigger.Request()).success  # no model any more
    assert probe.change_state(NODE, Transition.TRANSITION_CONFIGURE)
    assert probe.change_state(NODE, Transition.TRANSITION_ACTIVATE)
    answer = probe.exchange(probe.publisher(f"{NS}/image"), lambda i: frame(i, "faults_again"), probe.outputs)
    assert answer["detections"]["frame_id"] == "faults_again"


def test_diagnostics_go_on_on_sim_time_without_clock(probe):
    """use_sim_time with nothing on /clock (a paused bag, a simulator not up yet): ROS time stands still,
    and /diagnostics, configure's ERROR included, must go on all the same (a steady-clock timer)."""
    namespace = "/faults_sim_time"
    process = NodeProcess({"model.path": MISSING, **FAST_PARAMETERS}, namespace=namespace,
                          use_sim_time=True).start()
    try:
        probe.spin_until(lambda: "configure failed" in process.log() or not process.alive(),
                         what="autostart to finish")
        for _ in range(2):  # one status, then the next: the timer keeps firing
            status = probe.diagnostics(f"{namespace}/ttt_perception: node", timeout=30.0)
            assert status["level"] == 2 and MISSING in status["message"]
        assert process.alive()
    finally:
        process.stop()
