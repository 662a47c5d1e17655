"""policy: runs an exported policy bundle at its control period and publishes the bucket target.

- The bundle is loaded and validated before anything else; a bad one ends the node with a clear
  message and exit code 3 (nothing is ever published).
- Observation: ``excavation_contract.build_observation`` (the trainer's layout) from the bucket pose,
  the perceived rock position and rock_in_bucket.
- Timing: a timer on ROS time (``use_sim_time`` works) ticks at the bundle's control period. With
  ``sync_to_frames`` a tick waits for the rock estimate of a frame at least as new as the tick (it
  arrives a few ms after the frame), so each step uses the freshest frame, as in training. ``~/start``
  acts like a tick: at once when the latest estimate is from a frame at least as new as the start, else
  as soon as such an estimate arrives (never on a frame from before the start, e.g. of the scene
  before a reset). A target is computed as soon as the estimate it waits for arrives, not on a timer.
- Output: ``bucket_target`` (PoseStamped, tray) = current bucket pose + action, clipped to the
  contract's workspace and pitch limits. Its header stamp is the stamp of the depth frame that
  produced the rock estimate used (the source stamp), so the end-to-end latency from frame to target
  can be measured downstream; drivers do not use the stamp for anything else than a staleness check.
- Safety: when any input (rock position, bucket pose, rock_in_bucket) is older than
  ``stale_timeout_s`` (ROS time) or missing, or the action is not finite, nothing is published: the
  driver holds the arm still. Nothing is published before ``~/start`` or after ``~/stop``.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

import excavation_contract as contract
from excavation_contract import interfaces as I
from excavation import ros_common as rc
from excavation.ros_common import Param, in_range

from excavation_contract.bundle import BundleError, load_bundle

PARAMS = {
    "policy_path": Param("", "Policy bundle folder (policy.pt + policy.json). Required."),
    "stale_timeout_s": Param(0.5, "Inputs older than this (ROS time) make the policy hold still (s).", in_range(0.01, 10.0), "[0.01, 10]"),
    "autostart": Param(False, "Start acting without a ~/start call."),
    "sync_to_frames": Param(True, "Each tick waits for the rock estimate of a frame at least as new as the tick."),
    "rock_topic": Param(I.ROCK_POSITION, "Rock position input (PointStamped, tray)."),
    "bucket_pose_topic": Param(I.BUCKET_POSE, "Bucket pose input (PoseStamped, tray)."),
    "rock_in_bucket_topic": Param(I.ROCK_IN_BUCKET, "Rock-in-bucket input (std_msgs/Bool)."),
    "target_topic": Param(I.BUCKET_TARGET, "Output: bucket target (PoseStamped, tray)."),
    "marker_topic": Param(I.POLICY_MARKERS, "Output: bucket and target markers (MarkerArray)."),
    "publish_markers": Param(True, "Publish markers."),
}


def compute_target(tip, pitch, action) -> tuple[np.ndarray, float, list[str]]:
    """Current pose + displacement, clipped to the action bound and the contract's workspace/pitch;
    also what was clipped (empty when nothing was), for the log."""
    raw = np.asarray(action, dtype=float)
    a = np.clip(raw, -contract.ACTION_LIMIT, contract.ACTION_LIMIT)
    want = np.asarray(tip, float) + a[:3]
    xyz = np.clip(want, contract.WORKSPACE_MIN, contract.WORKSPACE_MAX)
    want_p = float(pitch) + a[3]
    p = float(np.clip(want_p, *contract.PITCH_LIMIT_RAD))
    clipped = []
    if not np.array_equal(a, raw):
        clipped.append(f"action {np.round(raw, 4).tolist()} to the bound +-{np.round(contract.ACTION_LIMIT, 4).tolist()}")
    if not np.array_equal(xyz, want) or p != want_p:
        clipped.append(f"target {np.round(want, 3).tolist()} pitch {want_p:.3f} to the workspace")
    return xyz, p, clipped


def main(args=None) -> int:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import PointStamped, PoseStamped
    from rclpy.node import Node
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger
    from visualization_msgs.msg import MarkerArray

    from excavation import markers as M

    class PolicyNode(Node):
        def __init__(self):
            super().__init__("policy")
            self.p = p = rc.declare_params(self, PARAMS)
            if not p["policy_path"]:
                raise ValueError("policy: parameter policy_path is empty; give a policy bundle folder")
            try:
                path = rc.resolve_bundle_path(p["policy_path"])
                if path != p["policy_path"]:
                    self.get_logger().info(f"policy_path {p['policy_path']!r} is not under the working folder: using {path}")
                self.bundle = load_bundle(path)
            except BundleError as exc:
                print(f"[ERROR] policy: refusing to start, bad policy bundle: {exc}", file=sys.stderr, flush=True)
                raise SystemExit(rc.EXIT_BAD_POLICY) from None
            except Exception as exc:
                print(f"[ERROR] policy: cannot load bundle {p['policy_path']!r}: {exc}", file=sys.stderr, flush=True)
                raise SystemExit(rc.EXIT_BAD_POLICY) from None
            if (self.bundle.obs_dim, self.bundle.act_dim) != (contract.OBS_DIM, contract.ACT_DIM):
                print(f"[ERROR] policy: bundle dims {self.bundle.obs_dim}/{self.bundle.act_dim} do not match the "
                      f"contract's {contract.OBS_DIM}/{contract.ACT_DIM}", file=sys.stderr, flush=True)
                raise SystemExit(rc.EXIT_BAD_POLICY)
            self.period = self.bundle.control_period_s
            self.running = bool(p["autostart"])
            self.rock = None  # (stamp_s, xyz)
            self.bucket = None  # (stamp_s, xyz, pitch)
            self.rib = None  # (arrival ROS time, bool)
            self.pending_tick = None
            self.last_acted_source = -1.0
            self.published = 0
            self.clipped = 0  # targets whose action or pose was clipped (logged, in diagnostics)
            self.held = 0
            self.hold_reason = "not started"
            self.pub_target = self.create_publisher(PoseStamped, p["target_topic"], 10)
            self.pub_markers = self.create_publisher(MarkerArray, p["marker_topic"], 10)
            self.pub_diag = self.create_publisher(DiagnosticArray, I.DIAGNOSTICS, 10)
            self.create_subscription(PointStamped, p["rock_topic"], self._on_rock, 10)
            self.create_subscription(PoseStamped, p["bucket_pose_topic"], self._on_bucket, 10)
            self.create_subscription(Bool, p["rock_in_bucket_topic"], self._on_rib, 10)
            self.create_service(Trigger, "~/start", self._on_start)
            self.create_service(Trigger, "~/stop", self._on_stop)
            self.create_timer(self.period, self._on_tick)
            self.create_timer(1.0, self._diagnostics)
            self.get_logger().info(f"policy {p['policy_path']} loaded (period {self.period:g} s); "
                                   f"{'running' if self.running else 'waiting for ~/start'}")

        # ------------------------------------------------------------ inputs
        def _on_rock(self, msg):
            xyz = np.array([msg.point.x, msg.point.y, msg.point.z], dtype=float)
            if msg.header.frame_id != I.TRAY_FRAME or not np.all(np.isfinite(xyz)):
                self.get_logger().error("rock position ignored: not a finite tray-frame point", throttle_duration_sec=2.0)
                return
            self.rock = (rc.stamp_to_s(msg.header.stamp), xyz)
            if self.pending_tick is not None and self.rock[0] >= self.pending_tick - 1e-6:
                self.pending_tick = None
                self._act()

        def _on_bucket(self, msg):
            xyz, pitch, off = rc.pose_from_msg(msg)
            if msg.header.frame_id != I.TRAY_FRAME or not (all(math.isfinite(v) for v in xyz) and math.isfinite(pitch)):
                self.get_logger().error("bucket pose ignored: not a finite tray-frame pose", throttle_duration_sec=2.0)
                return
            self.bucket = (rc.stamp_to_s(msg.header.stamp), np.asarray(xyz, float), float(pitch))

        def _on_rib(self, msg):
            self.rib = (rc.now_s(self), bool(msg.data))

        # ------------------------------------------------------------ services
        def _on_start(self, request, response):
            self.running = True
            self.last_acted_source = -1.0
            self.hold_reason = ""  # "stopped" no longer applies; a new hold is reported by the next tick
            response.success, response.message = True, "policy started"
            self.get_logger().info("started")
            # Do not wait a whole period for the first step, but do not act on an estimate of a frame
            # older than the start either: the start is a tick.
            self.pending_tick = None
            self._on_tick()
            return response

        def _on_stop(self, request, response):
            self.running = False
            self.pending_tick = None
            self.hold_reason = "stopped"
            response.success, response.message = True, "policy stopped"
            self.get_logger().info("stopped")
            return response

        # ------------------------------------------------------------ control
        def _on_tick(self):
            if not self.running:
                return
            now = rc.now_s(self)
            if self.p["sync_to_frames"] and (self.rock is None or self.rock[0] < now - 1e-6):
                # The estimate of this tick's frame is on its way; act when it arrives. If what we
                # have is already stale, that is a hold, and it is logged and shown in diagnostics.
                self.pending_tick = now
                why = self._stale(now)
                if why:
                    self._hold(why)
                return
            self._act()

        def _stale(self, now: float) -> str:
            t = self.p["stale_timeout_s"]
            if self.rock is None:
                return "no rock position yet"
            if now - self.rock[0] > t:
                return f"rock position is {now - self.rock[0]:.2f} s old"
            if self.bucket is None:
                return "no bucket pose yet"
            if now - self.bucket[0] > t:
                return f"bucket pose is {now - self.bucket[0]:.2f} s old"
            if self.rib is None:
                return "no rock_in_bucket yet"
            if now - self.rib[0] > t:
                return f"rock_in_bucket is {now - self.rib[0]:.2f} s old"
            return ""

        def _hold(self, why: str):
            self.held += 1
            self.hold_reason = why
            self.get_logger().warning(f"holding still: {why}", throttle_duration_sec=2.0)

        def _act(self):
            if not self.running:
                return
            now = rc.now_s(self)
            why = self._stale(now)
            if why:
                return self._hold(why)
            if self.rock[0] <= self.last_acted_source and self.p["sync_to_frames"]:
                return  # already answered this frame; one target per frame
            _, tip, pitch = self.bucket
            obs = contract.build_observation(tip, pitch, self.rock[1], self.rib[1])
            try:
                action = np.asarray(self.bundle(obs), dtype=float).reshape(-1)
            except Exception as exc:
                return self._hold(f"policy inference failed: {exc}")
            if action.shape != (contract.ACT_DIM,) or not np.all(np.isfinite(action)):
                return self._hold(f"policy returned a bad action {action.tolist()}")
            xyz, p, clipped = compute_target(tip, pitch, action)
            if clipped:
                self.clipped += 1
                self.get_logger().warning(f"clipped {'; '.join(clipped)} ({self.clipped} clipped so far)",
                                          throttle_duration_sec=2.0)
            stamp = rc.s_to_stamp(self.rock[0])
            self.pub_target.publish(rc.pose_msg(stamp, I.TRAY_FRAME, xyz, p))
            self.last_acted_source = self.rock[0]
            self.published += 1
            self.hold_reason = ""
            if self.p["publish_markers"]:
                self.pub_markers.publish(M.marker_array([M.bucket_marker(stamp, tip, pitch), M.target_marker(stamp, xyz, p)]))

        def _diagnostics(self):
            st = DiagnosticStatus()
            st.name = "policy"
            st.hardware_id = str(self.p["policy_path"])
            if not self.running:
                st.level, st.message = DiagnosticStatus.OK, "stopped"
            elif self.hold_reason:
                st.level, st.message = DiagnosticStatus.WARN, f"holding still: {self.hold_reason}"
            else:
                st.level, st.message = DiagnosticStatus.OK, "running"
            values = {"running": self.running, "targets_published": self.published, "targets_clipped": self.clipped,
                      "holds": self.held,
                      "hold_reason": self.hold_reason, "bundle": json.dumps(self.bundle.meta.get("training", {}).get("final_resolution_mm", ""))}
            st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
            arr = DiagnosticArray()
            arr.header.stamp = self.get_clock().now().to_msg()
            arr.status = [st]
            self.pub_diag.publish(arr)

    return rc.run_node(PolicyNode, args)


if __name__ == "__main__":
    sys.exit(main())
