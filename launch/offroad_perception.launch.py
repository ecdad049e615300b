"""Off-road perception on the robot: segmentation node + costmap node.

    ros2 launch offroad_bringup offroad_perception.launch.py model:=/opt/offroad/model_ctx.onnx

(or ``ros2 launch launch/offroad_perception.launch.py ...`` from a checkout). Both nodes read
``params_file`` (default: ``config/robot.yaml`` next to this file); the launch arguments below
override the matching parameters. With ``lifecycle:=true`` the segmentation node waits for
``configure``/``activate`` from a lifecycle manager (e.g. Nav2's ``lifecycle_manager`` with
``offroad_segmentation`` in its ``node_names``).
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

CONFIG_DIR = Path(__file__).resolve().parent / "config"


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the two nodes."""
    args = [
        DeclareLaunchArgument(
            "model", description="deploy-contract model: QNN context binary *_ctx.onnx (its "
            ".bin next to it) on the robot, or a QDQ/FP32 ONNX for the CPU provider"),
        DeclareLaunchArgument(
            "provider", default_value="qnn", choices=["qnn", "cpu", "auto"],
            description="execution provider: qnn (HTP, CPU fallback disabled), cpu, or auto "
            "(qnn when a real HTP is usable, else cpu with a warning)"),
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw",
            description="input sensor_msgs/Image topic of the camera driver"),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="/camera/camera_info",
            description="input sensor_msgs/CameraInfo topic of the camera driver"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=["true", "false"],
            description="use /clock (true for bag replays) instead of the system clock"),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="namespace of both nodes and of their relative topics "
            "(segmentation/*, costmap/*)"),
        DeclareLaunchArgument(
            "params_file", default_value=str(CONFIG_DIR / "robot.yaml"),
            description="ROS parameters file with offroad_segmentation and offroad_costmap "
            "sections (robot.yaml for the robot, replay.yaml for bag replays)"),
        DeclareLaunchArgument(
            "lifecycle", default_value="false", choices=["true", "false"],
            description="true: the segmentation node is a managed lifecycle node and waits "
            "for configure/activate"),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=["debug", "info", "warn", "error"],
            description="log level of both nodes"),
    ]
    model = LaunchConfiguration("model")
    params_file = LaunchConfiguration("params_file")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    log_level = ["--log-level", LaunchConfiguration("log_level")]
    segmentation = Node(
        package="offroad_seg_node", executable="segmentation_node",
        name="offroad_segmentation", namespace=namespace, output="screen",
        parameters=[params_file, {
            "model_path": ParameterValue(model, value_type=str),
            "provider": ParameterValue(LaunchConfiguration("provider"), value_type=str),
            "image_topic": ParameterValue(LaunchConfiguration("image_topic"), value_type=str),
            "camera_info_topic": ParameterValue(LaunchConfiguration("camera_info_topic"),
                                                value_type=str),
            "lifecycle": ParameterValue(LaunchConfiguration("lifecycle"), value_type=bool),
            "use_sim_time": use_sim_time,
        }],
        ros_arguments=log_level)
    costmap = Node(
        package="offroad_costmap", executable="costmap_node", name="offroad_costmap",
        namespace=namespace, output="screen",
        parameters=[params_file, {"use_sim_time": use_sim_time}],
        ros_arguments=log_level)
    return LaunchDescription([*args, segmentation, costmap])
