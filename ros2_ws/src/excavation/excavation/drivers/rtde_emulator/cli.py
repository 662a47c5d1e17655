"""``rtde_emulator``: run the UR controller emulator, optionally with a fault-injection port.

The emulator must run in its own process whenever a ``ur_rtde`` client shares the machine's test
process: ur_rtde's constructors hold the Python GIL while they wait for the controller, so an
emulator thread in the same interpreter could never answer them.

The control port (``--control-port``, loopback only) takes one JSON object per line and answers one:
``{"op": "protective_stop"}``, ``{"op": "emergency_stop"}``, ``{"op": "release_emergency_stop"}``,
``{"op": "drop_connections"}``, ``{"op": "silent", "value": true}``, ``{"op": "stall_script", "value": true}``,
``{"op": "stop_program"}``, ``{"op": "unlock_delay", "value": 0.0}``,
``{"op": "latency", "value": 0.05}``,
``{"op": "tcp_force", "value": [fx, fy, fz, tx, ty, tz]}``, ``{"op": "snapshot"}``, ``{"op": "servo_log"}``, ``{"op": "setpoint_log"}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading

import numpy as np

from excavation.drivers.rtde_emulator.server import EmulatorConfig, UREmulator, _is_loopback


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def handle(emu: UREmulator, req: dict) -> dict:
    op = req.get("op")
    if op == "protective_stop":
        emu.protective_stop()
    elif op == "emergency_stop":
        emu.emergency_stop()
    elif op == "release_emergency_stop":
        emu.release_emergency_stop()
    elif op == "drop_connections":
        emu.drop_connections()
    elif op == "silent":
        emu.set_silent(bool(req.get("value", True)))
    elif op == "stall_script":
        emu.set_script_stalled(bool(req.get("value", True)))
    elif op == "stop_program":
        emu.stop_program()
    elif op == "unlock_delay":
        emu.set_unlock_delay(float(req["value"]))
    elif op == "latency":
        emu.set_latency(float(req.get("value", 0.0)))
    elif op == "tcp_force":
        emu.set_tcp_force(req["value"])
    elif op == "snapshot":
        snap = emu.snapshot()
        snap.update(
            command_counts=dict(emu.command_counts),
            script_uploads=emu.script_uploads,
            rtde_connections=emu.rtde_connections,
            dashboard_log=list(emu.dashboard_log),
            ik_failures=emu.ik_failures,
            servo_setpoints=emu.servo_setpoints,
        )
        return {"ok": True, "result": _jsonable(snap)}
    elif op == "setpoint_log":
        return {"ok": True, "result": [list(x) for x in emu.setpoint_log]}
    elif op == "servo_log":
        log = list(emu.servo_log)
        return {"ok": True, "result": [[t, p.tolist()] for t, p in log]}
    elif op == "ping":
        pass
    else:
        return {"ok": False, "error": f"unknown op {op!r}"}
    return {"ok": True}


def serve_control(emu: UREmulator, host: str, port: int, stop: threading.Event) -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(4)
    srv.settimeout(0.2)

    def client(sock):
        f = sock.makefile("rwb")
        try:
            for line in f:
                try:
                    reply = handle(emu, json.loads(line))
                except Exception as exc:  # a bad request must not kill the emulator
                    reply = {"ok": False, "error": repr(exc)}
                f.write((json.dumps(reply) + "\n").encode())
                f.flush()
        except OSError:
            pass
        finally:
            sock.close()

    def accept():
        while not stop.is_set():
            try:
                sock, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=client, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="UR e-series controller emulator (RTDE, dashboard, script) for tests.")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind (any 127.x.y.z)")
    ap.add_argument("--rtde-port", type=int, default=30004)
    ap.add_argument("--dashboard-port", type=int, default=29999)
    ap.add_argument("--script-port", type=int, default=30003)
    ap.add_argument("--control-port", type=int, default=0, help="fault-injection JSON port (0: none)")
    ap.add_argument("--rate", type=float, default=500.0, help="control cycle rate [Hz]")
    ap.add_argument("--initial-q", type=float, nargs=6, default=None, help="initial joint angles [rad]")
    ap.add_argument("--unlock-delay", type=float, default=5.0, help="protective stop unlock delay [s]")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="[rtde_emulator] %(levelname)s %(message)s")
    if not _is_loopback(args.host):
        print(f"rtde_emulator: refusing non-loopback host {args.host}", file=sys.stderr)
        return 2
    cfg = EmulatorConfig(
        host=args.host,
        rtde_port=args.rtde_port,
        dashboard_port=args.dashboard_port,
        script_port=args.script_port,
        rate_hz=args.rate,
        protective_stop_unlock_delay_s=args.unlock_delay,
    )
    if args.initial_q is not None:
        cfg.initial_q = tuple(args.initial_q)
    emu = UREmulator(cfg)
    try:
        emu.start()
    except OSError as exc:
        print(f"rtde_emulator: cannot bind {args.host}: {exc}", file=sys.stderr)
        return 3
    stop = threading.Event()
    ctl = serve_control(emu, args.host, args.control_port, stop) if args.control_port else None
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"READY {args.host} rtde={args.rtde_port} dashboard={args.dashboard_port} "
          f"script={args.script_port} control={args.control_port}", flush=True)
    stop.wait()
    if ctl is not None:
        ctl.close()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
