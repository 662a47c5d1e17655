#!/usr/bin/env bash
# Runs the whole test suite (real Newton on the CPU, real rclpy processes, real ur_rtde on loopback).
# Arguments pass to pytest; when one of them is a test path, only those tests run.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
paths=()
for a in "$@"; do
  case "$a" in tests|tests/*) paths+=("$a") ;; esac
done
if [ "${#paths[@]}" -eq 0 ]; then
  python -m pytest tests "$@"
else
  python -m pytest "$@"
fi
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
