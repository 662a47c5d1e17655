#!/usr/bin/env bash
# Entry point of the ROS image (docker/Dockerfile.ros), on either base: ROS 2 (the base's /opt/ros/jazzy, or the
# PyPI wheels in /opt/venv), the venv, the colcon workspace /ws/ros2_ws/install, and the workspace's executables
# (launch_stack, ur5e_driver, perception, ...: lib/<package>/, where `ros2 run` finds them) on PATH; then the command.
# Sourced (from .bashrc) it only sets the environment.
if [ -f /opt/ros/jazzy/setup.bash ]; then
  # shellcheck disable=SC1091
  . /opt/ros/jazzy/setup.bash
else
  # ROS 2 from PyPI: the wheels' ament index is the venv (as scripts/env.sh does).
  export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-/opt/venv}"
fi
export VIRTUAL_ENV=/opt/venv
case ":$PATH:" in *:/opt/venv/bin:*) ;; *) PATH="/opt/venv/bin:$PATH" ;; esac
# colcon from PyPI writes the POSIX setup.sh (no colcon-bash).
# shellcheck disable=SC1091
. /ws/ros2_ws/install/setup.sh
for _d in /ws/ros2_ws/install/*/lib/*/; do
  case "$_d" in */lib/python*) ;; *) case ":$PATH:" in *":${_d%/}:"*) ;; *) PATH="$PATH:${_d%/}" ;; esac ;; esac
done
unset _d
export PATH
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "$#" -gt 0 ]; then
  exec "$@"
fi
