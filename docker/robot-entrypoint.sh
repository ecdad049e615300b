#!/usr/bin/env bash
# Entry point of the robot image: ROS 2 Jazzy + the project's venv and workspace, the HTP
# library path, then the command (default: the perception launch).
set -eo pipefail
# shellcheck disable=SC1091
source /opt/ros/jazzy/setup.bash
# shellcheck disable=SC1091
source /opt/offroad/venv/bin/activate
# shellcheck disable=SC1091
source /opt/offroad/install/setup.bash
# shellcheck disable=SC1091
source /etc/profile.d/offroad-adsp.sh
if [ ! -e /dev/fastrpc-cdsp ] && [ ! -e /dev/adsprpc-smd ]; then
  echo "offroad: no /dev/fastrpc-cdsp in the container: the HTP is unreachable (pass" \
       "--device /dev/fastrpc-cdsp, see docker/README.md); provider qnn will fail" >&2
fi
exec "$@"
