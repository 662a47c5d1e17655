"""Fast DDS shared memory left by SIGKILLed nodes is cleaned; a live node's is never touched.

Real rclpy processes with Fast DDS's shared-memory transport; each prints its segment names once it
has created them, and the test waits on that line (no sleeps)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from excavation.dds_shm import SHM_DIR, clean_stale_segments

NODE = r"""
import os, sys, time
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("shm_probe")
pub = node.create_publisher(String, "shm_probe", 10)
for _ in range(20):
    pub.publish(String(data="x"))
    rclpy.spin_once(node, timeout_sec=0.01)
# This process's own files are those whose "_el" lock file it holds open (a directory diff would also
# catch the files of other ROS processes starting at the same moment, and the segments it maps include
# its peers').
mine = []
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue  # the descriptor of the listing itself, already closed
    if target.startswith(sys.argv[1] + "/") and target.endswith("_el"):
        mine.append(os.path.basename(target)[: -len("_el")])
mine.sort()
print(" ".join(mine), flush=True)
sys.stdin.read()  # live until the test closes stdin or kills it
"""

pytestmark = pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason=f"{SHM_DIR} is not available here")


def start_node():
    p = subprocess.Popen([sys.executable, "-c", NODE, SHM_DIR], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env={**os.environ, "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"})
    files = p.stdout.readline().split()  # blocks until the node has created its files
    segments = [f for f in files if f.startswith("fastrtps_") and not f.startswith("fastrtps_port") and not f.endswith("_el")]
    assert segments, f"the node created no Fast DDS segment: {files}"
    return p, segments


def test_a_killed_nodes_segment_is_removed_and_a_live_ones_is_kept():
    started = time.time() - 1.0
    live, live_segments = start_node()
    dead, dead_segments = start_node()
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        assert all(os.path.exists(os.path.join(SHM_DIR, s)) for s in dead_segments)  # SIGKILL leaves it
        # Both nodes had locked their files before printing them: no need to wait for them to age.
        removed, freed = clean_stale_segments(newer_than=started, min_age_s=0.0)
        assert removed >= 2 and freed > 0
        assert not any(os.path.exists(os.path.join(SHM_DIR, s)) for s in dead_segments)
        assert all(os.path.exists(os.path.join(SHM_DIR, s)) for s in live_segments)
        assert all(os.path.exists(os.path.join(SHM_DIR, s + "_el")) for s in live_segments)
    finally:
        live.stdin.close()
        live.wait(timeout=30)
