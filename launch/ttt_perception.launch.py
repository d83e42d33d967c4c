"""Launch the ttt_perception node with its parameter file.

    ros2 launch ttt_perception ttt_perception.launch.py mode:=online
    ros2 launch ttt_perception ttt_perception.launch.py namespace:=robot1 image:=/camera/color/image_raw
    ros2 launch ttt_perception ttt_perception.launch.py params_file:=/path/to/my_params.yaml device:=cuda:0

Arguments left empty (mode, device, use_sim_time, image, namespace) change nothing: the parameter file
decides. ``mode``, ``device`` and ``use_sim_time`` override the file's ``adaptation.mode``,
``model.device`` and ``use_sim_time``. ``image`` remaps
the single camera's input: ``image``, and ``image/compressed`` to ``<image>/compressed`` (read instead with
``input.transport: compressed``, image_transport's name for it). The node configures and activates
itself (parameter ``autostart``); manage it with ``ros2 lifecycle`` instead by setting it to false.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "ttt_perception"


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _overrides(mode: str, device: str, use_sim_time: str) -> dict:
    """The parameters the arguments set; an empty argument sets none, so that the file's value stands
    (a default of false for use_sim_time would beat the file's use_sim_time: true)."""
    overrides = {}
    if mode.strip():
        overrides["adaptation.mode"] = mode.strip()
    if device.strip():
        overrides["model.device"] = device.strip()
    if use_sim_time.strip():
        overrides["use_sim_time"] = _truthy(use_sim_time)
    return overrides


def _node(context):
    """The node, built once the arguments are known (empty arguments add no override)."""
    given = {name: LaunchConfiguration(name).perform(context)
             for name in ("mode", "device", "use_sim_time", "image", "namespace")}
    overrides = _overrides(given["mode"], given["device"], given["use_sim_time"])
    image, namespace = given["image"].strip(), given["namespace"].strip()
    remappings = [("image", image), ("image/compressed", image + "/compressed")] if image else []
    return [
        LifecycleNode(
            package=PACKAGE,
            executable="ttt_perception_node",
            name="ttt_perception",
            namespace=namespace,
            parameters=[LaunchConfiguration("params_file").perform(context), overrides],
            remappings=remappings,
            output="screen",
        )
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            "mode", default_value="",
            description="Adaptation mode: off, reset or online; empty: the parameter file's adaptation.mode"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "ttt_perception.yaml"]),
            description="Parameter file (node key /**/ttt_perception, see config/ttt_perception.yaml)"),
        DeclareLaunchArgument(
            "device", default_value="",
            description="Torch device: auto, cpu, cuda or cuda:N; empty: the parameter file's model.device"),
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the node and of all its topics"),
        DeclareLaunchArgument(
            "image", default_value="",
            description="Input image topic of the single camera (remaps 'image' and 'image/compressed')"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="",
            description="true: use /clock (simulation or bag replay); empty: the parameter file's use_sim_time "
                        "(false where it sets none)"),
        OpaqueFunction(function=_node),
    ])
