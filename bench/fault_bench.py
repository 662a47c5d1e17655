"""Fault injection, repeated: does the supervised UR5e driver notice every fault, how fast does it
stop commanding, and does it come back DISABLED?

Each run: the driver (``SupervisedControlLoop``, real ur_rtde in its worker process) is ENABLED and
streaming servoL toward fresh targets at 50 Hz against the RTDE emulator (its own process); one
fault is injected; the bench waits until the driver leaves ENABLED (the safe stop: the worker is
killed, or servoStop + FAULT), undoes the fault (restart the controller, unstall, recover), and
waits until the driver is connected again and DISABLED.

Fault kinds: ``kill`` (controller process SIGKILLed mid-motion, then restarted), ``drop_link``
(every connection closed by the controller), ``stall_stream`` (accepts, stops streaming),
``stall_script`` (stream alive, control script never answers "ready", so servoL blocks inside
ur_rtde), ``protective_stop``; and ``silent_peer`` (a controller that accepts TCP and never answers:
a run passes when every configured connection attempt was made, then the driver gave up).

Per kind: runs, missed (no safe stop within ``--deadline-s``, or not back DISABLED), time to safe
stop p50 / p99 / max (injection -> driver no longer ENABLED, seen by polling its state every 1 ms),
and ``commands_after_fault``: new servoL set points sent after the driver reported the safe stop,
told by when their RTDE package reached the controller's kernel (``SO_TIMESTAMPNS``; on loopback that
is the send time, whatever the load on the emulator's threads). ``commands_executed_after_stop``: new
set points the controller executed after the stop (counted by the emulator; its script re-running the
last set point, which holds the arm where it is, is not counted), which includes those sent before
the stop and still in flight; ``late_command_delay_max_s``: the latest execution after the safe stop. ``false_alarms``: runs in which the driver left ENABLED
before any fault was injected (a heartbeat missed on a loaded machine); such a run is redone and
its reason kept in ``false_alarm_reasons``.

    python bench/fault_bench.py [--runs 100] [--kinds kill stall_script ...]

Writes bench/results/faults.json (+ faults.png) and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

from excavation.drivers.rtde_emulator.harness import EmulatorProcess  # noqa: E402
from excavation.drivers.rtde_emulator.server import free_loopback_host  # noqa: E402
from excavation.drivers.safety import SafetyConfig  # noqa: E402
from excavation.drivers.ur5e_control_loop import LoopConfig  # noqa: E402
from excavation.drivers.ur5e_supervisor import SupervisedControlLoop  # noqa: E402
from provenance import revision  # noqa: E402

T_BASE_TRAY = np.array([[-1.0, 0, 0, -0.50], [0, -1.0, 0, -0.13], [0, 0, 1.0, 0.0], [0, 0, 0, 1.0]])
KINDS = ("kill", "drop_link", "stall_stream", "stall_script", "protective_stop", "silent_peer")


def wait(pred, timeout: float, poll: float = 0.001) -> float | None:
    """Monotonic time at which pred() first held, or None after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(poll)
    return time.monotonic() if pred() else None


class Streamer:
    def __init__(self, loop):
        self.loop, self.stop = loop, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        sign = 1.0
        while not self.stop.wait(0.02):
            tip = self.loop.state().get("tip")
            if tip is None:
                continue
            goal = np.array(tip) + [0.0, 0.0, 0.01 * sign]
            sign = -sign
            self.loop.set_target(goal, 0.0, "tray")

    def close(self):
        self.stop.set()
        self.thread.join(2.0)


def servo_count(emu) -> int:
    """New servoL set points the controller executed (its script repeating the last one is not counted)."""
    return int(emu.snapshot()["servo_setpoints"])


def back_disabled(loop, timeout: float) -> bool:
    s = lambda: loop.state()  # noqa: E731
    return wait(lambda: s().get("connected") and s()["driver_state"] == "DISABLED", timeout, 0.01) is not None


