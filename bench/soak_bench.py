"""Soak: the whole simulated stack (the main job's policy and resolution) for ``--minutes`` with the
MCAP recording on: does any node grow in memory, does success or latency drift, does the bag hold up?

One ``launch_stack`` run with an episode count it never reaches; once ``--minutes`` have passed since
the stack came up, the bench waits for the episode under way to end and stops the stack with SIGINT
(the episode runner then writes its summary of the finished episodes, the recorder closes the bag).

Every ``--sample-s``: the RSS of every node process by node name (the process and any children it
has; psutil, else /proc/<pid>/status VmRSS), episodes finished and succeeded so far (the episode
runner's per-episode log lines), the policy node's diagnostics (targets published, holds, clipped),
the bag's size so far, the load average, and the frame-to-target latency of the window.

Latency: the figures of record (p50 / p95 / p99 / max) are the episode runner's summary (wall time
from a depth frame's CameraInfo arriving to the bucket target carrying that frame's stamp, see
episode_runner.py); the runner reports them only at the end, so the per-sample series is the same
measurement made by a probe subscriber in this process (``--no-probe`` turns it off).

At the end: success rate with a Wilson 95 % interval, per node RSS first / last / max and a
least-squares slope in MB per hour (over the whole soak after the stack came up, and over its second
half, which leaves out start-up allocation), the bag's size and whether it re-reads intact (rosbags,
as tests/ros/test_ros_stack.py: every message read and deserialised, counts equal to the bag's
metadata). The bag is deleted unless ``--keep-bag``.

    python bench/soak_bench.py                      # 30 min, policies/default at 20 mm (scripts/main.sh)
    python bench/soak_bench.py --minutes 2 --out /tmp/soak_short.json

Writes bench/results/soak.json (+ soak.png) and prints the figures. Exit 0 when the soak ran to its
end and the bag re-read intact; 1 when the stack died (or never came up) -- the reason is printed and
saved in the JSON with what was measured until then; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Node name -> the module launch_stack runs it as (the simulated cell's ROS graph).
from excavation_simulation.launcher import MODULES  # noqa: E402

EPISODE_RE = re.compile(r"episode (\d+)/(\d+): (\w+) after (\d+) steps \((\d+) held, ([\d.]+) s\)")
STACK_UP_RE = re.compile(r"stack is up after ([\d.]+) s")
MANY_EPISODES = 100000  # the episode runner's maximum: the bench stops the run, not the count

try:
    import psutil
except ImportError:  # /proc fallback
    psutil = None


# ----------------------------------------------------------------------------- processes and memory
def _proc_children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _descendants(pid: int) -> list[int]:
    if psutil is not None:
        try:
            return [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    kids, out, todo = _proc_children(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [s.decode(errors="replace") for s in f.read().split(b"\0") if s]
    except OSError:
        return []


def rss_bytes(pid: int) -> int | None:
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss
        except psutil.Error:
            return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def node_processes(launcher_pid: int) -> dict[str, int]:
    """Node name -> pid of the process launch_stack started for it (found by its ``-m module``)."""
    by_module = {m: n for n, m in MODULES.items()}
    out = {"launcher": launcher_pid}
    for pid in _descendants(launcher_pid):
        cmd = _cmdline(pid)
        if "-m" in cmd:
            i = cmd.index("-m")
            if i + 1 < len(cmd) and cmd[i + 1] in by_module:
                out.setdefault(by_module[cmd[i + 1]], pid)
    return out


def node_rss_mb(procs: dict[str, int]) -> dict[str, float]:
    """RSS of each node's process plus its own children (if any), MB (1e6 bytes)."""
    res = {}
    for name, pid in procs.items():
        own = rss_bytes(pid)
        if own is None:
            continue
        kids = [] if name == "launcher" else _descendants(pid)
        res[name] = round((own + sum(rss_bytes(k) or 0 for k in kids)) / 1e6, 2)
    return res


def dir_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


