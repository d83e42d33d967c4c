"""config/ttt_perception.yaml and launch/ttt_perception.launch.py, checked without launch installed.

The YAML is checked against the parameter specs and read by a real node (rcl's own parser, in a
namespace); the launch file is checked for its arguments and the launch_ros API it uses. The launch
itself runs in test_launch.py where launch_testing is installed.
"""

import ast
from pathlib import Path

import pytest
import yaml

from ros_helpers import FAST_PARAMETERS, Probe, make_tiny_detector
from ttt_perception.bag.node_process import NodeProcess
from ttt_perception.ros import parameters as P

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "ttt_perception.yaml"
LAUNCH = REPO / "launch" / "ttt_perception.launch.py"


def _config_values():
    document = yaml.safe_load(CONFIG.read_text())
    assert list(document) == ["/**/ttt_perception"]
    return P.flatten_parameters(document["/**/ttt_perception"]["ros__parameters"])


def test_config_lists_every_parameter_with_its_default():
    values = _config_values()
    assert set(values) == set(P.SPEC_BY_NAME)
    for name, value in values.items():
        assert value == P.SPEC_BY_NAME[name].default, name
    assert P.validate(values) == []


def test_noisy_camera_profile_is_valid():
    values = P.read_parameters_file(P.profile_path("noisy_camera"))
    assert values == {"adaptation.mode": "online", "adaptation.parameters": "stem", "adaptation.learning_rate": 0.01,
                      "adaptation.min_ssl_loss_ratio": 5.0, "adaptation.max_ssl_loss": 2.25}
    assert P.validate({**P.defaults(), **values}) == []


def test_parameters_file_with_a_bad_name_or_value_is_refused(tmp_path):
    for body, reason in (("adaptation: {learning_rte: 0.01}", "unknown parameter adaptation.learning_rte"),
                         ("adaptation: {parameters: head}", "adaptation.parameters must be one of")):
        path = tmp_path / "profile.yaml"
        path.write_text(f"/**/ttt_perception:\n  ros__parameters:\n    {body}\n")
        with pytest.raises(ValueError, match=reason):
            P.read_parameters_file(path)
    path.write_text("/**/ttt_perception:\n  parameters: {}\n")
    with pytest.raises(ValueError, match="expected one node key with ros__parameters"):
        P.read_parameters_file(path)
    with pytest.raises(ValueError, match="packaged profiles: noisy_camera"):
        P.profile_path("foggy")


@pytest.mark.ros
def test_config_is_read_by_the_node_in_a_namespace(tmp_path):
    model = make_tiny_detector(tmp_path / "detector.pt")
    edited = CONFIG.read_text().replace('mode: "online"', 'mode: "reset"').replace(
        'path: ""', f'path: "{model}"').replace('cameras: [""]', 'cameras: ["left", "right"]')
    params_file = tmp_path / "edited.yaml"
    params_file.write_text(edited)
    node = NodeProcess({"deadline.budget_ms": FAST_PARAMETERS["deadline.budget_ms"]}, namespace="/cfg",
                       params_file=params_file).start()
    probe = Probe("cfg_probe")
    try:
        probe.wait_active("/cfg/ttt_perception", node)
        values = probe.get_parameters("/cfg/ttt_perception",
                                      ["adaptation.mode", "model.path", "cameras", "input.transport", "input.qos",
                                       "deadline.budget_ms"])
        assert values == {"adaptation.mode": "reset", "model.path": str(model), "cameras": ["left", "right"],
                          "input.transport": "raw", "input.qos": "sensor_data",
                          "deadline.budget_ms": 0.0}  # -p after the file wins
        # one input per camera: image_transport publishes each frame on image and image/compressed
        assert "inputs /cfg/left/image, /cfg/right/image (transport raw, QoS sensor_data)" in node.log()
    finally:
        probe.close()
        node.stop()


def _launch_tree():
    return ast.parse(LAUNCH.read_text())


def test_launch_file_declares_the_arguments_of_the_issue():
    declared = set()
    for call in ast.walk(_launch_tree()):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument":
            declared.add(call.args[0].value)
    assert declared == {"mode", "params_file", "device", "namespace", "image", "use_sim_time"}


def _launch_functions(*names):
    """Functions of the launch file that need no launch package, compiled from its own source."""
    module = ast.Module(body=[node for node in _launch_tree().body
                              if isinstance(node, ast.FunctionDef) and node.name in names], type_ignores=[])
    namespace = {}
    exec(compile(module, str(LAUNCH), "exec"), namespace)
    return namespace


def test_empty_launch_arguments_add_no_override():
    """mode, device and use_sim_time left empty leave the parameter file's values alone (a use_sim_time
    default of false once beat a file's use_sim_time: true)."""
    defaults = {}
    for call in ast.walk(_launch_tree()):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument":
            default = next(k.value for k in call.keywords if k.arg == "default_value")
            defaults[call.args[0].value] = default.value if isinstance(default, ast.Constant) else None
    optional = ("mode", "device", "use_sim_time", "image", "namespace")
    assert {name: defaults[name] for name in optional} == dict.fromkeys(optional, "")
    overrides = _launch_functions("_truthy", "_overrides")["_overrides"]
    assert overrides("", "", "") == {} and overrides(" ", "", " ") == {}
    assert overrides("", "", "false") == {"use_sim_time": False}
    assert overrides("", "", "True") == {"use_sim_time": True}
    assert overrides("online", "cuda:0", "") == {"adaptation.mode": "online", "model.device": "cuda:0"}


def test_launch_file_uses_the_launch_ros_api():
    imports = {(node.module, alias.name) for node in ast.walk(_launch_tree()) if isinstance(node, ast.ImportFrom)
               for alias in node.names}
    assert {("launch", "LaunchDescription"), ("launch.actions", "DeclareLaunchArgument"),
            ("launch.actions", "OpaqueFunction"), ("launch.substitutions", "LaunchConfiguration"),
            ("launch.substitutions", "PathJoinSubstitution"), ("launch_ros.actions", "LifecycleNode"),
            ("launch_ros.substitutions", "FindPackageShare")} <= imports
    source = LAUNCH.read_text()
    assert 'executable="ttt_perception_node"' in source and 'name="ttt_perception"' in source
    # the console entry point the launch file starts exists
    assert "ttt_perception_node = ttt_perception.ros.node:main" in (REPO / "setup.py").read_text()
