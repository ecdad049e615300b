#!/usr/bin/env bash
# Creates .venv and installs everything the workspace needs; `make setup` calls it.
#
# Two ROS 2 paths:
#   * /opt/ros/jazzy exists (the robot, most desktops): the venv sees apt's ROS 2 through
#     --system-site-packages and only the project's Python dependencies are installed.
#   * otherwise (CI, development machines): ROS 2 Jazzy comes from the PyPI wheels listed in
#     requirements/ros-jazzy-wheels.txt, and the CMake export files of the message wheels are
#     rewritten to point at this interpreter (they name the wheel builder's paths).
#
# Idempotent: a stamp holding the hash of the requirement files skips pip when nothing changed.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
ROS_DISTRO_DIR=${ROS_DISTRO_DIR:-/opt/ros/jazzy}
STAMP="$VENV/.offroad-setup-stamp"

if [ -f "$ROS_DISTRO_DIR/setup.bash" ]; then
  ros_source=apt
  req_files="requirements/python.txt requirements/constraints.txt offroad_core/pyproject.toml offroad_training/pyproject.toml"
else
  ros_source=wheels
  req_files="requirements/ros-jazzy-wheels.txt requirements/python.txt requirements/constraints.txt offroad_core/pyproject.toml offroad_training/pyproject.toml"
fi
# shellcheck disable=SC2086
want=$( { echo "$ros_source"; cat $req_files scripts/setup_workspace.sh; } | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "setup: $VENV is up to date (ROS 2 from $ros_source)"
  exit 0
fi

"$PYTHON" - <<'EOF'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python >= 3.11 is required, {sys.executable} is {sys.version.split()[0]}")
EOF

if [ ! -x "$VENV/bin/python" ]; then
  if [ "$ros_source" = apt ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
# colcon must never crawl into the venv.
touch "$VENV/COLCON_IGNORE"

PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check -c requirements/constraints.txt)
if [ "$ros_source" = wheels ]; then
  echo "setup: installing ROS 2 Jazzy from PyPI wheels"
  "${PIP[@]}" -r requirements/ros-jazzy-wheels.txt
fi
echo "setup: installing the project's Python dependencies"
"${PIP[@]}" -r requirements/python.txt
"${PIP[@]}" --no-build-isolation --no-deps -e offroad_core -e offroad_training

if [ "$ros_source" = wheels ]; then
  # The message wheels' CMake exports name the wheel builder's interpreter and numpy paths.
  py_include=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  np_include=$("$VENV/bin/python" -c "import numpy; print(numpy.get_include())")
  { grep -rlE "/opt/python/cp3[0-9]+-cp3[0-9]+" "$VENV/share" --include='*.cmake' || true; } \
    | while read -r f; do
        sed -i -E \
          -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_include}#g" \
          -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${np_include}#g" \
          "$f"
      done
fi

echo "$want" > "$STAMP"
echo "setup: done (ROS 2 from $ros_source)"
