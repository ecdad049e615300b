"""Replay a bag through the perception nodes with simulated time; the launch ends with the bag.

    ros2 launch offroad_bringup offroad_replay.launch.py bag:=demo_bag model:=model_ctx.onnx

Starts the nodes of ``offroad_perception.launch.py`` (built by that file's own functions,
loaded from the installed share directory) with ``use_sim_time`` true and plain (non-lifecycle)
start-up: a replay needs both, so neither is offered as an argument here and ``--show-args``
lists only what can be changed, each with the default that is used. Then the project's replay
node (``offroad_replay``/``replay``, the same as ``offroad replay``; it publishes ``/clock``).
The replay waits until the segmentation node subscribes to the image topic (the model is
loaded) before it plays, so no frame is lost to start-up, and keeps publishing ``/clock`` for
``REPLAY_LINGER_S`` after the last message so the nodes finish the last frame.

``exit_on_end:=true`` (default): when the replay process exits (bag finished, or an error such
as an unreadable bag) launch's own ``Shutdown`` action stops the whole launch, which SIGINTs the
perception nodes; every process exits 0 on such a stop. ``exit_on_end:=false`` keeps the
perception nodes running after the bag (to inspect the last grid) until Ctrl-C. With
``loop:=true`` the bag never ends. On a machine with rosbag2 installed ``ros2 bag play BAG
--clock`` does the replay node's job (see docs/robot.md).
"""

from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from types import ModuleType

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "offroad_bringup"
PERCEPTION_ARGUMENTS = ["model", "provider", "image_topic", "camera_info_topic", "params_file",
                        "namespace", "log_level"]  # forced here: use_sim_time, lifecycle
REPLAY_WAIT_TIMEOUT_S = "120"  # model load on a slow machine
REPLAY_LINGER_S = "2.0"


def perception_launch() -> ModuleType:
    """``offroad_perception.launch.py`` of the installed share directory, as a module."""
    path = f"{get_package_share_directory(PACKAGE)}/launch/offroad_perception.launch.py"
    loader = SourceFileLoader("offroad_perception_launch", path)
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def _replay_node(context, *_args, **_kwargs) -> list:
    """The replay node with its command line built from the launch arguments, and the
    shutdown of the launch when it exits (``exit_on_end``)."""
    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    arguments = [value("bag"), "--rate", value("rate"), "--start-offset", value("start_offset"),
                 "--wait-for", value("image_topic"), "--wait-timeout", REPLAY_WAIT_TIMEOUT_S,
                 "--linger", REPLAY_LINGER_S]
    if value("loop") == "true":
        arguments.append("--loop")
    node = Node(package="offroad_replay", executable="replay", name="offroad_bag_replay",
                arguments=arguments, ros_arguments=["--log-level", value("log_level")],
                output="screen")
    if value("exit_on_end") != "true":
        return [node]
    return [node, RegisterEventHandler(OnProcessExit(
        target_action=node, on_exit=[Shutdown(reason="the bag replay ended (exit_on_end)")]))]


def generate_launch_description() -> LaunchDescription:
    """The replay's arguments, the perception nodes and the replay."""
    perception = perception_launch()
    args = [
        DeclareLaunchArgument("bag", description="rosbag2 directory or .db3/.mcap file"),
        *perception.declare(
            PERCEPTION_ARGUMENTS,
            defaults={"provider": "auto", "params_file": "config/replay.yaml"},
            descriptions={
                "model": "deploy-contract model (context binary, QDQ or FP32 ONNX)",
                "image_topic": "image topic in the bag (the segmentation node's input)",
                "camera_info_topic": "CameraInfo topic in the bag",
                "params_file": "ROS parameters file of the perception nodes for replays "
                               "(default: replay.yaml of the installed share directory)",
                "namespace": "namespace of the perception nodes"}),
        DeclareLaunchArgument("rate", default_value="1.0",
                              description="playback speed factor of the bag"),
        DeclareLaunchArgument("loop", default_value="false", choices=["true", "false"],
                              description="play the bag again and again (/clock jumps back)"),
        DeclareLaunchArgument("start_offset", default_value="0.0",
                              description="seconds of the bag to skip at the start"),
        DeclareLaunchArgument(
            "exit_on_end", default_value="true", choices=["true", "false"],
            description="shut the whole launch down when the replay ends (false: the "
            "perception nodes keep running until Ctrl-C)"),
    ]
    nodes = perception.perception_nodes(use_sim_time=True, lifecycle=False)
    return LaunchDescription([*args, *nodes, OpaqueFunction(function=_replay_node)])
