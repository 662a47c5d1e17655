"""The simulated stack end to end (launch_stack, separate processes, real rclpy): two episodes run and
the episode runner reports them; every node's topics appear with the right types and (loose) rates;
the launcher leaves no process behind, also when interrupted."""

import json
import os
import signal
import sys
import threading

import pytest

from conftest import wait_for

# Small and coarse so the whole loop runs in seconds on a loaded CPU (first start compiles kernels).
FAST = ["--resolution", "70", "--no-randomization", "--camera-width", "320", "--camera-height", "240", "--quiet"]

EXPECTED_TYPES = {
    "/clock": "rosgraph_msgs/msg/Clock",
    "/joint_states": "sensor_msgs/msg/JointState",
    "/bucket_pose": "geometry_msgs/msg/PoseStamped",
    "/tcp_wrench": "geometry_msgs/msg/WrenchStamped",
    "/rock_in_bucket": "std_msgs/msg/Bool",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
    "/bucket_target": "geometry_msgs/msg/PoseStamped",
    "/rock_position": "geometry_msgs/msg/PointStamped",
    "/ground_height": "std_msgs/msg/Float64",
    "/perception/markers": "visualization_msgs/msg/MarkerArray",
    "/camera/camera/depth/image_rect_raw": "sensor_msgs/msg/Image",
    "/camera/camera/depth/camera_info": "sensor_msgs/msg/CameraInfo",
}


