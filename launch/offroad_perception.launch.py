"""Off-road perception on the robot: segmentation node + costmap node.

    ros2 launch offroad_bringup offroad_perception.launch.py model:=/opt/offroad/model_ctx.onnx

(or ``ros2 launch launch/offroad_perception.launch.py ...`` from a checkout, with the workspace
sourced). Both nodes read ``params_file`` (default: ``config/robot.yaml`` of the installed
``offroad_bringup`` share directory, found through the ament index, so an install without its
sources works); the launch arguments below override the matching parameters (they come after
the file on the node's command line). With ``lifecycle:=true`` the segmentation node waits for
``configure``/``activate`` from a lifecycle manager (e.g. Nav2's ``lifecycle_manager`` with
``offroad_segmentation`` in its ``node_names``).

``offroad_replay.launch.py`` loads this file as a module and builds the same nodes from
:data:`ARGUMENTS`, :func:`declare` and :func:`perception_nodes`, with the values it forces
(``use_sim_time``, ``lifecycle``) left out of its own arguments.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "offroad_bringup"

# name -> (default (None: required), choices, description)
ARGUMENTS = {
    "model": (None, None, "deploy-contract model: QNN context binary *_ctx.onnx (its .bin next "
              "to it) on the robot, or a QDQ/FP32 ONNX for the CPU provider"),
    "provider": ("qnn", ["qnn", "cpu", "auto"], "execution provider: qnn (HTP, CPU fallback "
                 "disabled), cpu, or auto (qnn when a real HTP is usable, else cpu with a "
                 "warning)"),
    "image_topic": ("/camera/image_raw", None,
                    "input sensor_msgs/Image topic of the camera driver"),
    "camera_info_topic": ("/camera/camera_info", None,
                          "input sensor_msgs/CameraInfo topic of the camera driver"),
    "use_sim_time": ("false", ["true", "false"],
                     "use /clock (true for bag replays) instead of the system clock"),
    "namespace": ("", None, "namespace of both nodes and of their relative topics "
                  "(segmentation/*, costmap/*)"),
    "params_file": ("config/robot.yaml", None, "ROS parameters file with offroad_segmentation "
                    "and offroad_costmap sections (default: robot.yaml of the installed "
                    "offroad_bringup share directory; replay.yaml there is for bag replays)"),
    "lifecycle": ("false", ["true", "false"], "true: the segmentation node is a managed "
                  "lifecycle node and waits for configure/activate"),
    "log_level": ("info", ["debug", "info", "warn", "error"], "log level of both nodes"),
}


def share_directory() -> Path:
    """The installed share directory of offroad_bringup (ament index: AMENT_PREFIX_PATH)."""
    return Path(get_package_share_directory(PACKAGE))


def declare(names: list[str], defaults: dict[str, str] | None = None,
            descriptions: dict[str, str] | None = None) -> list[DeclareLaunchArgument]:
    """DeclareLaunchArgument for each of ``names`` (keys of :data:`ARGUMENTS`), with
    ``defaults``/``descriptions`` replacing the table's; ``config/...`` defaults are made
    absolute in the installed share directory."""
    actions = []
    for name in names:
        default, choices, description = ARGUMENTS[name]
        default = (defaults or {}).get(name, default)
        if default is not None and default.startswith("config/"):
            default = str(share_directory() / default)
        description = (descriptions or {}).get(name, description)
        kwargs = {"choices": choices} if choices else {}
        if default is not None:
            kwargs["default_value"] = default
        actions.append(DeclareLaunchArgument(name, description=description, **kwargs))
    return actions


def perception_nodes(use_sim_time: bool | LaunchConfiguration,
                     lifecycle: bool | LaunchConfiguration) -> list[Node]:
    """The segmentation and costmap nodes. ``use_sim_time`` and ``lifecycle`` are a bool (a
    forced value) or a LaunchConfiguration; every other value comes from the launch
    configuration of the same name (declared by :func:`declare`)."""
    def arg(name: str) -> LaunchConfiguration:
        return LaunchConfiguration(name)

    def text(name: str) -> ParameterValue:
        return ParameterValue(arg(name), value_type=str)

    params_file, namespace = arg("params_file"), arg("namespace")
    sim_time = ParameterValue(use_sim_time, value_type=bool)
    log_level = ["--log-level", arg("log_level")]
    segmentation = Node(
        package="offroad_seg_node", executable="segmentation_node",
        name="offroad_segmentation", namespace=namespace, output="screen",
        parameters=[params_file, {
            "model_path": text("model"), "provider": text("provider"),
            "image_topic": text("image_topic"), "camera_info_topic": text("camera_info_topic"),
            "lifecycle": ParameterValue(lifecycle, value_type=bool), "use_sim_time": sim_time,
        }],
        ros_arguments=log_level)
    costmap = Node(
        package="offroad_costmap", executable="costmap_node", name="offroad_costmap",
        namespace=namespace, output="screen",
        parameters=[params_file, {"use_sim_time": sim_time}],
        ros_arguments=log_level)
    return [segmentation, costmap]


def generate_launch_description() -> LaunchDescription:
    """Every argument of :data:`ARGUMENTS` and the two nodes."""
    return LaunchDescription([
        *declare(list(ARGUMENTS)),
        *perception_nodes(LaunchConfiguration("use_sim_time"), LaunchConfiguration("lifecycle")),
    ])
