"""launch_stack: the simulated stack from one command where `ros2 launch` is not installed.

Starts the graph of ``excavation_simulation.graph`` (the one ``launch/sim.launch.py`` starts), as separate
processes, with the same parameter file (``config/sim.yaml``) plus the overrides given here; waits for the episode runner to finish, then
stops everything. Ctrl-C / SIGTERM are forwarded. Every node gets the Fast DDS profile
``config/fastdds_large_frames.xml`` (8 MB shared-memory segments, so a 600 kB depth frame crosses
processes in about 2.5 ms instead of about 13 ms), unless the environment already names a profile or
``--dds-profile none`` is given. Every node runs in its own process group; stopping
is SIGINT, then SIGTERM, then SIGKILL of the whole group after timeouts, so no process is left behind.

Exit code: the episode runner's (0 = all episodes ran and the summary was printed); 1 when a node died
before the run finished; 2 for bad arguments or a missing config; 3 for a refused policy bundle;
130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import sys
import threading
import time
from dataclasses import dataclass, field

from excavation import ros_common as rc
from excavation.dds_shm import SHM_DIR, clean_stale_segments
from excavation_contract import interfaces as I

from . import graph
from . import topics as T

NODES = tuple(n.name for n in graph.NODES)
MODULES = {n.name: n.module for n in (*graph.NODES, graph.RECORDER, graph.VIEW)}


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: object = None
    lines: list = field(default_factory=list)


def ros_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(ros_value(x) for x in v) + "]"
    if isinstance(v, str):
        return v if v else "''"
    return repr(v)


def build_commands(a) -> dict[str, list[str]]:
    """Command line of every process: python -m <module> --ros-args --params-file <config> -p ..."""
    overrides: dict[str, dict] = {n: {} for n in NODES}
    overrides[graph.CLOCK_SOURCE]["use_sim_time"] = False
    for (node, param), name in graph.CONFIG_FILE_PARAMETERS.items():
        overrides[node][param] = rc.config_file(name, graph.PACKAGE)
    # The graph's launch arguments, as sim.launch.py applies them (None: keep the config's value).
    given = {"policy": os.path.abspath(a.policy) if a.policy is not None else None,
             "resolution": float(a.resolution) if a.resolution is not None else None,
             "episodes": int(a.episodes), "randomization": a.randomization,
             "depth_topic": a.depth_topic or None, "info_topic": a.info_topic or None, "qos": a.qos or None,
             "summary_json": os.path.abspath(a.summary_json) if a.summary_json else None}
    assert set(given) == {arg.name for arg in graph.ARGUMENTS}, "launch_stack must offer every graph argument"
    for arg in graph.ARGUMENTS:
        if given[arg.name] is not None:
            for node, param in arg.targets:
                overrides[node][param] = given[arg.name]
    if a.resolution is not None:
        node, param = graph.GRAIN_SIZE_TARGET
        overrides[node][param] = graph.grain_size_m(a.resolution)
    if a.seed is not None:
        overrides["sim_world"]["seed"] = int(a.seed)
    if a.max_episode_steps is not None:
        overrides["sim_world"]["max_episode_steps"] = int(a.max_episode_steps)
    if a.camera_width is not None:
        overrides["sim_world"]["camera_width"] = int(a.camera_width)
    if a.camera_height is not None:
        overrides["sim_world"]["camera_height"] = int(a.camera_height)
    viewing = a.view or bool(a.record_view)
    if viewing:
        overrides["sim_world"]["publish_scene_every"] = graph.VIEW_SCENE_EVERY
    for item in a.param or []:
        node, _, kv = item.partition(":")
        k, _, v = kv.partition("=")
        if node not in overrides or not k or not _:
            raise ValueError(f"--param {item!r}: expected NODE:NAME=VALUE with NODE in {list(NODES)}")
        overrides[node][k] = _parse_scalar(v)
    params_file = merged_params_file(a.config, overrides, a.params_out)
    cmds = {n: [sys.executable, "-m", MODULES[n], "--ros-args", "--params-file", params_file] for n in NODES}
    if a.record:
        sim_topics = [f"--topic={name}:{typ}" for name, typ in T.RECORDED.items()]
        cmds["recorder"] = [sys.executable, "-m", MODULES["recorder"], "--output", os.path.abspath(a.record),
                            *sim_topics] + (["--images"] if a.record_images else []) + [
            "--ros-args", "-p", "use_sim_time:=true"]
    if viewing:
        depth = given["depth_topic"] or I.REALSENSE_IMAGE
        info = given["info_topic"] or I.REALSENSE_INFO
        cmds["view"] = [sys.executable, "-m", MODULES["view"], "--ros-args", "-p", "use_sim_time:=true",
                        "-p", f"serve:={'true' if a.view else 'false'}", "-p", f"web_port:={int(a.view_port)}",
                        "-p", f"grpc_port:={int(a.view_grpc_port)}", "-p", f"depth_topic:={depth}",
                        "-p", f"info_topic:={info}",
                        "-p", f"calibration_file:={overrides['perception']['calibration_file']}",
                        "-p", f"record:={ros_value(os.path.abspath(a.record_view) if a.record_view else '')}"]
    return cmds


def merged_params_file(config: str, overrides: dict[str, dict], out_path: str) -> str:
    """The config with the overrides merged into each node's section, written to ``out_path``.

    Merged into one file rather than given as ``-p``: rcl ranks a node's own section in a params
    file above global ``-p`` overrides, so those would silently lose.
    """
    import yaml

    with open(config, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{config}: not a ROS parameter file (expected a mapping of node names)")
    for node, values in overrides.items():
        section = data.setdefault(node, {}).setdefault("ros__parameters", {})
        section.update(values)
    with open(out_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return out_path


def _parse_scalar(v: str):
    import yaml

    try:
        return yaml.safe_load(v)
    except yaml.YAMLError:
        return v


DDS_PROFILE_FILE = graph.DDS_PROFILE_FILE
DDS_PROFILE_ENV = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")  # Fast DDS 2.x, 3.x


def dds_environment(choice: str | None, environ=None) -> dict[str, str]:
    """Environment variables that give every node a Fast DDS XML profile.

    ``choice`` None: the package's ``fastdds_large_frames.xml``, unless ``environ`` already names a
    profile (then nothing changes); "none" or "": nothing; otherwise that file (which must exist).
    """
    environ = os.environ if environ is None else environ
    if choice is None:
        if any(environ.get(k) for k in DDS_PROFILE_ENV):
            return {}
        choice = rc.config_file(DDS_PROFILE_FILE, graph.ROBOT_PACKAGE)
    if choice in ("", "none"):
        return {}
    path = os.path.abspath(choice)
    if not os.path.isfile(path):
        raise ValueError(f"--dds-profile {choice}: no such file")
    return {k: path for k in DDS_PROFILE_ENV}


class Stack:
    def __init__(self, cmds: dict[str, list[str]], log_dir: str | None, quiet: bool, env: dict[str, str] | None = None):
        self.cmds, self.log_dir, self.quiet = cmds, log_dir, quiet
        self.env = dict(env or {})
        self.procs: list[Proc] = []
        self.pumps: list[threading.Thread] = []
        self.stop_requested = threading.Event()

    def start(self) -> None:
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
        for name, cmd in self.cmds.items():
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, start_new_session=True, text=True, errors="replace")
            log = open(os.path.join(self.log_dir, f"{name}.log"), "w") if self.log_dir else None
            proc = Proc(name, p, log)
            self.procs.append(proc)
            pump = threading.Thread(target=self._pump, args=(proc,), daemon=True)
            pump.start()
            self.pumps.append(pump)

    def _pump(self, proc: Proc) -> None:
        for line in proc.popen.stdout:
            proc.lines.append(line)
            del proc.lines[:-50]
            if proc.log:
                proc.log.write(line)
                proc.log.flush()
            # The summary and errors always reach the terminal; node chatter only without --quiet.
            if not self.quiet or proc.name == "episode_runner" or "ERROR" in line or "Traceback" in line:
                sys.stdout.write(line if proc.name == "episode_runner" else f"[{proc.name}] {line}")
                sys.stdout.flush()

    def get(self, name: str) -> Proc | None:
        return next((p for p in self.procs if p.name == name), None)

    def stop(self, grace_s: float = 8.0) -> None:
        """SIGINT every group, then SIGTERM, then SIGKILL; reap everything."""
        for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            alive = [p for p in self.procs if p.popen.poll() is None]
            if not alive:
                break
            for p in alive:
                try:
                    os.killpg(p.popen.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(p.popen.poll() is None for p in alive):
                time.sleep(0.05)
        # A node's own children (if any) live in its group: make sure the groups are empty too.
        for p in self.procs:
            try:
                os.killpg(p.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.popen.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
        # The last lines a node printed while stopping (the runner's partial summary) reach the terminal.
        for pump in self.pumps:
            pump.join(timeout=2.0)
        for p in self.procs:
            if p.log:
                p.log.close()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="launch_stack", description="Run the simulated excavation stack (no `ros2 launch` needed).")
    ap.add_argument("--config", default=rc.config_file(graph.CONFIG_FILE, graph.PACKAGE), help="ROS parameter file for every node (default: the package's sim.yaml)")
    ap.add_argument("--policy", default=None, help="policy bundle folder (default: policy_path in the config, policies/default)")
    ap.add_argument("--episodes", type=int, default=3, help="episodes to run (default 3)")
    ap.add_argument("--resolution", type=float, default=None, help="simulation resolution in mm (default: the config's)")
    ap.add_argument("--seed", type=int, default=None, help="world seed")
    ap.add_argument("--randomization", dest="randomization", action="store_true", default=None, help="domain randomisation on")
    ap.add_argument("--no-randomization", dest="randomization", action="store_false", help="nominal scene")
    ap.add_argument("--max-episode-steps", type=int, default=None, help="control steps per episode before time-out")
    ap.add_argument("--camera-width", type=int, default=None)
    ap.add_argument("--camera-height", type=int, default=None)
    ap.add_argument("--depth-topic", default=None, help="depth image topic between camera and perception")
    ap.add_argument("--info-topic", default=None, help="CameraInfo topic between camera and perception")
    ap.add_argument("--qos", choices=("reliable", "best_effort"), default=None, help="camera QoS reliability")
    ap.add_argument("--record", default=None, metavar="DIR", help="write an MCAP rosbag2 of the run to DIR")
    ap.add_argument("--record-images", action="store_true", help="include depth images in the recording")
    ap.add_argument("--view", action="store_true",
                    help="watch the run in the Rerun web viewer, served on 127.0.0.1 (--view-port); needs rerun-sdk")
    ap.add_argument("--view-port", type=int, default=graph.VIEW_WEB_PORT, metavar="PORT",
                    help=f"port of the web viewer page on 127.0.0.1 (default {graph.VIEW_WEB_PORT})")
    ap.add_argument("--view-grpc-port", type=int, default=graph.VIEW_GRPC_PORT, metavar="PORT",
                    help=f"port on 127.0.0.1 the page reads the data from (default {graph.VIEW_GRPC_PORT})")
    ap.add_argument("--record-view", default=None, metavar="FILE.rrd",
                    help="write the view to a Rerun recording (replay: rerun FILE.rrd); needs rerun-sdk")
    ap.add_argument("--summary-json", default=None, help="write the episode summary as JSON here")
    ap.add_argument("--param", action="append", metavar="NODE:NAME=VALUE", help="any other parameter override (repeatable)")
    ap.add_argument("--log-dir", default=None, help="write each node's output to DIR/<node>.log")
    ap.add_argument("--timeout", type=float, default=None, help="wall-clock limit of the whole run (s)")
    ap.add_argument("--quiet", action="store_true", help="only the summary and errors on the terminal")
    ap.add_argument("--dds-profile", default=None, metavar="XML",
                    help="Fast DDS XML profile for every node (default: the package's fastdds_large_frames.xml, "
                         "large shared-memory segments for depth frames, unless FASTRTPS_DEFAULT_PROFILES_FILE is set; "
                         "'none' = Fast DDS defaults)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.episodes < 1:
        print("launch_stack: --episodes must be >= 1", file=sys.stderr)
        return rc.EXIT_BAD_CONFIG
    if not os.path.isfile(a.config):
        print(f"launch_stack: config file {a.config} does not exist", file=sys.stderr)
        return rc.EXIT_BAD_CONFIG
    if a.policy is not None and not os.path.isdir(a.policy):
        what = ("is a file; expected the bundle folder that holds policy.pt and policy.json"
                if os.path.isfile(a.policy) else "does not exist")
        print(f"launch_stack: --policy {a.policy!r} {what}", file=sys.stderr)
        return rc.EXIT_BAD_POLICY
    if (a.view or a.record_view) and not a.dry_run:
        from .view_node import rerun_missing

        missing = rerun_missing()
        if missing:
            print(f"launch_stack: --view/--record-view: {missing}", file=sys.stderr)
            return rc.EXIT_BAD_CONFIG
    tmpdir = tempfile.mkdtemp(prefix="launch_stack.")
    a.params_out = os.path.join(tmpdir, "params.yaml")
    try:
        cmds = build_commands(a)
        env = dds_environment(a.dds_profile)
    except (ValueError, OSError) as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        print(f"launch_stack: {exc}", file=sys.stderr)
        return rc.EXIT_BAD_CONFIG
    if a.dry_run:
        for k, v in env.items():
            print(f"{k}={v}")
        for n, c in cmds.items():
            print(f"{n}: {' '.join(c)}")
        with open(a.params_out) as f:
            print(f.read())
        shutil.rmtree(tmpdir, ignore_errors=True)
        return rc.EXIT_OK

    if a.view:
        from .view import viewer_url

        print(f"launch_stack: watch it at {viewer_url(a.view_port, a.view_grpc_port)}", flush=True)
    stack = Stack(cmds, a.log_dir, a.quiet, env)
    interrupted = threading.Event()
    started_at = time.time() - 1.0

    def on_signal(signum, frame):
        interrupted.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = rc.EXIT_RUN_FAILED
    try:
        stack.start()
        t0 = time.monotonic()
        runner = stack.get("episode_runner")
        while True:
            if interrupted.is_set():
                print("launch_stack: interrupted, stopping every node", file=sys.stderr, flush=True)
                code = rc.EXIT_INTERRUPTED
                break
            rcode = runner.popen.poll()
            if rcode is not None:
                code = rcode
                if rcode != 0:
                    print(f"launch_stack: episode_runner exited with {rcode}", file=sys.stderr, flush=True)
                break
            dead = [p for p in stack.procs if p.name not in ("episode_runner",) and p.popen.poll() is not None]
            if dead:
                p = dead[0]
                tail = "".join(p.lines[-10:])
                print(f"launch_stack: node {p.name} exited with {p.popen.returncode} before the run finished; "
                      f"stopping the stack.\n--- last output of {p.name} ---\n{tail}", file=sys.stderr, flush=True)
                code = rc.EXIT_BAD_POLICY if (p.name == "policy" and p.popen.returncode == rc.EXIT_BAD_POLICY) else (
                    rc.EXIT_BAD_CONFIG if p.popen.returncode == rc.EXIT_BAD_CONFIG else rc.EXIT_RUN_FAILED)
                break
            if a.timeout and time.monotonic() - t0 > a.timeout:
                print(f"launch_stack: run exceeded --timeout {a.timeout:g} s; stopping", file=sys.stderr, flush=True)
                code = rc.EXIT_RUN_FAILED
                break
            time.sleep(0.1)
    finally:
        stack.stop()
        for s, h in old.items():
            signal.signal(s, h)
        shutil.rmtree(tmpdir, ignore_errors=True)
        # Nodes that had to be killed leave their Fast DDS shared memory behind (~8 MB each).
        n, freed = clean_stale_segments(newer_than=started_at)
        if n:
            print(f"launch_stack: removed {n} shared-memory files ({freed / 1e6:.1f} MB) that killed nodes left "
                  f"in {SHM_DIR}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
