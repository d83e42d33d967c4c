"""Helpers for the node tests: a real rclpy probe node in the test process (the node runs in its own
process, ``ttt_perception.bag.node_process.NodeProcess``).

Nothing here is a mock: the probe publishes and subscribes over DDS (on loopback, in this run's own
domain, set by conftest.py) and calls the node's real services. Waits have timeouts; no test asserts on
how long something took.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ttt_perception.bag.node_process import NodeProcess
from ttt_perception.ros.detection_message import DetectionMessageBuilder, detections_summary
from ttt_perception.ros.diagnostics import level_value
from ttt_perception.ros.image_conversion import rgb_to_image
from ttt_perception.ros.uncertainty_message import parse_uncertainty

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = float(os.environ.get("TTT_TEST_TIMEOUT", "60"))
QUERY_RESEND_S = 5.0  # a query without an answer after this long is sent again
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)

# Small and fast: one SGD step on four copies, no deadline (so steps are never cut on a busy machine),
# every peak reported so that detections are never empty.
FAST_PARAMETERS = {
    "adaptation.max_steps": 1,
    "adaptation.batch_size": 4,
    "adaptation.learning_rate": 0.05,
    "deadline.budget_ms": 0.0,
    "detection.score_threshold": 0.0,
    "detection.max_detections": 5,
}


def colcon_install(workspace: Path) -> Path:
    """This repository built with colcon in ``workspace`` (as a user's workspace would); its install prefix."""
    import shutil
    import subprocess
    import sys

    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent)) or shutil.which("colcon")
    assert colcon is not None, "colcon is not installed (make test installs colcon-common-extensions)"
    ignored = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "__pycache__", "*.egg-info",
                                     ".pytest_cache", "results", "*.mcap", "*.db3")
    shutil.copytree(REPO, workspace / "src" / "ttt_perception", ignore=ignored)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([colcon, "build", "--event-handlers", "console_direct-"], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return workspace / "install" / "ttt_perception"


def make_tiny_detector(path: Path) -> Path:
    """An untrained detector checkpoint with the default detector's architecture (no training: fast)."""
    from ttt_perception.checkpoint import save_checkpoint
    from ttt_perception.default_models import RECIPES
    from ttt_perception.model import build_model

    return save_checkpoint(build_model(RECIPES["detector"].model, seed=0), path, {"note": "untrained, tests"})


class Probe:
    """A real rclpy node in the test process, with its own context."""

    def __init__(self, name: str = "ttt_probe"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.detections_type = DetectionMessageBuilder().msg_type
        self.received: dict[str, list[Any]] = {}
        self._publishers: dict[tuple, Any] = {}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    # ---- waiting -----------------------------------------------------------------------------

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def spin_until(self, predicate: Callable[[], Any], timeout: float = TIMEOUT, every: Callable | None = None,
                   period: float = 0.5, what: str = "condition") -> Any:
        """Spin until ``predicate()`` is truthy (returned); ``every()`` is called each ``period`` seconds."""
        end = time.monotonic() + timeout
        next_call = time.monotonic()
        while time.monotonic() < end:
            if every is not None and time.monotonic() >= next_call:
                every()
                next_call = time.monotonic() + period
            self.executor.spin_once(timeout_sec=0.05)
            result = predicate()
            if result:
                return result
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    # ---- topics ------------------------------------------------------------------------------

    def subscribe(self, topic: str, msg_type, qos=RELIABLE) -> list[Any]:
        messages = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, messages.append, qos)
        return messages

    def subscribe_outputs(self, prefix: str) -> dict[str, list[Any]]:
        return {"detections": self.subscribe(f"{prefix}/detections", self.detections_type),
                "uncertainty": self.subscribe(f"{prefix}/uncertainty", DiagnosticArray)}

    def publisher(self, topic: str, msg_type=Image, qos=RELIABLE):
        """One publisher per (topic, type, reliability), reused so that it stays matched."""
        key = (topic, msg_type, qos.reliability)
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(msg_type, topic, qos)
        return self._publishers[key]

    def exchange(self, publisher, make_msg: Callable[[int], Any], outputs: dict[str, list[Any]],
                 timeout: float = TIMEOUT, what: str = "an answer") -> dict[str, Any]:
        """Publish frames (stamp sec = a fresh counter) until both outputs of one of them arrived.

        Returns {"sent": msg, "detections": summary, "uncertainty": values} of the answered frame.
        """
        sent: dict[tuple, Any] = {}

        def publish():
            index = next(_COUNTER)
            msg = make_msg(index)
            msg.header.stamp.sec = index
            msg.header.stamp.nanosec = 1000 + index
            sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
            publisher.publish(msg)

        def answered():
            detections = {tuple(s["stamp"]): s for s in map(detections_summary, outputs["detections"])}
            for msg in outputs["uncertainty"]:
                stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
                if stamp in sent and stamp in detections:
                    return {"sent": sent[stamp], "detections": detections[stamp],
                            "uncertainty": parse_uncertainty(msg), "uncertainty_msg": msg}
            return None

        return self.spin_until(answered, timeout=timeout, every=publish, period=0.5, what=what)

    # ---- services ----------------------------------------------------------------------------

    def call(self, srv_type, name: str, request, timeout: float = TIMEOUT, resend_after: float | None = None):
        """One service call. ``resend_after`` (for requests that may be repeated: queries, setting values):
        send the request again each time that many seconds pass without a response. Right after the
        service is discovered, the request's route can be matched while the response's is not yet, and
        that first response is then lost (seen once in a full run: 60 s without an answer)."""
        client = self.node.create_client(srv_type, name)
        try:
            self.spin_until(lambda: client.service_is_ready(), timeout=timeout, what=f"service {name}")
            futures = []
            self.spin_until(lambda: any(f.done() for f in futures), timeout=timeout,
                            every=lambda: futures.append(client.call_async(request)),
                            period=resend_after or math.inf, what=f"response of {name}")
            return next(f for f in futures if f.done()).result()
        finally:
            self.node.destroy_client(client)

    def query(self, srv_type, name: str, request, timeout: float = TIMEOUT):
        """A call whose request may be sent again (see ``call``)."""
        return self.call(srv_type, name, request, timeout, resend_after=QUERY_RESEND_S)

    def set_parameters(self, node: str, values: dict[str, Any]):
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        return self.query(SetParameters, f"{node}/set_parameters", request).results

    def get_parameters(self, node: str, names: list[str]) -> dict[str, Any]:
        response = self.query(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=names))
        return {name: Parameter.from_parameter_msg(_named(name, value)).value
                for name, value in zip(names, response.values)}

    def lifecycle_state(self, node: str) -> str:
        return self.query(GetState, f"{node}/get_state", GetState.Request()).current_state.label

    def change_state(self, node: str, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"{node}/change_state", request).success

    def wait_active(self, node: str, process: NodeProcess, timeout: float = TIMEOUT) -> None:
        def active():
            assert process.alive(), f"node process exited:\n{process.log()}"
            return self.lifecycle_state(node) == "active"

        self.spin_until(active, timeout=timeout, what=f"{node} to become active")

    def diagnostics(self, status_name: str, predicate: Callable[[dict[str, Any]], bool] = lambda s: True,
                    timeout: float = TIMEOUT, every: Callable | None = None) -> dict[str, Any]:
        """The next /diagnostics status named ``status_name`` that satisfies ``predicate``.

        ``every``: called every half second while waiting (e.g. to publish a frame).
        """
        messages = self.received.get("/diagnostics")
        if messages is None:
            messages = self.subscribe("/diagnostics", DiagnosticArray)

        def find():
            while messages:
                for status in messages.pop(0).status:
                    if status.name == status_name:
                        found = {"level": level_value(status.level), "message": status.message,
                                 **{pair.key: pair.value for pair in status.values}}
                        if predicate(found):
                            return found
            return None

        return self.spin_until(find, timeout=timeout, every=every, what=f"diagnostics of {status_name}")

    def drain(self, status_name: str) -> None:
        """Wait until the node reports no frame of this camera waiting or in work."""
        self.received.get("/diagnostics", []).clear()
        self.diagnostics(status_name, lambda status: status.get("in_flight") == "0")


def _named(name, value):
    from rcl_interfaces.msg import Parameter as ParameterMsg

    return ParameterMsg(name=name, value=value)


def _counter():
    index = 1
    while True:
        yield index
        index += 1


_COUNTER = _counter()


def frame(index: int, frame_id: str = "camera_optical", size=(48, 64), encoding: str = "rgb8") -> Image:
    rgb = np.random.default_rng(index).integers(0, 256, size=size + (3,), dtype=np.uint8)
    return rgb_to_image(rgb, encoding, header=Header(frame_id=frame_id))
