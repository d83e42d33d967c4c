"""Launch the ttt_perception node with its parameter file.

    ros2 launch ttt_perception ttt_perception.launch.py mode:=online
    ros2 launch ttt_perception ttt_perception.launch.py namespace:=robot1 image:=/camera/color/image_raw
    ros2 launch ttt_perception ttt_perception.launch.py params_file:=/path/to/my_params.yaml device:=cuda:0

Arguments left empty (mode, device, image, namespace) change nothing: the parameter file decides.
``mode`` and ``device`` override the file's ``adaptation.mode`` and ``model.device``. ``image`` remaps
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


def _node(context):
    """The node, built once the arguments are known (empty arguments add no override)."""
    mode = LaunchConfiguration("mode").perform(context).strip()
    device = LaunchConfiguration("device").perform(context).strip()
    image = LaunchConfiguration("image").perform(context).strip()
    namespace = LaunchConfiguration("namespace").perform(context).strip()
    overrides = {"use_sim_time": _truthy(LaunchConfiguration("use_sim_time").perform(context))}
    if mode:
        overrides["adaptation.mode"] = mode
    if device:
        overrides["model.device"] = device
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
            "use_sim_time", default_value="false", description="Use /clock (simulation or bag replay)"),
        OpaqueFunction(function=_node),
    ])
