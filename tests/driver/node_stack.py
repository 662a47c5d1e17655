"""One emulator, one ur5e_driver node process and an in-process rclpy probe node (the node tests)."""

import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import rclpy

from conftest import PKG
from driver_helpers import wait
from excavation_contract import interfaces as I
from excavation.drivers.rtde_emulator.harness import EmulatorProcess

CALIBRATION = os.path.join(PKG, "config", "calibration_robot.yaml")
PUBLISH_RATE_HZ = 100.0


class Stack:
    """One emulator, one driver node process and a probe node (own rclpy context) talking to it."""

    def __init__(self, *params: str):
        # Never two Stacks at once in one ROS domain: a probe would call whichever driver's /enable
        # answers first and hear both drivers' poses (hence one test module per shared Stack).
        self.emu = self.driver = self.ctx = self.node = self._th = self._log = None
        self._stop = threading.Event()
        try:
            self._start(params)
        except BaseException:
            self.close()  # a failed start leaves no emulator or driver process behind
            raise

    def _start(self, params):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.emu = EmulatorProcess().start()
        # The driver's log goes to a file: a pipe nobody reads fills up and blocks the driver.
        self._log = tempfile.TemporaryFile(mode="w+")
        self.driver = subprocess.Popen(
            [sys.executable, "-m", "excavation.nodes.ur5e_driver", "--ros-args", "-p", f"robot_ip:={self.emu.host}",
             "-p", f"calibration_file:={CALIBRATION}", "-p", "reconnect_backoff_s:=0.2",
             "-p", f"publish_rate_hz:={PUBLISH_RATE_HZ}", *sum((["-p", p] for p in params), [])],
            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=self._log, text=True)
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = node = Node("driver_test_probe", context=self.ctx)
        JointState = I.msg_type(I.TOPICS[I.JOINT_STATES])
        self.PoseStamped = PoseStamped = I.msg_type(I.TOPICS[I.BUCKET_POSE])
        WrenchStamped = I.msg_type(I.TOPICS[I.TCP_WRENCH])
        Bool = I.msg_type(I.TOPICS[I.ROCK_IN_BUCKET])
        Diag = I.msg_type(I.TOPICS[I.DIAGNOSTICS])
        self.Trigger = Trigger = I.msg_type(I.SERVICES[I.ENABLE])
        self.rx = rx = {k: [] for k in ("js", "pose", "wrench", "rock", "diag")}
        for key, typ, topic, depth in (("js", JointState, I.JOINT_STATES, 50), ("pose", PoseStamped, I.BUCKET_POSE, 50),
                                       ("wrench", WrenchStamped, I.TCP_WRENCH, 50), ("rock", Bool, I.ROCK_IN_BUCKET, 50),
                                       ("diag", Diag, I.DIAGNOSTICS, 10)):
            node.create_subscription(typ, topic, lambda m, k=key: rx[k].append((time.monotonic(), m)), depth)
        self.pub = node.create_publisher(PoseStamped, I.BUCKET_TARGET, 10)
        self.clients = {n: node.create_client(Trigger, n) for n in (I.ENABLE, I.STOP, I.RECOVER)}
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(node)
        self._th = threading.Thread(target=self._spin, daemon=True)
        self._th.start()
        ok = wait(lambda: bool(rx["pose"]) or self.driver.poll() is not None, 60.0, step=0.05)
        assert self.driver.poll() is None, f"driver exited: {self.driver_log()}"
        assert ok, "driver never published bucket_pose"

    def _spin(self):
        while not self._stop.is_set():
            self.ex.spin_once(timeout_sec=0.05)

    def call(self, name, timeout=15.0):
        assert self.clients[name].wait_for_service(timeout_sec=timeout), f"service {name} missing"
        fut = self.clients[name].call_async(self.Trigger.Request())
        assert wait(fut.done, timeout), f"{name} timed out"
        return fut.result()

    def target(self, xyz, pitch=0.0, frame="tray", age_s=0.0):
        m = self.PoseStamped()
        m.header.frame_id = frame
        now_ns = self.node.get_clock().now().nanoseconds - int(age_s * 1e9)
        m.header.stamp.sec, m.header.stamp.nanosec = now_ns // 10**9, now_ns % 10**9
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in xyz)
        qx, qy, qz, qw = I.pitch_to_quaternion(pitch)
        m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = qx, qy, qz, qw
        self.pub.publish(m)

    def latest_tip(self):
        m = self.rx["pose"][-1][1]
        return np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])

    def diag(self, key):
        """The latest diagnostics value for ``key`` (None before the first diagnostics message)."""
        if not self.rx["diag"]:
            return None
        return {kv.key: kv.value for kv in self.rx["diag"][-1][1].status[0].values}.get(key)

    def poses_pass(self, n=50, timeout=30.0):
        """Wait until the driver published ``n`` more bucket poses (a window of its publish cycles)."""
        start = len(self.rx["pose"])
        return wait(lambda: len(self.rx["pose"]) >= start + n, timeout, step=0.02)

    def close(self):
        if self._th is not None:
            self._stop.set()
            self._th.join(2)
        if self.driver is not None:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait(5)
        if self.node is not None:
            self.node.destroy_node()
        if self.ctx is not None:
            rclpy.try_shutdown(context=self.ctx)
        if self.emu is not None:
            self.emu.stop()
        if self._log is not None:
            self._log.close()

    def driver_log(self) -> str:
        """The end of the driver's log (for assertion messages)."""
        self._log.seek(0)
        return self._log.read()[-3000:]
