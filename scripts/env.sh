# Sourced by the scripts: the project venv plus what ROS 2 from PyPI needs, kept on loopback.
# shellcheck disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/activate"
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-$VIRTUAL_ENV}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export PYTHONUNBUFFERED=1
