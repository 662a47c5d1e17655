#!/usr/bin/env bash
# The main job: the simulated ROS 2 stack (Newton world, simulated camera and UR5e, perception,
# policy, episode runner; separate rclpy processes on loopback DDS) digging with the shipped policy
# at the finest resolution it was trained to, then the episode summary with the success rate.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
POLICY="${POLICY:-policies/default}"
EPISODES="${EPISODES:-3}"
# 20 mm by default: the policy's finest well-trained resolution (policies/default/policy.json), and one
# world steps faster than real time here. Perception is set to the resolution's grain size by the
# launcher (per-resolution figures: bench/results/perception.json, sources.sim.by_resolution_mm).
# RESOLUTION=final uses the finest resolution the policy was trained to.
RES="${RESOLUTION:-20}"
if [ "$RES" = "final" ]; then
  RES="$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['training']['final_resolution_mm'])" "$POLICY/policy.json")"
fi
# VIEW=1: watch it dig in the Rerun web viewer on 127.0.0.1 (VIEW_PORT, default 9090; docs/view.md);
# RECORD_VIEW=FILE.rrd: save that view to replay with `rerun FILE.rrd`. Both need rerun-sdk.
view=()
if [ "${VIEW:-0}" = "1" ]; then
  view+=(--view --view-port "${VIEW_PORT:-9090}")
fi
if [ -n "${RECORD_VIEW:-}" ]; then
  view+=(--record-view "$RECORD_VIEW")
fi
mkdir -p runs
launch_stack --policy "$POLICY" --episodes "$EPISODES" --resolution "$RES" --quiet --summary-json runs/main_summary.json ${view[@]+"${view[@]}"}
