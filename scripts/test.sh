#!/usr/bin/env bash
# Runs the whole test suite (real Newton on the CPU, real rclpy processes, real ur_rtde on loopback).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
python -m pytest tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
