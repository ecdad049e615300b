"""Replay a bag through the perception nodes with simulated time.

    ros2 launch offroad_bringup offroad_replay.launch.py bag:=demo_bag model:=model_ctx.onnx

Starts ``offroad_perception.launch.py`` (``use_sim_time:=true``, ``config/replay.yaml``) and the
project's replay node (``offroad_replay``/``replay``, the same as ``offroad replay``; it
publishes ``/clock``).
The replay waits until the segmentation node subscribes to the image topic (the model is
loaded) before it plays, so no frame is lost to start-up. On a machine with rosbag2 installed
``ros2 bag play BAG --clock`` does the same job as the replay node.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

LAUNCH_DIR = Path(__file__).resolve().parent
CONFIG_DIR = LAUNCH_DIR / "config"


def _replay_node(context, *_args, **_kwargs) -> list:
    """The bag_replay node with its command line built from the launch arguments."""
    def value(config: LaunchConfiguration) -> str:
        return config.perform(context)

    arguments = [value(LaunchConfiguration("bag")),
                 "--rate", value(LaunchConfiguration("rate")),
                 "--start-offset", value(LaunchConfiguration("start_offset")),
                 "--wait-for", value(LaunchConfiguration("image_topic")),
                 "--wait-timeout", "120"]
    if value(LaunchConfiguration("loop")).lower() == "true":
        arguments.append("--loop")
    return [Node(package="offroad_replay", executable="replay", name="offroad_bag_replay",
                 arguments=arguments, output="screen")]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, include the perception launch and add the replay."""
    args = [
        DeclareLaunchArgument("bag", description="rosbag2 directory or .db3/.mcap file"),
        DeclareLaunchArgument(
            "model", description="deploy-contract model (context binary, QDQ or FP32 ONNX)"),
        DeclareLaunchArgument(
            "provider", default_value="auto", choices=["qnn", "cpu", "auto"],
            description="execution provider of the segmentation node"),
        DeclareLaunchArgument("rate", default_value="1.0",
                              description="playback speed factor of the bag"),
        DeclareLaunchArgument("loop", default_value="false", choices=["true", "false"],
                              description="play the bag again and again (/clock jumps back)"),
        DeclareLaunchArgument("start_offset", default_value="0.0",
                              description="seconds of the bag to skip at the start"),
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw",
            description="image topic in the bag (the segmentation node's input)"),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="/camera/camera_info",
            description="CameraInfo topic in the bag"),
        DeclareLaunchArgument(
            "params_file", default_value=str(CONFIG_DIR / "replay.yaml"),
            description="ROS parameters file of the perception nodes for replays"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the perception nodes"),
    ]
    perception = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_DIR / "offroad_perception.launch.py")),
        launch_arguments={
            "model": LaunchConfiguration("model"),
            "provider": LaunchConfiguration("provider"),
            "image_topic": LaunchConfiguration("image_topic"),
            "camera_info_topic": LaunchConfiguration("camera_info_topic"),
            "params_file": LaunchConfiguration("params_file"),
            "namespace": LaunchConfiguration("namespace"),
            "use_sim_time": "true",
        }.items())
    return LaunchDescription([*args, perception, OpaqueFunction(function=_replay_node)])
