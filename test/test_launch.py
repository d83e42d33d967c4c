"""launch_testing: the launch file starts the node with mode:=online; a published frame gets detections.

Runs in any ROS 2 installation with launch, launch_ros and launch_testing (and this package
installed, as colcon test does). Skipped, with the reason, where launch_testing is missing.
"""

import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import pytest

pytest.importorskip(
    "launch_testing", reason="launch_testing is not installed (it comes with a ROS 2 installation, not PyPI)")
pytest.importorskip("launch_ros", reason="launch_ros is not installed (it comes with a ROS 2 installation)")

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

import launch  # noqa: E402
from ros_helpers import FAST_PARAMETERS, Probe, colcon_install, frame, make_tiny_detector  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "launch_test"
NODE = f"/{NAMESPACE}/ttt_perception"
WORK = Path(tempfile.mkdtemp(prefix="ttt_launch_test_"))


def _params_file() -> Path:
    """The packaged config with an untrained test model (fast to load, no training on first use)."""
    model = make_tiny_detector(WORK / "detector.pt")
    text = (REPO / "config" / "ttt_perception.yaml").read_text().replace('path: ""', f'path: "{model}"')
    text = text.replace("budget_ms: 100.0", f"budget_ms: {FAST_PARAMETERS['deadline.budget_ms']}")
    path = WORK / "params.yaml"
    path.write_text(text)
    return path


def _package_on_the_ament_index() -> None:
    """Where the package is not installed in an ament prefix (a venv with launch_testing installed by
    hand), build it with colcon into the test's workspace and put that on AMENT_PREFIX_PATH, as
    sourcing a workspace would: launch_ros finds the executable through the ament index."""
    import os

    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("ttt_perception")
        return
    except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
        pass
    prefix = colcon_install(WORK / "ws")
    os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join(
        p for p in (str(prefix), os.environ.get("AMENT_PREFIX_PATH", ""), sys.prefix) if p)


@pytest.mark.launch_test
def generate_test_description():
    _package_on_the_ament_index()
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(REPO / "launch" / "ttt_perception.launch.py")),
        launch_arguments={"mode": "online", "namespace": NAMESPACE, "params_file": str(_params_file())}.items(),
    )
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestNodeFromLaunchFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.probe = Probe("launch_test_probe")
        cls.outputs = cls.probe.subscribe_outputs(f"/{NAMESPACE}")

    @classmethod
    def tearDownClass(cls):
        cls.probe.close()

    def test_mode_argument_overrides_the_parameter_file(self):
        self.probe.spin_until(lambda: self.probe.lifecycle_state(NODE) == "active", what="the node to be active")
        self.assertEqual(self.probe.get_parameters(NODE, ["adaptation.mode"]), {"adaptation.mode": "online"})

    def test_detections_come_back_for_a_published_frame(self):
        publisher = self.probe.publisher(f"/{NAMESPACE}/image")
        answer = self.probe.exchange(publisher, lambda i: frame(i, "launch_cam"), self.outputs)
        self.assertEqual(answer["detections"]["frame_id"], "launch_cam")
        self.assertEqual(answer["uncertainty"]["mode"], "online")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_node_exits_cleanly(self, proc_info):
        shutil.rmtree(WORK, ignore_errors=True)
        launch_testing.asserts.assertExitCodes(proc_info)
