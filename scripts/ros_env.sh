# Sourced (bash) by the Makefile and by developers: `source scripts/ros_env.sh`.
# Activates .venv, finds ROS 2 Jazzy (apt's /opt/ros/jazzy or the venv's wheels) and, when the
# workspace is built, overlays install/ so our messages and nodes are importable.
_offroad_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_offroad_venv=${VENV:-$_offroad_root/.venv}
if [ -f /opt/ros/jazzy/setup.bash ]; then
  # shellcheck disable=SC1091
  source /opt/ros/jazzy/setup.bash
fi
# shellcheck disable=SC1091
source "$_offroad_venv/bin/activate"
if [ ! -f /opt/ros/jazzy/setup.bash ]; then
  export CMAKE_PREFIX_PATH="$_offroad_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export AMENT_PREFIX_PATH="$_offroad_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
fi
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
if [ -f "$_offroad_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_offroad_root/install/setup.bash"
fi
unset _offroad_root _offroad_venv
