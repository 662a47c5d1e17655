"""Control-loop timing of the UR5e driver against the RTDE emulator at 500 Hz.

Measures, while the loop streams servoL toward targets that change at the policy's rate (10 Hz):
* the loop period and its jitter |period - 2 ms| (mean, p99, max);
* target-to-servoL latency: from ``set_target`` (a target handed to the driver) to the return of
  the first servoL that carries motion toward it.

The emulator runs in its own process (as the controller would); the loop runs in this process on
the real ur_rtde client, exactly the code the driver's worker process runs.

    python bench/rtde_loop_bench.py [--seconds 10] [--rate 500]

Writes bench/results/rtde_loop.json and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ros2_ws", "src", "excavation"))

from excavation.drivers.rtde_emulator.harness import EmulatorProcess  # noqa: E402
from excavation.drivers.safety import SafetyConfig  # noqa: E402
from excavation.drivers.ur5e_control_loop import ControlLoop, LoopConfig, loop_jitter_stats  # noqa: E402

T_BASE_TRAY = np.array([[-1.0, 0, 0, -0.50], [0, -1.0, 0, -0.13], [0, 0, 1.0, 0.0], [0, 0, 0, 1.0]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "rtde_loop.json"))
    args = ap.parse_args()

    with EmulatorProcess() as emu:
        loop = ControlLoop(LoopConfig(robot_ip=emu.host, rate_hz=args.rate), SafetyConfig(), T_BASE_TRAY)
        loop.start()
        t = time.monotonic()
        while not loop.state().get("connected"):
            if time.monotonic() - t > 30:
                print("no connection to the emulator", file=sys.stderr)
                return 1
            time.sleep(0.05)
        ok, msg = loop.request("enable")
        if not ok:
            print(f"enable failed: {msg}", file=sys.stderr)
            return 1
        start = np.array(loop.state()["tip"])
        rng = np.random.default_rng(0)
        loop.cycle_starts.clear()
        loop.target_latencies.clear()
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < args.seconds:
            # A slowly wandering target, like a policy's per-step displacements.
            goal = start + np.array([0.03 * np.sin(0.5 * k * 0.1), 0.03 * np.cos(0.3 * k * 0.1), 0.02]) \
                + rng.normal(0, 0.001, 3)
            loop.set_target(goal, 0.1 * np.sin(0.2 * k * 0.1), "tray")
            k += 1
            time.sleep(0.1)
        starts = list(loop.cycle_starts)
        lat = np.array(loop.target_latencies) * 1e3
        servo_calls = loop.servo_calls
        state = loop.state()
        loop.request("stop")
        loop.shutdown()

    stats = loop_jitter_stats(starts, args.rate)
    load = os.getloadavg()
    result = {
        "rate_hz": args.rate,
        "duration_s": args.seconds,
        **stats,
        "target_latency_mean_ms": float(lat.mean()) if len(lat) else None,
        "target_latency_p95_ms": float(np.percentile(lat, 95)) if len(lat) else None,
        "target_latency_max_ms": float(lat.max()) if len(lat) else None,
        "targets": int(len(lat)),
        "servo_calls": int(servo_calls),
        "final_driver_state": state.get("driver_state"),
        "machine": {"cpus": os.cpu_count(), "loadavg_1_5_15": [round(x, 2) for x in load],
                    "python": platform.python_version(), "platform": platform.platform()},
        "notes": "Loop timed with time.sleep to absolute deadlines (no busy wait: it would starve the ROS "
                 "executor of the GIL); emulator in its own process on the same machine.",
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"rate {args.rate:.0f} Hz over {args.seconds:.0f} s: period mean {stats['period_mean_ms']:.3f} ms, "
          f"jitter mean {stats['period_jitter_mean_ms']:.3f} ms, p99 {stats['period_jitter_p99_ms']:.3f} ms, "
          f"max {stats['period_jitter_max_ms']:.3f} ms")
    print(f"target->servoL latency: mean {result['target_latency_mean_ms']:.3f} ms, "
          f"p95 {result['target_latency_p95_ms']:.3f} ms ({len(lat)} targets); load avg {load[0]:.2f} on "
          f"{os.cpu_count()} CPUs")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