def run_kind(kind: str, runs: int, deadline_s: float, cfg_kw: dict) -> dict:
    if kind == "silent_peer":
        return run_silent_peer(runs, cfg_kw)
    emu = EmulatorProcess(extra_args=["--unlock-delay", "0.2"]).start()
    loop = SupervisedControlLoop(LoopConfig(robot_ip=emu.host, **cfg_kw), SafetyConfig(watchdog_timeout_s=0.5),
                                 T_BASE_TRAY)
    loop.start()
    times, missed, after, not_disabled, spurious = [], 0, [], 0, []
    sent_after, delays = [], []  # per run: set points received after the stop; delay of each executed after it
    try:
        if not back_disabled(loop, 30.0):
            raise RuntimeError(f"driver never connected: {loop.state()}")
        i = 0
        while i < runs:
            ok, msg = loop.request("enable")
            streamer = Streamer(loop)
            n0 = servo_count(emu)
            streaming = ok and wait(lambda: servo_count(emu) > n0 + 5 or loop.state()["driver_state"] != "ENABLED",
                                    10.0, 0.01)
            if not streaming or loop.state()["driver_state"] != "ENABLED":
                # The driver stopped before any fault was injected (on a loaded machine the control
                # thread can miss its heartbeat): a false alarm, recorded, and the run is redone.
                streamer.close()
                spurious.append(loop.state().get("reason", "") if ok else f"enable failed: {msg}")
                print(f"  {kind} run {i + 1}/{runs}: the driver stopped before the fault: {spurious[-1]}", flush=True)
                if len(spurious) > runs:
                    raise RuntimeError(f"{len(spurious)} false alarms in {kind}: the machine is too loaded to measure")
                if not back_disabled(loop, 30.0):
                    loop.request("recover")
                    back_disabled(loop, 30.0)
                continue
            t0 = time.monotonic()
            if kind == "kill":
                emu.proc.kill()
            elif kind == "drop_link":
                emu.call("drop_connections")
            elif kind == "stall_stream":
                emu.call("silent", True)
            elif kind == "stall_script":
                emu.call("stall_script", True)
            elif kind == "protective_stop":
                emu.call("protective_stop")
            t_safe = wait(lambda: loop.state()["driver_state"] != "ENABLED", deadline_s)
            streamer.close()
            if t_safe is None:
                missed += 1
            else:
                times.append(t_safe - t0)
            # Commands the controller executed after the driver said it stopped.
            if kind != "kill":
                n_safe = servo_count(emu)
                time.sleep(0.3)  # a window for stray commands to arrive; counted, not asserted
                after.append(servo_count(emu) - n_safe)
                # t_rx: when the package reached the kernel (its send time on loopback), not when the
                # emulator's thread read it: on a loaded machine that lags by tens of ms
                late = [(t_exec, t_rx) for t_exec, _, t_rx in emu.call("setpoint_log") if t_exec > t_safe]
                sent_after.append(sum(1 for _, t_rx in late if t_rx > t_safe))
                delays.extend(t_exec - t_safe for t_exec, _ in late)
            else:
                after.append(0)  # the controller is dead: nothing can execute
                sent_after.append(0)
            if kind == "kill":
                emu.stop()
                emu.start()
            elif kind == "stall_stream":
                emu.call("silent", False)
            elif kind == "stall_script":
                emu.call("stall_script", False)
            elif kind == "protective_stop":
                # The controller refuses to unlock before its unlock delay: retry until it agrees.
                wait(lambda: loop.request("recover")[0], 15.0, 0.1)
            if not back_disabled(loop, 30.0):
                not_disabled += 1
                loop.request("recover")
                back_disabled(loop, 30.0)
            print(f"  {kind} run {i + 1}/{runs}: safe stop "
                  + (f"{(t_safe - t0) * 1e3:.1f} ms" if t_safe else "MISSED") + f", after={after[-1]}", flush=True)
            i += 1
    finally:
        loop.shutdown()
        emu.stop()
    return summarise(runs, missed + not_disabled, times, sent_after, not_disabled=not_disabled,
                     false_alarms=len(spurious), false_alarm_reasons=sorted(set(spurious)),
                     commands_executed_after_stop=int(np.sum(after)),
                     runs_with_commands_executed_after_stop=int(np.count_nonzero(after)),
                     late_command_delay_max_s=float(max(delays)) if delays else None)


