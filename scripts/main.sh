#!/usr/bin/env bash
# The main job: the scripted scoop in the Newton simulator at three resolutions (success per
# resolution) and a picture of a scene. Replaced by the simulated ROS stack once it lands.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
mkdir -p runs
excavation-sim run --delta-mm 70 50 30 --num-envs 8 --episodes 16 --json runs/scripted_success.json
excavation-sim picture --delta-mm 30 --num-envs 1 --out runs/scene.png
