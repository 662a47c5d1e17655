"""episode_runner: runs N episodes of the simulated stack and reports them.

Per episode: stop the policy and the robot, reset the world (``sim/reset``), enable the robot, start
the policy, then follow ``sim/episode_status`` (sim_world's ground truth) until the episode ends.
Also measures the latency from each depth frame to the bucket target it caused: the wall time
between receiving the CameraInfo of a frame and receiving the target that carries that frame's stamp
(the policy puts the source frame's stamp in the target header).

Prints a summary (success rate, steps to success, latency percentiles) and writes it as JSON when
``summary_json`` is set. Exit code 0 when every episode ran (whatever its outcome), 1 when the stack
could not run them (services missing, no episode progress).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import numpy as np

from excavation_contract import interfaces as I
from excavation import ros_common as rc
from excavation_simulation import topics as T
from excavation_simulation.frame_latency import FrameLatency
from excavation.ros_common import Param, in_range

PARAMS = {
    "episodes": Param(1, "Episodes to run.", lambda v: isinstance(v, int) and 1 <= v <= 100000, "integer >= 1"),
    "summary_json": Param("", "Write the summary here as JSON (empty = only print it)."),
    "info_topic": Param(I.REALSENSE_INFO, "CameraInfo topic of the depth stream the policy sees (latency start)."),
    "target_topic": Param(I.BUCKET_TARGET, "Bucket target topic (latency end)."),
    "qos_reliability": Param("reliable", "Reliability of the CameraInfo subscription.", lambda v: v in ("reliable", "best_effort"), "reliable | best_effort"),
    "startup_timeout_s": Param(180.0, "Wall time to wait for every service of the stack (s).", in_range(1.0, 3600.0), "[1, 3600]"),
    "episode_timeout_s": Param(600.0, "Wall time one episode may take before the run is declared stuck (s).", in_range(1.0, 36000.0), "[1, 36000]"),
    "policy_node": Param("policy", "Name of the policy node (its ~/start and ~/stop services)."),
}


def percentile(values, q):
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else None


def summarize(results: list[dict], latencies_ms: list[float], resolution_mm, wall_s: float) -> dict:
    n = len(results)
    succ = [r for r in results if r["result"] == "success"]
    steps = [r["steps"] for r in succ]
    return {
        "episodes": n,
        "successes": len(succ),
        "success_rate": (len(succ) / n) if n else 0.0,
        "results": {k: sum(1 for r in results if r["result"] == k) for k in ("success", "time_out", "failure")},
        "steps_to_success_mean": float(np.mean(steps)) if steps else None,
        "steps_to_success_median": float(np.median(steps)) if steps else None,
        "latency_samples": len(latencies_ms),
        "latency_p50_ms": percentile(latencies_ms, 50),
        "latency_p95_ms": percentile(latencies_ms, 95),
        "latency_p99_ms": percentile(latencies_ms, 99),
        "latency_max_ms": float(max(latencies_ms)) if latencies_ms else None,
        "resolution_mm": resolution_mm,
        "wall_s": wall_s,
        "per_episode": results,
    }


def format_summary(s: dict) -> str:
    def f(v, fmt="{:.1f}"):
        return "n/a" if v is None else fmt.format(v)

    head = "=== episode summary ===" if not s.get("partial") else f"=== partial episode summary ({s['partial']}) ==="
    return "\n".join([
        head,
        f"episodes:          {s['episodes']} at {f(s['resolution_mm'], '{:g}')} mm",
        f"success rate:      {s['success_rate']:.2f} ({s['successes']}/{s['episodes']}; "
        f"time_out {s['results']['time_out']}, failure {s['results']['failure']})",
        f"steps to success:  mean {f(s['steps_to_success_mean'])}, median {f(s['steps_to_success_median'])}",
        f"frame->target latency: p50 {f(s['latency_p50_ms'])} ms, p95 {f(s['latency_p95_ms'])} ms, "
        f"p99 {f(s['latency_p99_ms'])} ms ({s['latency_samples']} samples)",
        f"wall time:         {s['wall_s']:.1f} s",
    ])


def main(args=None) -> int:
    import rclpy
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    class EpisodeRunner(Node):
        def __init__(self):
            super().__init__("episode_runner")
            self.p = p = rc.declare_params(self, PARAMS)
            self.lock = threading.Lock()
            self.status = None
            self.status_cv = threading.Condition(self.lock)
            self.frames = FrameLatency()
            self.latencies = []
            self.results: list[dict] = []  # finished episodes (a partial summary on failure or Ctrl-C)
            self.t_run: float | None = None
            self.collect = False
            group = ReentrantCallbackGroup()
            self.create_subscription(String, T.SIM_EPISODE, self._on_status, 10, callback_group=group)
            self.create_subscription(CameraInfo, p["info_topic"], self._on_info, rc.make_qos(p["qos_reliability"], 5), callback_group=group)
            self.create_subscription(PoseStamped, p["target_topic"], self._on_target, 10, callback_group=group)
            pol = p["policy_node"].strip("/")
            self.clients_ = {name: self.create_client(Trigger, srv, callback_group=group) for name, srv in {
                "reset": T.SIM_RESET, "enable": I.ENABLE, "stop": I.STOP,
                "policy_start": f"/{pol}/start", "policy_stop": f"/{pol}/stop"}.items()}

        def _on_status(self, msg):
            try:
                s = json.loads(msg.data)
            except ValueError:
                return
            with self.status_cv:
                self.status = s
                self.status_cv.notify_all()

        def _on_info(self, msg):
            self.frames.frame(msg.header.stamp)

        def _on_target(self, msg):
            ms = self.frames.target(msg.header.stamp)
            with self.lock:
                if ms is not None and self.collect:
                    self.latencies.append(ms)

        def call(self, name: str, timeout: float = 10.0) -> tuple[bool, str]:
            # Woken by the response (no polling): an episode starts right after its reset frame.
            done = threading.Event()
            fut = self.clients_[name].call_async(Trigger.Request())
            fut.add_done_callback(lambda _f: done.set())
            done.wait(timeout)
            if not fut.done():
                fut.cancel()
                return False, f"service {name} timed out"
            r = fut.result()
            return bool(r.success), r.message

        def wait_status(self, pred, timeout: float):
            deadline = time.monotonic() + timeout
            with self.status_cv:
                while True:
                    if self.status is not None and pred(self.status):
                        return dict(self.status)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self.status_cv.wait(min(left, 0.5))

        def run(self) -> int:
            p = self.p
            log = self.get_logger()
            t_start = time.monotonic()
            deadline = t_start + p["startup_timeout_s"]
            for name, cli in self.clients_.items():
                while not cli.wait_for_service(timeout_sec=0.5):
                    if time.monotonic() > deadline:
                        log.error(f"service {cli.srv_name} did not appear within {p['startup_timeout_s']:g} s: is that node running?")
                        return rc.EXIT_RUN_FAILED
            if self.wait_status(lambda s: True, max(1.0, deadline - time.monotonic())) is None:
                log.error("no episode status from sim_world")
                return rc.EXIT_RUN_FAILED
            log.info(f"stack is up after {time.monotonic() - t_start:.1f} s; running {p['episodes']} episode(s)")
            results = self.results
            t_run = self.t_run = time.monotonic()
            for k in range(p["episodes"]):
                self.call("policy_stop")
                self.call("stop")
                ok, msg = self.call("reset", timeout=60.0)
                if not ok:
                    log.error(f"reset failed: {msg}")
                    return rc.EXIT_RUN_FAILED
                st = self.wait_status(lambda s: s["state"] in ("waiting_start", "running") and s["step"] == 0, 30.0)
                if st is None:
                    log.error("sim_world did not report the new episode")
                    return rc.EXIT_RUN_FAILED
                episode = st["episode"]
                ok, msg = self.call("enable")
                if not ok:
                    log.error(f"robot enable failed: {msg}")
                    return rc.EXIT_RUN_FAILED
                with self.lock:
                    self.collect = True
                self.call("policy_start")
                t_ep = time.monotonic()
                st = self.wait_status(lambda s: s["episode"] == episode and s["state"] == "done", p["episode_timeout_s"])
                with self.lock:
                    self.collect = False
                self.call("policy_stop")
                self.call("stop")
                if st is None:
                    log.error(f"episode {episode} did not finish within {p['episode_timeout_s']:g} s")
                    return rc.EXIT_RUN_FAILED
                r = {"episode": episode, "result": st["result"], "steps": st["step"], "held_steps": st["held_steps"],
                     "wall_s": round(time.monotonic() - t_ep, 2)}
                results.append(r)
                log.info(f"episode {k + 1}/{p['episodes']}: {r['result']} after {r['steps']} steps "
                         f"({r['held_steps']} held, {r['wall_s']} s)")
            self.report()
            return rc.EXIT_OK

        def report(self, partial: str | None = None) -> None:
            """Print the summary (and write summary_json): of every episode, or -- ``partial`` says why
            the run stopped -- of the episodes that finished before it did."""
            p = self.p
            wall = time.monotonic() - self.t_run if self.t_run is not None else 0.0
            summary = summarize(list(self.results), list(self.latencies), (self.status or {}).get("resolution_mm"), wall)
            if partial:
                summary["partial"] = partial
            print(format_summary(summary), flush=True)
            if p["summary_json"]:
                os.makedirs(os.path.dirname(os.path.abspath(p["summary_json"])), exist_ok=True)
                with open(p["summary_json"], "w") as f:
                    json.dump(summary, f, indent=2)
                if rclpy.ok():
                    self.get_logger().info(f"summary written to {p['summary_json']}")

    node, failed = rc.start_node(EpisodeRunner, args)
    if node is None:
        return failed
    # One spin thread runs every callback itself (they are all short): a multi-threaded executor hands
    # each message to a pool thread, and that handoff (GIL) delayed the arrival stamps by ~5 ms.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=rc.spin_quietly, args=(executor,), daemon=True)
    spin.start()
    code = rc.EXIT_RUN_FAILED
    try:
        code = node.run()
    except KeyboardInterrupt:
        code = rc.EXIT_INTERRUPTED
    except Exception as exc:  # the run failed; say why instead of a traceback
        if rclpy.ok():
            node.get_logger().error(f"episode run failed: {exc!r}")
        code = rc.EXIT_RUN_FAILED if rclpy.ok() else rc.EXIT_INTERRUPTED
    finally:
        if code != rc.EXIT_OK and node.t_run is not None:
            # What ran before the failure or the Ctrl-C is still worth seeing.
            node.report("interrupted" if code == rc.EXIT_INTERRUPTED else "the run failed")
        # Stop the spin thread before tearing down: a thread still inside the C++ executor when the
        # interpreter exits aborts the process (std::terminate) and turns a good run into exit -6.
        executor.shutdown(timeout_sec=2.0)
        spin.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
