#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine with Python 3.11: system packages, the project venv (.venv)
# with every pinned dependency, and the project packages (ROS package, simulator, training) in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# open3d needs libusb at import time; the view's page test (tests/view) loads the Rerun web viewer
# in Debian's headless Chromium. Only what is missing is installed.
apt_missing=()
ldconfig -p 2>/dev/null | grep -q libusb-1.0 || apt_missing+=(libusb-1.0-0)
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

[ -d .venv ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -r requirements.txt
# The sweep runner's Ray Tune (optional for users: bench/prpd_sweep.py --no-ray runs without it; its tests need it).
python -m pip install -q -r requirements-sweep.txt
python -m pip install -q --no-deps -e ros2_ws/src/excavation_contract -e ros2_ws/src/excavation -e ros2_ws/src/excavation_simulation -e sim -e training
echo "setup done: $(python --version), torch $(python -c 'import torch; print(torch.__version__)'), newton $(python -c 'import newton; print(newton.__version__)')"
