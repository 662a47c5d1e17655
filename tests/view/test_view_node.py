"""The view node in a live ROS graph: it takes the stack's topics and sim_world's scene topics and
writes them to its recording, flushed when it is stopped like launch_stack stops it (SIGINT)."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from shared_helpers import spinning_probe
from view_helpers import read_rrd, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def probe():
    with spinning_probe("view_probe") as node:
        yield node


def test_the_node_records_what_the_stack_publishes(tmp_path, probe):
    from geometry_msgs.msg import PointStamped, Pose, PoseArray, PoseStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
    from std_msgs.msg import String

    from excavation import ros_common as rc
    from excavation_contract import interfaces as I
    from excavation_simulation import topics as T

    out = tmp_path / "node.rrd"
    cmd = [sys.executable, "-m", "excavation_simulation.view_node", "--ros-args", "-p", f"record:={out}",
           "-p", "qos_reliability:=reliable"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        reliable = rc.make_qos("reliable", 10)
        pubs = {
            "info": probe.create_publisher(CameraInfo, I.REALSENSE_INFO, reliable),
            "depth": probe.create_publisher(Image, I.REALSENSE_IMAGE, reliable),
            "cand": probe.create_publisher(PoseArray, I.ROCK_CANDIDATES, reliable),
            "chosen": probe.create_publisher(PointStamped, I.ROCK_POSITION, reliable),
            "bucket": probe.create_publisher(PoseStamped, T.SIM_BUCKET_STATE, reliable),
            "target": probe.create_publisher(PoseStamped, I.BUCKET_TARGET, reliable),
            "rock": probe.create_publisher(PoseStamped, T.SIM_ROCK_POSE, reliable),
            "status": probe.create_publisher(String, T.SIM_EPISODE, reliable),
            "soil": probe.create_publisher(PointCloud2, T.SIM_SOIL_POINTS, reliable),
            "shapes": probe.create_publisher(String, T.SIM_SCENE_SHAPES,
                                             QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)),
        }
        assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()) or proc.poll() is not None, 60), \
            "the view node did not subscribe to every topic"
        assert proc.poll() is None, proc.stdout.read()
        stamp = rc.s_to_stamp(1.5)
        info = CameraInfo(width=64, height=48, k=[61.5, 0.0, 32.0, 0.0, 61.5, 24.0, 0.0, 0.0, 1.0])
        info.header.stamp = stamp
        img = Image(width=64, height=48, encoding="16UC1", step=128, data=np.full((48, 64), 600, np.uint16).tobytes())
        img.header.stamp = stamp
        cand = PoseArray(poses=[Pose()])
        cand.header.stamp = stamp
        chosen = PointStamped()
        chosen.header.stamp = stamp
        pts = np.random.default_rng(0).uniform(-0.05, 0.05, (200, 3)).astype(np.float32)
        cloud = PointCloud2(height=1, width=len(pts), point_step=12, row_step=12 * len(pts), is_dense=True,
                            fields=[PointField(name=n, offset=4 * k, datatype=PointField.FLOAT32, count=1) for k, n in enumerate("xyz")],
                            data=pts.tobytes())
        cloud.header.stamp = stamp
        shapes = {"rock_boxes": [[[0, 0, 0], [0.01, 0.01, 0.01]]], "bucket_boxes": [[[-0.02, 0, 0], [0.02, 0.03, 0.002]]],
                  "tray_size": [0.16, 0.16], "resolution_mm": 10.0}
        pubs["shapes"].publish(String(data=json.dumps(shapes)))
        pubs["info"].publish(info)
        pubs["depth"].publish(img)
        pubs["cand"].publish(cand)
        pubs["chosen"].publish(chosen)
        pubs["bucket"].publish(rc.pose_msg(stamp, I.TRAY_FRAME, [0.0, 0.0, 0.1], 0.2))
        pubs["target"].publish(rc.pose_msg(stamp, I.TRAY_FRAME, [0.0, 0.0, 0.09], 0.2))
        pubs["rock"].publish(rc.pose_msg(stamp, I.TRAY_FRAME, [0.0, 0.0, 0.04], 0.0))
        pubs["soil"].publish(cloud)
        pubs["status"].publish(String(data=json.dumps({"episode": 1, "state": "running", "step": 3})))
        pubs["status"].publish(String(data=json.dumps({"episode": 1, "state": "done", "step": 4, "result": "success",
                                                       "reward": 2.0})))

        def recorded():
            # The file sink writes as the node logs; readable once the last of these is in it.
            try:
                return {"/episode/success", "/world/soil", "/world/camera/depth"} <= set(read_rrd(out))
            except Exception:
                return False

        assert wait_for(recorded, 30, step=0.2), "the node did not record the published messages"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    found = read_rrd(out)
    for e in ("/world/camera/depth", "/world/camera", "/world/perception/candidates", "/world/perception/chosen",
              "/world/bucket", "/world/bucket_target", "/world/rock", "/world/soil", "/metrics/frame_to_target_ms",
              "/episode/success", "/episode/reward", "/episode/steps"):
        assert e in found, f"{e} not recorded; got {sorted(found)}"
    assert found["/world/camera/depth"]["sim_times"] == {1_500_000_000}
    assert proc.returncode == 0, proc.stdout.read()


def test_the_node_refuses_to_run_with_nothing_to_do():
    out = subprocess.run([sys.executable, "-m", "excavation_simulation.view_node"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "nothing to do" in out.stderr
