#!/usr/bin/env bash
# The main job: the simulated ROS 2 stack (Newton world, simulated camera and UR5e, perception,
# policy, episode runner; separate rclpy processes on loopback DDS) digging with the shipped policy
# at the finest resolution it was trained to, then the episode summary with the success rate.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
POLICY="${POLICY:-policies/default}"
EPISODES="${EPISODES:-3}"
RES="${RESOLUTION:-$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['training']['final_resolution_mm'])" "$POLICY/policy.json")}"
mkdir -p runs
launch_stack --policy "$POLICY" --episodes "$EPISODES" --resolution "$RES" --quiet --summary-json runs/main_summary.json
