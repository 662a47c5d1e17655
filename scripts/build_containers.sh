#!/usr/bin/env bash
# Builds the training and the ROS image on this machine (Debian podman/buildah from a local mmdebstrap Debian 12
# base, no Docker Hub needed), runs the checks inside them and writes bench/results/containers.json.
# Arguments pass to docker/build_containers.py (--help). Needs root and: apt-get install podman buildah mmdebstrap
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" docker/build_containers.py "$@"
