# Robot image: Dragonwing IQ-9075 (QCS9075, aarch64), Ubuntu 24.04 + ROS 2 Jazzy, the perception
# nodes with onnxruntime-qnn running the model on the Hexagon v73 HTP. Build on any machine
# with buildx/QEMU or natively on the robot; see docker/README.md for build and run commands.
#   docker buildx build --platform linux/arm64 -f docker/robot.Dockerfile -t offroad/robot .
FROM --platform=linux/arm64 ros:jazzy-ros-base-noble

# Same versions as requirements/constraints.txt (tests/test_docker_files.py checks): a context
# binary only loads with the onnxruntime-qnn (QAIRT) version that compiled it.
ARG ONNXRUNTIME_VERSION=1.32.0
ARG ONNXRUNTIME_QNN_VERSION=2.7.0
ARG USERNAME=offroad
ARG UID=1000

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-venv python3-pip python3-colcon-common-extensions \
        ros-jazzy-sensor-msgs ros-jazzy-nav-msgs ros-jazzy-diagnostic-msgs \
        ros-jazzy-lifecycle-msgs ros-jazzy-rosgraph-msgs ros-jazzy-rmw-fastrtps-cpp \
        ros-jazzy-ros2launch ros-jazzy-launch-ros ros-jazzy-rosbag2 \
        ros-jazzy-rosbag2-storage-mcap \
    && rm -rf /var/lib/apt/lists/*

# Non-root user; fastrpc device access comes from the groups of the device nodes, passed at run
# time (docker run --group-add), see docker/README.md. Ubuntu 24.04 images ship user "ubuntu"
# with UID 1000: remove it so our user gets that UID.
RUN (userdel -r ubuntu 2>/dev/null || true) \
    && useradd --create-home --uid "${UID}" --shell /bin/bash "${USERNAME}" \
    && usermod -aG video,render "${USERNAME}" 2>/dev/null || true

WORKDIR /opt/offroad
COPY requirements/constraints.txt requirements/constraints.txt
COPY offroad_core offroad_core
COPY offroad_seg_msgs offroad_seg_msgs
COPY offroad_seg_node offroad_seg_node
COPY offroad_costmap offroad_costmap
COPY offroad_replay offroad_replay
COPY launch launch
COPY colcon.meta colcon.meta

# The venv sees apt's ROS 2 (system site packages) and holds the runtime core only: no torch,
# no training code (offroad_training is not in this image). rosbags serves offroad_replay.
# onnxruntime-qnn: aarch64 cp312 manylinux_2_34 wheel.
RUN python3 -m venv --system-site-packages /opt/offroad/venv \
    && /opt/offroad/venv/bin/pip install --no-cache-dir -c requirements/constraints.txt \
        "onnxruntime==${ONNXRUNTIME_VERSION}" "onnxruntime-qnn==${ONNXRUNTIME_QNN_VERSION}" \
        "setuptools<80" rosbags ./offroad_core

# Build our ROS packages against /opt/ros/jazzy with the venv's interpreter.
RUN source /opt/ros/jazzy/setup.bash \
    && source /opt/offroad/venv/bin/activate \
    && colcon build --base-paths offroad_seg_msgs offroad_seg_node offroad_costmap \
        offroad_replay launch \
        --event-handlers console_cohesion- \
    && rm -rf build log

# Fail the build, not the robot: every message type the nodes use must import next to the
# venv's numpy (apt's message packages are compiled against Ubuntu's numpy), and the QNN plugin
# library must be present.
RUN source /opt/ros/jazzy/setup.bash && source /opt/offroad/venv/bin/activate \
    && source install/setup.bash \
    && python -c "from sensor_msgs.msg import CameraInfo, Image; from nav_msgs.msg import \
OccupancyGrid; from offroad_seg_msgs.msg import SegmentationInfo; CameraInfo(k=[0.0]*9); \
import onnxruntime_qnn, os; assert os.path.isfile(onnxruntime_qnn.get_library_path())"

# Large images over DDS: the shipped Fast DDS profile (64 MiB shared-memory segment).
ENV FASTRTPS_DEFAULT_PROFILES_FILE=/opt/offroad/install/offroad_bringup/share/offroad_bringup/config/fastdds_large_images.xml \
    RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# The HTP skel libraries (libQnnHtpV73Skel.so) are loaded by the CDSP through FastRPC from
# ADSP_LIBRARY_PATH: the onnxruntime-qnn wheel's library directory first, then the BSP's
# DSP directories. /dev/fastrpc-cdsp must be passed to the container (docker/README.md).
RUN qnn_dir=$(/opt/offroad/venv/bin/python -c "import onnxruntime_qnn, os; \
print(os.path.dirname(onnxruntime_qnn.get_library_path()))") \
    && echo "export ADSP_LIBRARY_PATH=\"${qnn_dir};/usr/lib/rfsa/adsp;/usr/lib/dsp/cdsp;/dsp\"" \
        > /etc/profile.d/offroad-adsp.sh \
    && echo "${qnn_dir}" > /opt/offroad/qnn_lib_dir

COPY docker/robot-entrypoint.sh /usr/local/bin/offroad-entrypoint
RUN chmod 0755 /usr/local/bin/offroad-entrypoint && mkdir -p /models \
    && chown -R "${USERNAME}:${USERNAME}" /opt/offroad /models

USER ${USERNAME}
ENTRYPOINT ["/usr/local/bin/offroad-entrypoint"]
CMD ["ros2", "launch", "offroad_bringup", "offroad_perception.launch.py", "model:=/models/model_ctx.onnx"]