def _descendants(pid):
    """Every live process below pid (from /proc, no extra packages)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(200)
def test_stack_runs_two_episodes_with_expected_topics(ros, procs, bundle_dir, tmp_path):
    from geometry_msgs.msg import PointStamped, PoseStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState

    counts = {k: 0 for k in ("clock", "joint_states", "bucket_pose", "target", "rock", "image")}
    latest = {}
    image_stamps = []

    def counter(key):
        def cb(msg):
            counts[key] += 1
            latest[key] = msg
            if key == "image":
                image_stamps.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
        return cb

    ros.create_subscription(Clock, "/clock", counter("clock"), 10)
    ros.create_subscription(JointState, "joint_states", counter("joint_states"), 10)
    ros.create_subscription(PoseStamped, "bucket_pose", counter("bucket_pose"), 10)
    ros.create_subscription(PoseStamped, "bucket_target", counter("target"), 10)
    ros.create_subscription(PointStamped, "rock_position", counter("rock"), 10)
    ros.create_subscription(Image, "/camera/camera/depth/image_rect_raw", counter("image"),
                            QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
    summary = tmp_path / "summary.json"
    p = procs([sys.executable, "-m", "excavation_simulation.launcher", "--policy", bundle_dir, "--episodes", "2",
               "--max-episode-steps", "20", "--summary-json", str(summary), "--timeout", "170", *FAST])
    # Topic names and types while the stack runs.
    seen = {}

    def graph_ok():
        seen.update({n: t for n, t in ros.get_topic_names_and_types()})
        return all(n in seen for n in EXPECTED_TYPES) or p.poll() is not None

    assert wait_for(graph_ok, 150, step=0.5)
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 0, out[-3000:]
    for name, typ in EXPECTED_TYPES.items():
        assert seen.get(name) == [typ], (name, seen.get(name))

    s = json.loads(summary.read_text())
    assert s["episodes"] == 2 and len(s["per_episode"]) == 2
    for ep in s["per_episode"]:
        assert ep["result"] in ("success", "time_out", "failure")
        assert 1 <= ep["steps"] <= 20
    ep = {"steps": sum(e["steps"] for e in s["per_episode"])}
    assert "=== episode summary ===" in out and "success rate" in out
    assert s["latency_samples"] > 0 and s["latency_p95_ms"] is not None and s["latency_p95_ms"] > 0
    # Loose rates: one control step = one clock tick, one camera frame, one joint state and
    # (when the policy is not holding) one target; everything flowed during the episode.
    assert counts["clock"] >= ep["steps"]
    assert counts["image"] >= ep["steps"] // 2
    assert counts["joint_states"] >= ep["steps"] // 2 and counts["bucket_pose"] >= ep["steps"] // 2
    assert counts["rock"] >= ep["steps"] // 2 and counts["target"] >= ep["steps"] // 2
    assert latest["target"].header.frame_id == "tray" and latest["rock"].header.frame_id == "tray"
    assert latest["image"].encoding == "16UC1" and (latest["image"].width, latest["image"].height) == (320, 240)
    # Every frame has its own stamp, also across a reset (the policy tells scenes apart by stamps).
    assert all(b > a for a, b in zip(image_stamps, image_stamps[1:])), "depth frames with repeated stamps"


@pytest.mark.timeout(120)
def test_launcher_sigint_stops_every_process(procs, bundle_dir):
    p = procs([sys.executable, "-m", "excavation_simulation.launcher", "--policy", bundle_dir, "--episodes", "50", *FAST])
    # SIGINT as soon as the six node processes exist: they are then still importing / initialising,
    # the hardest moment to stop cleanly (a node's first seconds are its imports).
    assert wait_for(lambda: len(_descendants(p.pid)) >= 6 or p.poll() is not None, 60)
    kids = _descendants(p.pid)
    assert len(kids) >= 6, "the launcher did not start the six nodes"
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=60)
    assert p.returncode == 130
    assert wait_for(lambda: not any(_alive(k) for k in kids), 10), [k for k in kids if _alive(k)]


@pytest.mark.timeout(180)
def test_ctrl_c_after_an_episode_prints_and_writes_the_partial_summary(procs, bundle_dir, tmp_path):
    summary = tmp_path / "summary.json"
    p = procs([sys.executable, "-m", "excavation_simulation.launcher", "--policy", bundle_dir, "--episodes", "50",
               "--max-episode-steps", "5", "--summary-json", str(summary), *FAST])
    lines = []

    def read_until_first_episode():
        for line in p.stdout:  # the runner's own report of a finished episode
            lines.append(line)
            if "episode 1/50:" in line:
                return

    # Read on a thread so the wait has its own generous bound (a blocked read has none).
    reader = threading.Thread(target=read_until_first_episode, daemon=True)
    reader.start()
    reader.join(150)
    assert any("episode 1/50:" in ln for ln in lines), "".join(lines[-20:])
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 130
    assert "=== partial episode summary (interrupted) ===" in out, out[-2000:]
    s = json.loads(summary.read_text())
    assert s["partial"] == "interrupted" and 1 <= s["episodes"] < 50 and len(s["per_episode"]) == s["episodes"]


@pytest.mark.timeout(60)
def test_launcher_refuses_a_missing_policy_and_a_bad_config(procs, tmp_path):
    p = procs([sys.executable, "-m", "excavation_simulation.launcher", "--policy", str(tmp_path / "nope"), "--episodes", "1"])
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 3 and "does not exist" in out
    (tmp_path / "policy.pt").write_bytes(b"")
    p = procs([sys.executable, "-m", "excavation_simulation.launcher", "--policy", str(tmp_path / "policy.pt"), "--episodes", "1"])
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 3 and "is a file; expected the bundle folder" in out
    p = procs([sys.executable, "-m", "excavation_simulation.launcher", "--config", str(tmp_path / "none.yaml")])
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 2 and "does not exist" in out


@pytest.mark.timeout(150)
def test_frozen_camera_makes_the_stack_hold_still_and_recording_works(procs, bundle_dir, tmp_path):
    """Camera frames stop mid-episode: the policy stops commanding on old data, the world holds the
    bucket (held steps), the run still finishes and reports; the MCAP recording has the run."""
    summary, bag = tmp_path / "s.json", tmp_path / "bag"
    p = procs([sys.executable, "-m", "excavation_simulation.launcher", "--policy", bundle_dir, "--episodes", "1",
               "--max-episode-steps", "25", "--summary-json", str(summary), "--record", str(bag),
               "--param", "sim_camera:freeze_after_s=1.0", "--param", "sim_world:lockstep_timeout_s=0.2",
               "--timeout", "140", *FAST])
    out, _ = p.communicate(timeout=145)
    assert p.returncode == 0, out[-3000:]
    ep = json.loads(summary.read_text())["per_episode"][0]
    assert ep["steps"] == 25 and ep["result"] == "time_out"
    assert ep["held_steps"] >= 10, ep
    from rosbags.rosbag2 import Reader

    with Reader(bag) as r:
        topics = {c.topic for c in r.connections}
        assert {"/clock", "/bucket_target", "/bucket_pose", "/rock_position"} <= topics
        assert r.message_count > 50
