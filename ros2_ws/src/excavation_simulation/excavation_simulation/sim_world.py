"""sim_world: one Newton excavation world, the source of simulated time.

Design (see also sim_robot.py, sim_camera.py):

- This node owns the physics and ``/clock``. Every tick advances simulated time by exactly one control
  period (0.1 s), so every other node runs on ``use_sim_time`` and a fine resolution that is slower
  than real time still closes the loop correctly.
- Lockstep: during an episode, each tick waits (up to ``lockstep_timeout_s`` of wall time) for
  sim_robot's set point computed from the latest depth frame (``sim/bucket_command``, whose stamp is
  the frame's stamp), then steps the physics with it. No fresh command in time = the bucket holds
  still for that step, which is also what happens whenever the policy or the robot holds.
- After each step it publishes the realised bucket pose (``sim/bucket_state``: sim_robot reports it
  as the measured pose, so the arm never "passes through" the tray floor), ground truth for
  evaluation, the episode status, and renders the depth camera in-process (the camera must see this
  process's particles; shipping the scene to another process would cost more than the render).
  The frames go out on ``sim/camera/...``; ``sim_camera`` republishes them under realsense-ros names.
- Between episodes (before the first reset, after one ended) the clock keeps ticking at real time
  and the camera renders every ``idle_render_every`` ticks, so perception and the policy stay live.
- A reset advances the clock by one control period before it publishes the new scene, so the first
  frame of an episode never shares its stamp with the last frame of the previous one (a starting
  policy waits for a frame at least as new as its start). While an episode waits for its first
  command, every tick renders a frame, so that frame is never more than one tick away.

Episode status (``sim/episode_status``, std_msgs/String, JSON): ``episode``, ``state``
("idle" | "waiting_start" | "running" | "done"), ``step``, ``sim_time``, ``success``, ``result``
("success" | "time_out" | "failure" | ""), ``rock_in_bucket``, ``held_steps`` (steps without a fresh
command), ``resolution_mm``, ``reward`` (the episode's summed reward so far).

For the view (``publish_scene_every`` > 0, off by default): every that many ticks the soil particles
(``sim/soil_points``), and at each reset the rock's and the bucket's boxes (``sim/scene_shapes``,
latched). Off, the control loop pays nothing for them.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time

import numpy as np

import excavation_contract as contract
from excavation import ros_common as rc
from excavation_simulation import graph
from excavation_simulation import topics as T
from excavation.ros_common import Param, in_range, one_of, positive

PARAMS = {
    "resolution_mm": Param(50.0, "Soil particle diameter and rock voxel edge (mm).", in_range(5.0, 100.0), "[5, 100]"),
    "seed": Param(0, "Seed of the scene, the episode randomisation and the camera noise.", lambda v: isinstance(v, int) and v >= 0, "integer >= 0"),
    "randomization": Param(True, "Domain randomisation of each episode (training's Table II ranges); false = nominal scene."),
    "max_episode_steps": Param(128, "Control steps before an episode times out.", lambda v: isinstance(v, int) and 1 <= v <= 10000, "integer in [1, 10000]"),
    "lockstep": Param(True, "Wait for sim_robot's command for the latest frame before each physics step (deterministic, works slower than real time). False: free-run at real_time_factor."),
    "lockstep_timeout_s": Param(0.5, "Wall time a tick waits for a command before the bucket holds still for that step (s).", in_range(0.01, 30.0), "[0.01, 30]"),
    "start_timeout_s": Param(10.0, "Wall time after a reset to wait for the first command; then the episode starts anyway (s).", in_range(0.1, 600.0), "[0.1, 600]"),
    "real_time_factor": Param(1.0, "Pace of idle ticks and of free-running (lockstep false) episodes; 1 = real time.", in_range(0.01, 100.0), "[0.01, 100]"),
    "publish_camera": Param(True, "Render the depth camera in this process and publish it."),
    "camera_noise": Param(True, "RealSense-like depth noise and dropouts on rendered frames."),
    "camera_width": Param(640, "Depth image width (px); intrinsics are scaled from the calibration's.", lambda v: isinstance(v, int) and 16 <= v <= 4096, "integer in [16, 4096]"),
    "camera_height": Param(480, "Depth image height (px).", lambda v: isinstance(v, int) and 16 <= v <= 4096, "integer in [16, 4096]"),
    "calibration_file": Param("", "Tray calibration YAML giving the camera pose and intrinsics; empty = the package's calibration_sim.yaml."),
    "camera_frame_id": Param("camera_depth_optical_frame", "frame_id of the published depth frames."),
    "image_topic": Param(T.SIM_RAW_IMAGE, "Depth image topic (sensor_msgs/Image, 16UC1 mm)."),
    "info_topic": Param(T.SIM_RAW_INFO, "CameraInfo topic."),
    "qos_reliability": Param("reliable", "Reliability of the camera publishers.", one_of("reliable", "best_effort"), "reliable | best_effort"),
    "idle_render_every": Param(3, "Between episodes, render one frame every this many ticks.", lambda v: isinstance(v, int) and v >= 1, "integer >= 1"),
    "publish_scene_every": Param(0, "For the view: publish the soil particles every this many ticks and the rock and bucket boxes at each reset; 0 = never.", lambda v: isinstance(v, int) and v >= 0, "integer >= 0"),
    "auto_start_episode": Param(False, "Reset into a first episode at start-up (without an episode runner)."),
}


class SimWorld:
    """Physics + camera, no ROS (the node wraps it; tests can drive it directly)."""

    def __init__(self, p: dict):
        import torch

        from excavation.perception import load_calibration
        from excavation_sim.config import ExcavationEnvConfig
        from excavation_sim.excavation_env import ExcavationEnv

        self.torch = torch
        cfg = ExcavationEnvConfig(num_envs=1, delta_mm=float(p["resolution_mm"]), seed=int(p["seed"]),
                                  auto_reset=False, max_episode_steps=int(p["max_episode_steps"]))
        cfg.randomization.enabled = bool(p["randomization"])
        self.env = ExcavationEnv(cfg)
        self.camera = None
        if p["publish_camera"]:
            from excavation_sim.camera import CameraConfig, DepthCamera

            cal = load_calibration(p["calibration_file"] or rc.config_file("calibration_sim.yaml", graph.PACKAGE))
            w, h = int(p["camera_width"]), int(p["camera_height"])
            intr = cal.intrinsics
            if intr is None:
                raise ValueError("calibration file has no camera intrinsics; sim_world needs them to render")
            sx, sy = w / intr.width, h / intr.height
            cam_cfg = CameraConfig(width=w, height=h, fx=intr.fx * sx, fy=intr.fy * sy, cx=intr.cx * sx, cy=intr.cy * sy,
                                   T_tray_camera=np.asarray(cal.T_tray_camera, dtype=float).tolist())
            self.camera = DepthCamera(self.env, cam_cfg, seed=int(p["seed"]))
        self.noise = bool(p["camera_noise"])
        self.step_count = 0
        self.episode_reward = 0.0
        self.last_info: dict = {}

    def reset(self) -> None:
        self.env.reset_envs(self.torch.tensor([0]))
        self.step_count = 0
        self.episode_reward = 0.0
        self.last_info = {}

    def step(self, target_xyz, target_pitch) -> dict:
        """Move the bucket to the commanded set point over one control period (None = hold)."""
        a = np.zeros(4, dtype=np.float32)
        if target_xyz is not None:
            a[:3] = np.asarray(target_xyz, dtype=np.float32) - self.env.tip[0].cpu().numpy()
            a[3] = float(target_pitch) - float(self.env.pitch[0])
        a = np.clip(a, -contract.ACTION_LIMIT, contract.ACTION_LIMIT)
        res = self.env.step(self.torch.as_tensor(a[None, :]))
        self.step_count += 1
        self.episode_reward += float(res.reward[0])
        info = {k: bool(v[0]) for k, v in res.info.items() if v.dtype == self.torch.bool}
        info["done"] = bool(res.done[0])
        self.last_info = info
        return info

    def bucket(self) -> tuple[np.ndarray, float]:
        return self.env.tip[0].cpu().numpy().astype(float), float(self.env.pitch[0])

    def rock(self) -> tuple[np.ndarray, np.ndarray]:
        pos, quat = self.env.rock_pose()
        return pos[0].cpu().numpy().astype(float), quat[0].cpu().numpy().astype(float)

    def rock_in_bucket(self) -> bool:
        return bool(self.env.rock_in_bucket_truth()[0])

    def soil(self) -> np.ndarray:
        return self.env.soil_particles(0).astype(np.float32)

    def shapes(self) -> dict:
        """Boxes (centre, half extents) of the rock in its body frame and of the bucket in its frame."""
        from excavation_sim.scene import bucket_boxes

        rock = self.env.scene.worlds[0].rock
        return {"rock_boxes": [[list(map(float, c)), list(map(float, h))] for c, h in zip(rock.centers, rock.half_extents)],
                "bucket_boxes": [[list(map(float, c)), list(map(float, h))] for c, h in bucket_boxes(self.env.bucket_geom)],
                "tray_size": [float(self.env.cfg.scene.tray_size)] * 2, "resolution_mm": float(self.env.delta_mm)}

    def render(self):
        return self.camera.render(0, noise=self.noise) if self.camera is not None else None


def main(args=None) -> int:
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
    from std_msgs.msg import Bool, String
    from std_srvs.srv import Trigger

    class SimWorldNode(Node):
        def __init__(self):
            # The clock source must run on its own (wall) time.
            super().__init__("sim_world")
            self.p = p = rc.declare_params(self, PARAMS)
            if self.get_parameter("use_sim_time").value:
                raise ValueError("sim_world: use_sim_time must be false: this node is the /clock source")
            self.get_logger().info(f"building the {p['resolution_mm']:g} mm world (first start compiles kernels)...")
            try:
                self.sim = SimWorld(p)
            except (ValueError, OSError) as exc:
                raise ValueError(f"sim_world: cannot build the world: {exc}") from None
            if self.sim.camera is not None:
                self.get_logger().info("rendering a first frame...")
                self.sim.render()
            self.lock = threading.Lock()
            self.cmd_cv = threading.Condition()
            self.cmd = None  # (seq, stamp_s, xyz, pitch)
            self.cmd_seq = 0
            self.used_seq = 0
            self.t = 0.0
            self.episode = 0
            self.state = "idle"
            self.result = ""
            self.held = 0
            self.last_frame_stamp = -1.0
            self.running = True
            qos_cam = rc.make_qos(p["qos_reliability"], 2)
            self.pub_clock = self.create_publisher(Clock, "/clock", 10)
            self.pub_state = self.create_publisher(PoseStamped, T.SIM_BUCKET_STATE, 10)
            self.pub_rock = self.create_publisher(PoseStamped, T.SIM_ROCK_POSE, 10)
            self.pub_rib = self.create_publisher(Bool, T.SIM_ROCK_IN_BUCKET, 10)
            self.pub_success = self.create_publisher(Bool, T.SIM_SUCCESS, 10)
            self.pub_status = self.create_publisher(String, T.SIM_EPISODE, 10)
            self.pub_img = self.create_publisher(Image, p["image_topic"], qos_cam)
            self.pub_info = self.create_publisher(CameraInfo, p["info_topic"], qos_cam)
            self.ticks = 0
            if p["publish_scene_every"]:
                from rclpy.qos import DurabilityPolicy, QoSProfile

                self.pub_soil = self.create_publisher(PointCloud2, T.SIM_SOIL_POINTS, 2)
                self.pub_shapes = self.create_publisher(
                    String, T.SIM_SCENE_SHAPES, QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
                self.pub_shapes.publish(String(data=json.dumps(self.sim.shapes())))
            self.create_subscription(PoseStamped, T.SIM_BUCKET_COMMAND, self._on_command, 10,
                                     callback_group=MutuallyExclusiveCallbackGroup())
            self.create_service(Trigger, T.SIM_RESET, self._on_reset, callback_group=MutuallyExclusiveCallbackGroup())
            if p["auto_start_episode"]:
                self._reset()
            self.thread = threading.Thread(target=self._loop, name="sim_loop", daemon=True)
            self.thread.start()
            self.get_logger().info(f"sim_world ready: {p['resolution_mm']:g} mm, lockstep={p['lockstep']}, "
                                   f"randomization={p['randomization']}")

        # ---------------------------------------------------------------- inputs
        def _on_command(self, msg):
            xyz, pitch, off = rc.pose_from_msg(msg)
            if not (all(math.isfinite(v) for v in xyz) and math.isfinite(pitch)) or off > 0.05 or msg.header.frame_id != contract.TRAY_FRAME:
                self.get_logger().error("bucket command ignored: not a finite tray-frame pitch pose", throttle_duration_sec=2.0)
                return
            with self.cmd_cv:
                self.cmd_seq += 1
                self.cmd = (self.cmd_seq, rc.stamp_to_s(msg.header.stamp), xyz, pitch)
                self.cmd_cv.notify_all()

        def _reset(self):
            with self.lock:
                self.sim.reset()
                self.episode += 1
                self.state = "waiting_start"
                self.result = ""
                self.held = 0
                self.reset_wall = time.monotonic()
                with self.cmd_cv:
                    self.used_seq = self.cmd_seq  # commands from the last episode are void
                # A fresh stamp for the new scene: its frames must not pass for the old scene's.
                self.t = round(self.t + contract.CONTROL_PERIOD_S, 9)
                self._publish_clock()
                if self.p["publish_scene_every"]:
                    self.pub_shapes.publish(String(data=json.dumps(self.sim.shapes())))
                self._publish_state(render=True)

        def _on_reset(self, request, response):
            try:
                self._reset()
                response.success, response.message = True, f"episode {self.episode} reset"
            except Exception as exc:  # a failed reset must not kill the clock
                self.get_logger().error(f"reset failed: {exc}")
                response.success, response.message = False, f"reset failed: {exc}"
            return response

        # ---------------------------------------------------------------- loop
        def _fresh_command(self):
            c = self.cmd
            if c is None or c[0] <= self.used_seq or c[1] < self.last_frame_stamp - 1e-6:
                return None
            return c

        def _wait_command(self, timeout: float):
            deadline = time.monotonic() + timeout
            with self.cmd_cv:
                while self.running:
                    c = self._fresh_command()
                    left = deadline - time.monotonic()
                    if c is not None or left <= 0:
                        return c
                    self.cmd_cv.wait(left)
            return None

        def _loop(self):
            dt = contract.CONTROL_PERIOD_S
            p = self.p
            idle_ticks = 0
            self._publish_clock()
            while self.running:
                try:
                    period = dt / p["real_time_factor"]
                    if self.state == "running" and p["lockstep"]:
                        cmd = self._wait_command(p["lockstep_timeout_s"])
                    elif self.state == "waiting_start":
                        # A first command ends the wait early so the episode starts at once.
                        cmd = self._wait_command(period)
                    else:
                        time.sleep(period)
                        with self.cmd_cv:
                            cmd = self._fresh_command()
                            if self.state != "running" and self.cmd is not None:
                                self.used_seq = self.cmd[0]  # no episode: commands move nothing
                                cmd = None
                    if not self.running:
                        break
                    with self.lock:
                        if self.state == "waiting_start" and (cmd is not None or time.monotonic() - self.reset_wall > p["start_timeout_s"]):
                            self.state = "running"
                        render = False
                        if self.state == "running":
                            if cmd is not None:
                                self.used_seq = cmd[0]
                                info = self.sim.step(cmd[2], cmd[3])
                            else:
                                self.held += 1
                                info = self.sim.step(None, None)
                            if info["done"]:
                                self.state = "done"
                                self.result = "success" if info.get("episode_success") else (
                                    "failure" if info.get("failure") else "time_out")
                            render = True
                        else:
                            idle_ticks += 1
                            # Waiting for an episode's first command: the policy waits for a frame
                            # at least as new as its start, so render every tick.
                            render = self.state == "waiting_start" or idle_ticks % p["idle_render_every"] == 0
                        self.t = round(self.t + dt, 9)
                        self._publish_clock()
                        self._publish_state(render=render)
                except Exception as exc:  # keep the clock alive and say why the world stopped
                    if not self.running or not self.context.ok():
                        break  # shutting down: publishers are gone
                    self.get_logger().error(f"simulation step failed: {exc}; the bucket holds still")
                    with self.lock:
                        if self.state == "running":
                            self.state, self.result = "done", "failure"
                    time.sleep(0.1)

        # ---------------------------------------------------------------- outputs
        def _publish_clock(self):
            self.pub_clock.publish(Clock(clock=rc.s_to_stamp(self.t)))

        def _publish_state(self, render: bool):
            stamp = rc.s_to_stamp(self.t)
            tip, pitch = self.sim.bucket()
            self.pub_state.publish(rc.pose_msg(stamp, contract.TRAY_FRAME, tip, pitch))
            pos, quat = self.sim.rock()
            rock = PoseStamped()
            rock.header.stamp, rock.header.frame_id = stamp, contract.TRAY_FRAME
            rock.pose.position.x, rock.pose.position.y, rock.pose.position.z = (float(v) for v in pos)
            rock.pose.orientation.x, rock.pose.orientation.y, rock.pose.orientation.z, rock.pose.orientation.w = (float(v) for v in quat)
            self.pub_rock.publish(rock)
            rib = self.sim.rock_in_bucket()
            self.pub_rib.publish(Bool(data=rib))
            success = bool(self.sim.last_info.get("success", False))
            self.pub_success.publish(Bool(data=success))
            status = {"episode": self.episode, "state": self.state, "step": self.sim.step_count, "sim_time": self.t,
                      "success": success, "result": self.result, "rock_in_bucket": rib, "held_steps": self.held,
                      "resolution_mm": float(self.p["resolution_mm"]), "reward": round(self.sim.episode_reward, 6)}
            self.pub_status.publish(String(data=json.dumps(status)))
            every = self.p["publish_scene_every"]
            if every:
                self.ticks += 1
                if render and (self.ticks % every == 0 or self.state != "running"):
                    self._publish_soil(stamp)
            if render and self.sim.camera is not None:
                self._publish_frame(stamp)

        def _publish_soil(self, stamp):
            pts = self.sim.soil()
            msg = PointCloud2()
            msg.header.stamp, msg.header.frame_id = stamp, contract.TRAY_FRAME
            msg.height, msg.width = 1, len(pts)
            msg.fields = [PointField(name=n, offset=4 * k, datatype=PointField.FLOAT32, count=1) for k, n in enumerate("xyz")]
            msg.is_bigendian, msg.point_step, msg.row_step, msg.is_dense = False, 12, 12 * len(pts), True
            msg.data = pts.tobytes()
            self.pub_soil.publish(msg)

        def _publish_frame(self, stamp):
            frame = self.sim.render()
            img16 = frame.to_16uc1()
            info = CameraInfo()
            info.header.stamp, info.header.frame_id = stamp, self.p["camera_frame_id"]
            info.height, info.width = img16.shape
            info.distortion_model = "plumb_bob"
            info.d = [0.0] * 5
            K = np.asarray(frame.K, dtype=float)
            info.k = K.flatten().tolist()
            info.r = np.eye(3).flatten().tolist()
            P = np.zeros((3, 4))
            P[:3, :3] = K
            info.p = P.flatten().tolist()
            img = Image()
            img.header = info.header
            img.height, img.width = img16.shape
            img.encoding = "16UC1"
            img.is_bigendian = 0
            img.step = img16.shape[1] * 2
            img.data = img16.tobytes()
            # CameraInfo first: a consumer that pairs them keeps the latest info for the next image.
            self.pub_info.publish(info)
            self.pub_img.publish(img)
            self.last_frame_stamp = self.t

    def shutdown(node):
        node.running = False
        with node.cmd_cv:
            node.cmd_cv.notify_all()
        node.thread.join(timeout=5.0)

    return rc.run_node(SimWorldNode, args, threads=2, on_shutdown=shutdown)


if __name__ == "__main__":
    sys.exit(main())