def run_silent_peer(runs: int, cfg_kw: dict) -> dict:
    attempts = 2
    missed = 0
    times = []
    for i in range(runs):
        host = free_loopback_host(ports=(30004, 29999, 30003))
        srv = socket.create_server((host, 30004))
        srv.settimeout(0.05)
        accepted, held, done = [], [], threading.Event()

        def accept():
            while not done.is_set():
                try:
                    s, _ = srv.accept()
                except (socket.timeout, OSError):
                    continue
                accepted.append(s)

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        kw = {**cfg_kw, "reconnect_attempts": attempts, "connect_timeout_s": 0.3}
        loop = SupervisedControlLoop(LoopConfig(robot_ip=host, **kw), SafetyConfig(), T_BASE_TRAY)
        t0 = time.monotonic()
        loop.start()
        t_gave_up = wait(lambda: "gave up" in (loop.state().get("reason") or ""), 30.0, 0.01)
        ok = t_gave_up is not None and len(accepted) == attempts and loop.state()["driver_state"] == "DISCONNECTED"
        missed += not ok
        if t_gave_up is not None:
            times.append(t_gave_up - t0)
        loop.shutdown()
        done.set()
        t.join(2.0)
        for s in accepted + held:
            s.close()
        srv.close()
        print(f"  silent_peer run {i + 1}/{runs}: attempts {len(accepted)}/{attempts}, "
              + ("ok" if ok else "MISSED"), flush=True)
    out = summarise(runs, missed, [], [0] * runs)
    out["attempts_configured"] = attempts
    out["time_to_give_up_p50_s"] = float(np.percentile(times, 50)) if times else None
    return out


def summarise(runs, missed, times, after, **extra) -> dict:
    t = np.asarray(times, dtype=float)
    pct = lambda q: float(np.percentile(t, q)) if len(t) else None  # noqa: E731
    return {"runs": runs, "missed": int(missed),
            "time_to_safe_stop_p50_s": pct(50), "time_to_safe_stop_p99_s": pct(99),
            "time_to_safe_stop_max_s": float(t.max()) if len(t) else None,
            "commands_after_fault": int(np.sum(after)), **extra}


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k, v in result["faults"].items() if v.get("time_to_safe_stop_p50_s") is not None]
    x = np.arange(len(kinds))
    fig, ax = plt.subplots(figsize=(8, 4))
    for j, (key, label) in enumerate((("p50", "p50"), ("p99", "p99"), ("max", "max"))):
        vals = [result["faults"][k][f"time_to_safe_stop_{key}_s"] * 1e3 for k in kinds]
        ax.bar(x + (j - 1) * 0.27, vals, 0.27, label=label)
    ax.axhline(250, color="k", ls="--", lw=1, label="target 250 ms")
    ax.set_xticks(x, kinds, rotation=15)
    ax.set_ylabel("time to safe stop [ms]")
    ax.set_title(f"fault injection, {result['runs_per_kind']} runs per kind ({result['revision']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100, help="runs per fault kind (default 100)")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS, help="fault kinds (default: all)")
    ap.add_argument("--deadline-s", type=float, default=5.0,
                    help="a fault not stopped within this is counted missed (default 5 s)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "faults.json"))
    args = ap.parse_args()
    cfg_kw = {"reconnect_backoff_s": 0.2, "connect_timeout_s": 1.0}
    result = {"benchmark": "fault_bench", "revision": revision(), "runs_per_kind": args.runs,
              "machine": {"host_cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "loadavg_1_5_15_start": list(os.getloadavg())},
              "loop_config": {**LoopConfig(**cfg_kw).__dict__, "robot_ip": "127.x.y.z (emulator)"},
              "faults": {}}
    for kind in args.kinds:
        print(f"{kind}: {args.runs} runs", flush=True)
        result["faults"][kind] = run_kind(kind, args.runs, args.deadline_s, cfg_kw)
        print(f"{kind}: {json.dumps(result['faults'][kind])}", flush=True)
        result["machine"]["loadavg_1_5_15_end"] = list(os.getloadavg())
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:  # after every kind: an interrupted bench keeps what it measured
            json.dump(result, f, indent=2)
    plot(result, os.path.splitext(args.out)[0] + ".png")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