# ----------------------------------------------------------------------------- latency probe
class Probe:
    """The episode runner's latency measurement, made in this process so it can be sampled: wall time
    from a CameraInfo's arrival to the first bucket target carrying its stamp. Also keeps the policy
    node's latest diagnostics."""

    def __init__(self, info_topic: str, target_topic: str):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import CameraInfo

        self.rclpy = rclpy
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, args=[], signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("soak_probe", context=self.ctx)
        self.lock = threading.Lock()
        self.frame_wall: dict[int, float] = {}
        self.window: list[float] = []
        self.total = 0
        self.policy_diag: dict[str, str] = {}
        self.node.create_subscription(CameraInfo, info_topic, self._on_info,
                                      QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(PoseStamped, target_topic, self._on_target, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # shutdown
            pass

    @staticmethod
    def _ns(stamp) -> int:
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    def _on_info(self, msg):
        with self.lock:
            self.frame_wall[self._ns(msg.header.stamp)] = time.monotonic()
            if len(self.frame_wall) > 200:
                for k in sorted(self.frame_wall)[:100]:
                    del self.frame_wall[k]

    def _on_target(self, msg):
        now = time.monotonic()
        with self.lock:
            t0 = self.frame_wall.pop(self._ns(msg.header.stamp), None)
            if t0 is not None:
                self.window.append((now - t0) * 1e3)
                self.total += 1

    def _on_diag(self, msg):
        for st in msg.status:
            if st.name == "policy":
                with self.lock:
                    self.policy_diag = {kv.key: kv.value for kv in st.values}

    def take(self) -> tuple[list[float], dict]:
        with self.lock:
            w, self.window = self.window, []
            return w, dict(self.policy_diag)

    def close(self):
        try:
            self.executor.shutdown(timeout_sec=2.0)
            self.thread.join(3.0)
            self.node.destroy_node()
            self.rclpy.try_shutdown(context=self.ctx)
        except Exception:
            pass


# ----------------------------------------------------------------------------- figures
def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def slope_mb_per_h(t_s, mb) -> float | None:
    t, y = np.asarray(t_s, float), np.asarray(mb, float)
    if len(t) < 3 or np.ptp(t) <= 0:
        return None
    return float(np.polyfit(t / 3600.0, y, 1)[0])


def memory_figures(samples: list[dict], t_up: float | None) -> dict:
    names = sorted({n for s in samples for n in s["rss_mb"]})
    out = {}
    for n in names:
        pts = [(s["t_s"], s["rss_mb"][n]) for s in samples if n in s["rss_mb"]]
        if not pts:
            continue
        up = [p for p in pts if t_up is None or p[0] >= t_up] or pts
        t0, t1 = up[0][0], up[-1][0]
        half = [p for p in up if p[0] >= (t0 + t1) / 2]
        vals = [p[1] for p in pts]
        out[n] = {"rss_first_mb": up[0][1], "rss_last_mb": up[-1][1], "rss_max_mb": max(vals),
                  "rss_at_first_sample_mb": pts[0][1],
                  "slope_mb_per_h": slope_mb_per_h(*zip(*up)) if len(up) >= 3 else None,
                  "slope_second_half_mb_per_h": slope_mb_per_h(*zip(*half)) if len(half) >= 3 else None,
                  "samples": len(pts)}
    return out


def reread_bag(path: str) -> dict:
    """Every message of the bag read and deserialised; counts checked against the bag's metadata."""
    t0 = time.monotonic()
    res = {"ok": False, "error": None}
    try:
        from rosbags.rosbag2 import Reader
        from rosbags.typesys import Stores, get_typestore

        store = get_typestore(Stores.ROS2_JAZZY)
        with Reader(path) as r:
            per_topic: dict[str, int] = {}
            bad = 0
            last_t = None
            for conn, t, raw in r.messages():
                try:
                    store.deserialize_cdr(raw, conn.msgtype)
                except Exception:
                    bad += 1
                per_topic[conn.topic] = per_topic.get(conn.topic, 0) + 1
                last_t = t
            meta = {}
            for c in r.connections:
                meta[c.topic] = meta.get(c.topic, 0) + c.msgcount
            total = sum(per_topic.values())
            res.update(messages=total, metadata_message_count=r.message_count, undeserialisable=bad,
                       topics=dict(sorted(per_topic.items())), duration_sim_s=round(r.duration / 1e9, 1),  # bag stamps are sim time
                       counts_match_metadata=(total == r.message_count
                                              and all(per_topic.get(k, 0) == v for k, v in meta.items())),
                       last_timestamp_ns=last_t)
            res["ok"] = bool(res["counts_match_metadata"] and bad == 0 and total > 0)
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
    res["read_s"] = round(time.monotonic() - t0, 1)
    return res


def revision() -> dict:
    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"revision": rev + ("-dirty" if dirty else ""), "commit": rev, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"revision": "unknown", "commit": None, "dirty": None}


def machine() -> dict:
    m = {"host_cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
         "loadavg_1_5_15_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        with open("/proc/cpuinfo") as f:
            m["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
        with open("/proc/meminfo") as f:
            m["mem_total_gb"] = round(int(f.readline().split()[1]) / 1e6, 1)
    except (OSError, ValueError, IndexError):
        pass
    m["rss_source"] = "psutil " + psutil.__version__ if psutil is not None else "/proc/<pid>/status VmRSS"
    return m


def label(path: str) -> str:
    full = os.path.abspath(path)
    return os.path.relpath(full, REPO) if full.startswith(REPO + os.sep) else os.path.basename(full.rstrip(os.sep))


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["samples"]
    t = np.array([x["t_s"] for x in s]) / 60.0
    fig, axes = plt.subplots(4, 1, figsize=(9, 12), sharex=True)
    up = result.get("stack_up_s")
    ax = axes[0]
    for n in sorted(result["memory"]):
        ax.plot(t, [x["rss_mb"].get(n, np.nan) for x in s], label=n)
    if up is not None:
        ax.axvline(up / 60.0, color="k", ls=":", lw=1, label="stack up")
    ax.set_ylabel("RSS [MB]")
    ax.legend(fontsize=8, ncol=4, loc="upper left")
    ax.set_title(f"soak: {result['policy']} at {result['resolution_mm']:g} mm, {result['duration_s'] / 60:.0f} min "
                 f"({result['revision']})")
    ax = axes[1]
    for n, m in sorted(result["memory"].items()):
        base = m["rss_first_mb"]
        sl = m.get("slope_mb_per_h")
        ax.plot(t, [x["rss_mb"].get(n, np.nan) - base if (up is None or x["t_s"] >= up) else np.nan for x in s],
                label=f"{n} ({'n/a' if sl is None else f'{sl:+.1f}'} MB/h)")
    ax.set_ylabel("RSS - RSS at stack up [MB]")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax = axes[2]
    ax.plot(t, [x["episodes"] for x in s], label="episodes")
    ax.plot(t, [x["successes"] for x in s], label="successes")
    ax.set_ylabel("cumulative")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[3]
    for key, lab in (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_max_ms", "max")):
        ax.plot(t, [np.nan if x.get(key) is None else x[key] for x in s], ".-", ms=3, label=f"window {lab}")
    ax.axhline(30.0, color="k", ls="--", lw=1, label="target p95 30 ms")
    ax.set_ylabel("frame->target [ms] (probe)")
    ax.set_xlabel("time since launch [min]")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- the soak
def pct(v, q):
    return round(float(np.percentile(v, q)), 2) if len(v) else None


def portable(text: str, work: str | None = None) -> str:
    """``text`` without this machine's paths: the run's work folder as <work>, the checkout as <repo>."""
    if work:
        text = text.replace(work, "<work>")
    return text.replace(REPO + os.sep, "<repo>/").replace(REPO, "<repo>")


def redact_result(path: str) -> int:
    """Re-write ``path`` (a soak.json) with ``portable`` applied to every string; figures untouched."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)

    def walk(x):
        if isinstance(x, str):
            return portable(x)
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        return x

    out = walk(data)
    out["redacted"] = {"by": "python bench/soak_bench.py --redact", **revision()}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    print(f"soak_bench: wrote {path} without machine paths")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="soak length after the stack is up (default 30)")
    ap.add_argument("--sample-s", type=float, default=10.0, help="sampling period (default 10 s)")
    ap.add_argument("--policy", default=os.environ.get("POLICY", os.path.join(REPO, "policies", "default")),
                    help="policy bundle (default: scripts/main.sh's, policies/default)")
    ap.add_argument("--resolution", type=float, default=20.0, help="resolution in mm (default 20, scripts/main.sh's)")
    ap.add_argument("--seed", type=int, default=None, help="world seed (default: the config's)")
    ap.add_argument("--bag-root", default=tempfile.gettempdir(), help="the bag (and node logs) go in a new folder here")
    ap.add_argument("--keep-bag", action="store_true", help="keep the bag and node logs (default: deleted)")
    ap.add_argument("--record-images", action="store_true", help="also record the depth images (large)")
    ap.add_argument("--no-probe", action="store_true", help="no latency probe subscriber (no per-sample latency)")
    ap.add_argument("--startup-timeout-s", type=float, default=600.0, help="the stack must be up within this")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "soak.json"), help="output JSON (+ .png)")
    ap.add_argument("--redact", metavar="JSON", default=None,
                    help="rewrite a result file this script wrote with machine paths replaced by placeholders "
                         "(<repo>, <work>); the figures are not touched; then exit")
    ap.add_argument("launcher_args", nargs="*", help="extra launch_stack arguments (after --)")
    a = ap.parse_args(argv)
    if a.redact:
        return redact_result(a.redact)
    if a.minutes <= 0 or a.sample_s <= 0:
        print("soak_bench: --minutes and --sample-s must be > 0", file=sys.stderr)
        return 2
    if not os.path.isfile(os.path.join(a.policy, "policy.json")):
        print(f"soak_bench: no policy bundle at {a.policy}", file=sys.stderr)
        return 2

    os.makedirs(a.bag_root, exist_ok=True)
    work = tempfile.mkdtemp(prefix="soak.", dir=a.bag_root)
    bag, logs, summary_path = os.path.join(work, "bag"), os.path.join(work, "logs"), os.path.join(work, "summary.json")
    cmd = [sys.executable, "-m", "excavation_simulation.launcher", "--policy", a.policy, "--episodes", str(MANY_EPISODES),
           "--resolution", f"{a.resolution:g}", "--summary-json", summary_path, "--record", bag,
           "--log-dir", logs, "--quiet", "--timeout", str(round(a.minutes * 60 + a.startup_timeout_s + 1800)),
           *(["--seed", str(a.seed)] if a.seed is not None else []),
           *(["--record-images"] if a.record_images else []), *a.launcher_args]
    result = {"benchmark": "soak_bench", **revision(), "machine": machine(),
              "ros_domain_id": os.environ.get("ROS_DOMAIN_ID"),
              "command": portable("python bench/soak_bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)),
              "launcher_command": portable(shlex.join(["python", *cmd[1:]]), work),
              "policy": label(a.policy), "resolution_mm": a.resolution, "minutes_requested": a.minutes,
              "sample_s": a.sample_s, "record_images": a.record_images}
    print(f"soak_bench: {a.minutes:g} min at {a.resolution:g} mm, sampling every {a.sample_s:g} s; work dir {work}",
          flush=True)
    print("  " + result["launcher_command"], flush=True)

    probe = None
    if not a.no_probe:
        try:
            probe = Probe("/camera/camera/depth/camera_info", "/bucket_target")
        except Exception as exc:
            print(f"soak_bench: no latency probe ({exc!r}); per-sample latency will be null", flush=True)

    state = {"episodes": 0, "successes": 0, "per_episode": [], "stack_up": None, "tail": []}
    lock = threading.Lock()
    t_launch = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, errors="replace", env=env, cwd=REPO)

    def pump():
        for line in proc.stdout:
            sys.stdout.write("  | " + line)
            sys.stdout.flush()
            with lock:
                state["tail"] = (state["tail"] + [line.rstrip()])[-40:]
                m = EPISODE_RE.search(line)
                if m:
                    state["episodes"] += 1
                    state["successes"] += m.group(3) == "success"
                    state["per_episode"].append({"t_s": round(time.monotonic() - t_launch, 1), "result": m.group(3),
                                                 "steps": int(m.group(4)), "held_steps": int(m.group(5)),
                                                 "wall_s": float(m.group(6))})
                elif state["stack_up"] is None and STACK_UP_RE.search(line):
                    state["stack_up"] = time.monotonic() - t_launch

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    samples: list[dict] = []
    failure = None
    seen: dict[str, int] = {}
    stopping_since = None
    interrupted = threading.Event()
    old = {s: signal.signal(s, lambda *_: interrupted.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    next_t = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                if stopping_since is None:
                    failure = f"launch_stack exited with {proc.returncode} before the soak ended"
                break
            if interrupted.is_set() and stopping_since is None:
                failure = "the bench was interrupted"
                proc.send_signal(signal.SIGINT)
                stopping_since = now
            if now >= next_t and stopping_since is None:
                next_t += a.sample_s
                procs = node_processes(proc.pid)
                for n, pid in procs.items():
                    seen.setdefault(n, pid)
                gone = [n for n, pid in seen.items() if n != "launcher" and procs.get(n) != pid]
                if gone:
                    failure = f"node process(es) gone during the soak: {', '.join(gone)}"
                    proc.send_signal(signal.SIGINT)
                    stopping_since = now
                    continue
                rss = node_rss_mb(procs)
                lat, diag = probe.take() if probe else ([], {})
                with lock:
                    eps, succ, up = state["episodes"], state["successes"], state["stack_up"]
                s = {"t_s": round(now - t_launch, 1), "episodes": eps, "successes": succ, "rss_mb": rss,
                     "latency_n": len(lat), "latency_p50_ms": pct(lat, 50), "latency_p95_ms": pct(lat, 95),
                     "latency_max_ms": round(max(lat), 2) if lat else None,
                     "policy_targets_published": _int(diag.get("targets_published")),
                     "policy_holds": _int(diag.get("holds")), "policy_targets_clipped": _int(diag.get("targets_clipped")),
                     "bag_mb": round(dir_size(bag) / 1e6, 2) if os.path.isdir(bag) else 0.0,
                     "loadavg_1": round(os.getloadavg()[0], 2)}
                samples.append(s)
                print(f"[{s['t_s'] / 60:6.1f} min] episodes {eps} ({succ} ok)  latency p50 {s['latency_p50_ms']} "
                      f"p95 {s['latency_p95_ms']} ms  bag {s['bag_mb']:.1f} MB  load {s['loadavg_1']}  RSS "
                      + " ".join(f"{k}={v:.0f}" for k, v in rss.items()), flush=True)
                if up is None and now - t_launch > a.startup_timeout_s:
                    failure = f"the stack was not up within {a.startup_timeout_s:g} s"
                    proc.send_signal(signal.SIGINT)
                    stopping_since = now
                    continue
                if up is not None and now - t_launch >= up + a.minutes * 60:
                    # Past the soak: stop at the end of the episode under way (wait for its log line).
                    target = eps + 1
                    print(f"soak_bench: {a.minutes:g} min done; stopping after episode {target}", flush=True)
                    deadline = time.monotonic() + 700.0
                    while time.monotonic() < deadline and proc.poll() is None and not interrupted.is_set():
                        with lock:
                            if state["episodes"] >= target:
                                break
                        time.sleep(0.2)
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)
                        stopping_since = time.monotonic()
                    continue
            if stopping_since is not None and time.monotonic() - stopping_since > 90:
                failure = (failure or "") + "; launch_stack did not stop within 90 s of SIGINT (killed)"
                proc.kill()
                proc.wait()
                break
            time.sleep(0.2)
    finally:
        for s_, h in old.items():
            signal.signal(s_, h)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5.0)
        if probe:
            probe.close()
    t_end = time.monotonic()
    result["machine"]["loadavg_1_5_15_end"] = [round(x, 2) for x in os.getloadavg()]
    result["launcher_exit_code"] = proc.returncode
    result["stack_up_s"] = None if state["stack_up"] is None else round(state["stack_up"], 1)
    result["duration_s"] = round(t_end - t_launch, 1)
    result["soak_s"] = None if state["stack_up"] is None else round(t_end - t_launch - state["stack_up"], 1)

    summary = None
    if os.path.isfile(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    elif failure is None:
        failure = "the episode runner wrote no summary"
    if summary is not None and summary["episodes"] != state["episodes"] and failure is None:
        print(f"soak_bench: note: the runner's summary has {summary['episodes']} episodes, its log {state['episodes']}",
              flush=True)
    n = summary["episodes"] if summary else state["episodes"]
    k = summary["successes"] if summary else state["successes"]
    lo, hi = wilson(k, n)
    result.update({
        "ok": failure is None, "failure": failure,
        "episodes": n, "successes": k, "success_rate": (k / n) if n else None,
        "success_rate_wilson95": [lo, hi],
        "results": summary["results"] if summary else None,
        "steps_to_success_mean": summary["steps_to_success_mean"] if summary else None,
        "latency_source": "episode runner summary (whole run)",
        "latency_samples": summary["latency_samples"] if summary else None,
        "latency_p50_ms": summary["latency_p50_ms"] if summary else None,
        "latency_p95_ms": summary["latency_p95_ms"] if summary else None,
        "latency_p99_ms": summary["latency_p99_ms"] if summary else None,
        "latency_max_ms": summary["latency_max_ms"] if summary else None,
        "latency_target_p95_ms": 30.0,
        "probe_latency_samples": probe.total if probe else None,
        "memory": memory_figures(samples, state["stack_up"]),
    })
    result["memory_slope_note"] = ("slope_mb_per_h: least squares over every sample after the stack came up; "
                                   "slope_second_half_mb_per_h: over the second half of those (start-up "
                                   "allocation left out); RSS includes touched Fast DDS shared-memory pages")
    if os.path.isdir(bag):
        result["bag"] = {"size_mb": round(dir_size(bag) / 1e6, 2), "files": sorted(os.listdir(bag)),
                         "reread": reread_bag(bag)}
        if failure is None and not result["bag"]["reread"]["ok"]:
            failure = result["failure"] = f"the bag did not re-read intact: {result['bag']['reread']}"
            result["ok"] = False
    else:
        result["bag"] = {"size_mb": None, "reread": {"ok": False, "error": "no bag written"}}
        if failure is None:
            failure = result["failure"] = "no bag written"
            result["ok"] = False
    result["per_episode"] = state["per_episode"]
    result["samples"] = samples
    if failure is not None:
        result["stack_output_tail"] = state["tail"]

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    try:
        if samples:
            plot(result, os.path.splitext(a.out)[0] + ".png")
    except Exception as exc:
        print(f"soak_bench: no plot ({exc!r})", flush=True)

    def fmt(v, f="{:.1f}"):
        return "n/a" if v is None else f.format(v)

    print("=== soak ===")
    print(f"revision {result['revision']}, {result['machine']['host_cpus']} CPUs, load "
          f"{result['machine']['loadavg_1_5_15_start']} -> {result['machine']['loadavg_1_5_15_end']}")
    print(f"duration {result['duration_s'] / 60:.1f} min (stack up after {fmt(result['stack_up_s'])} s)")
    print(f"episodes {n}, successes {k}, rate {fmt(result['success_rate'], '{:.3f}')} "
          f"(Wilson 95% {fmt(lo, '{:.3f}')}..{fmt(hi, '{:.3f}')})")
    print(f"latency p50 {fmt(result['latency_p50_ms'])} ms, p95 {fmt(result['latency_p95_ms'])} ms, "
          f"max {fmt(result['latency_max_ms'])} ms ({result['latency_samples']} samples)")
    for name, m in result["memory"].items():
        print(f"  {name:15s} RSS first {m['rss_first_mb']:.0f} last {m['rss_last_mb']:.0f} max {m['rss_max_mb']:.0f} MB, "
              f"slope {fmt(m['slope_mb_per_h'], '{:+.1f}')} MB/h (second half {fmt(m['slope_second_half_mb_per_h'], '{:+.1f}')})")
    rr = result["bag"]["reread"]
    print(f"bag {fmt(result['bag']['size_mb'])} MB, re-read {'ok' if rr.get('ok') else 'FAILED'} "
          f"({rr.get('messages')} messages, {rr.get('read_s')} s)" + (f": {rr['error']}" if rr.get("error") else ""))
    print(f"wrote {a.out}")

    if a.keep_bag or failure is not None:
        print(f"kept {work} (bag and node logs)" + (" for the failure" if failure and not a.keep_bag else ""))
    else:
        shutil.rmtree(work, ignore_errors=True)
    if failure is not None:
        print(f"soak_bench: FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
