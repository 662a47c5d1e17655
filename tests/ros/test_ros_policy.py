"""The policy node: acts on fresh inputs, holds still on stale ones, refuses a bad bundle at start."""

import json
import math
import shutil
import time

import pytest

from conftest import node_cmd, wait_for

pytestmark = pytest.mark.timeout(90)


def _pose(stamp, xyz, pitch=0.0):
    from geometry_msgs.msg import PoseStamped

    m = PoseStamped()
    m.header.stamp, m.header.frame_id = stamp, "tray"
    m.pose.position.x, m.pose.position.y, m.pose.position.z = xyz
    m.pose.orientation.y, m.pose.orientation.w = math.sin(pitch / 2), math.cos(pitch / 2)
    return m


def _point(stamp, xyz):
    from geometry_msgs.msg import PointStamped

    m = PointStamped()
    m.header.stamp, m.header.frame_id = stamp, "tray"
    m.point.x, m.point.y, m.point.z = xyz
    return m



def _policy_io(ros):
    """The policy node's inputs as publishers, and a list that collects its bucket targets."""
    from geometry_msgs.msg import PointStamped, PoseStamped
    from std_msgs.msg import Bool

    targets = []
    ros.create_subscription(PoseStamped, "bucket_target", targets.append, 10)
    return (targets, ros.create_publisher(PointStamped, "rock_position", 10),
            ros.create_publisher(PoseStamped, "bucket_pose", 10), ros.create_publisher(Bool, "rock_in_bucket", 10))


def test_policy_acts_on_fresh_inputs_and_holds_on_stale(ros, procs, bundle_dir):
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import Bool

    # Plain wall time here: staleness is judged on the node's ROS clock, whichever it is.
    p = procs(node_cmd("excavation.nodes.policy_node", f"policy_path:={bundle_dir}", "autostart:=true",
                       "stale_timeout_s:=0.3", "sync_to_frames:=false", params_file=None))
    targets, pub_rock, pub_pose, pub_rib = _policy_io(ros)
    diags = []
    ros.create_subscription(DiagnosticArray, "/diagnostics",
                            lambda m: diags.extend(st for st in m.status if st.name == "policy"), 10)
    tip = (-0.12, 0.0, 0.10)

    def feed(rock_stamp=None):
        now = ros.get_clock().now().to_msg()
        pub_pose.publish(_pose(now, tip))
        pub_rib.publish(Bool(data=False))
        pub_rock.publish(_point(rock_stamp or now, (0.0, 0.0, -0.02)))

    deadline = time.monotonic() + 40
    while not targets and time.monotonic() < deadline and p.poll() is None:
        feed()
        time.sleep(0.05)
    assert targets, "policy published no target on fresh inputs"
    t = targets[-1]
    assert t.header.frame_id == "tray"
    # Target = current pose + a bounded displacement (the heuristic moves toward behind the rock).
    d = [t.pose.position.x - tip[0], t.pose.position.y - tip[1], t.pose.position.z - tip[2]]
    assert all(abs(v) <= 0.025 + 1e-6 for v in d) and any(abs(v) > 1e-4 for v in d)

    # Rock estimates stop coming (camera gone): bucket pose and rock_in_bucket stay fresh, the last
    # estimate is re-sent with its old stamp (1 s old: stale by construction, no waiting for it).
    old_ns = ros.get_clock().now().nanoseconds - 1_000_000_000
    old = Time(sec=old_ns // 10**9, nanosec=old_ns % 10**9)

    def feed_stale():
        now = ros.get_clock().now().to_msg()
        pub_pose.publish(_pose(now, tip))
        pub_rib.publish(Bool(data=False))
        pub_rock.publish(_point(old, (0.0, 0.0, -0.02)))

    def holds_on_stale_rock():
        """The policy's own count of held ticks, from diagnostics that say the rock data is stale."""
        for st in reversed(diags):
            kv = {k.key: k.value for k in st.values}
            if "rock position" in kv.get("hold_reason", ""):
                return int(kv["holds"])
        return -1

    # Wait (feeding) until the policy reports holding because of the rock data; from then on every
    # tick is a hold. n0 is taken then, and must not grow while it holds ten more ticks.
    assert wait_for(lambda: (feed_stale(), holds_on_stale_rock() >= 0)[1], 20.0), [s.message for s in diags[-3:]]
    n0, h0 = len(targets), holds_on_stale_rock()
    assert wait_for(lambda: (feed_stale(), holds_on_stale_rock() >= h0 + 10)[1], 20.0), (h0, holds_on_stale_rock())
    assert len(targets) == n0, f"policy kept commanding on stale rock data ({len(targets) - n0} targets)"
    # And it recovers when fresh data returns.
    assert wait_for(lambda: (feed(), len(targets) > n0)[1], 10.0)
    assert p.poll() is None, "policy node died"


def test_start_waits_for_a_frame_at_least_as_new_as_the_start(ros, procs, bundle_dir):
    """~/start is a control tick: an estimate of a frame from before the start (e.g. the scene before
    a reset) moves nothing; the first target answers the first frame at least as new as the start,
    as soon as its estimate arrives, and carries that frame's stamp."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    p = procs(node_cmd("excavation.nodes.policy_node", f"policy_path:={bundle_dir}", "autostart:=false",
                       "stale_timeout_s:=2.0", "sync_to_frames:=true", params_file=None))
    targets, pub_rock, pub_pose, pub_rib = _policy_io(ros)
    start = ros.create_client(Trigger, "/policy/start")
    assert start.wait_for_service(timeout_sec=40.0), "policy did not come up"
    tip = (-0.12, 0.0, 0.10)

    def feed(rock_stamp):
        pub_pose.publish(_pose(ros.get_clock().now().to_msg(), tip))
        pub_rib.publish(Bool(data=False))
        pub_rock.publish(_point(rock_stamp, (0.0, 0.0, -0.02)))

    old_ns = ros.get_clock().now().nanoseconds - 300_000_000  # fresh by the stale check, older than the start
    old = Time(sec=old_ns // 10**9, nanosec=old_ns % 10**9)
    for _ in range(10):  # the policy has a (pre-start) estimate before it starts
        feed(old)
        time.sleep(0.05)
    fut = start.call_async(Trigger.Request())
    assert wait_for(fut.done, 10.0) and fut.result().success
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        feed(old)
        time.sleep(0.05)
    assert not targets, "the policy acted on an estimate of a frame older than its start"
    fresh = ros.get_clock().now().to_msg()
    feed(fresh)
    assert wait_for(lambda: bool(targets), 5.0), "no target for the first frame newer than the start"
    stamp_ns = lambda t: t.sec * 10**9 + t.nanosec  # noqa: E731
    assert abs(stamp_ns(targets[0].header.stamp) - stamp_ns(fresh)) < 1000  # the policy keeps stamps to ~1 us
    assert p.poll() is None, "policy node died"


@pytest.mark.parametrize("breakage", ["missing", "bad_json", "wrong_dims", "tampered"])
def test_bad_bundle_refused_at_start(procs, bundle_dir, tmp_path, breakage):
    bad = tmp_path / "bad"
    if breakage != "missing":
        shutil.copytree(bundle_dir, bad)
    if breakage == "bad_json":
        (bad / "policy.json").write_text("{not json")
    elif breakage == "wrong_dims":
        meta = json.loads((bad / "policy.json").read_text())
        meta["obs_dim"] = 5
        (bad / "policy.json").write_text(json.dumps(meta))
    elif breakage == "tampered":
        with open(bad / "policy.pt", "ab") as f:
            f.write(b"garbage")
    p = procs(node_cmd("excavation.nodes.policy_node", f"policy_path:={bad}", "autostart:=true", params_file=None))
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 3, out
    assert "bad policy bundle" in out and "Traceback" not in out


def test_hold_is_in_diagnostics_with_its_reason(ros, procs, bundle_dir):
    """With frame sync on (the default), a tick with nothing fresh to act on is a hold: it is
    reported in diagnostics with its reason, not shown as "running"."""
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import Bool

    p = procs(node_cmd("excavation.nodes.policy_node", f"policy_path:={bundle_dir}", "autostart:=true",
                       "stale_timeout_s:=0.3", params_file=None))
    targets, pub_rock, pub_pose, pub_rib = _policy_io(ros)
    diags = []
    ros.create_subscription(DiagnosticArray, "/diagnostics",
                            lambda m: diags.extend(s for s in m.status if s.name == "policy"), 10)
    tip = (-0.12, 0.0, 0.10)

    def holding():
        now = ros.get_clock().now().to_msg()
        pub_pose.publish(_pose(now, tip))  # bucket and rock_in_bucket fresh, no rock ever
        pub_rib.publish(Bool(data=False))
        return any("holding still" in s.message and "rock position" in s.message
                   and {kv.key: kv.value for kv in s.values}.get("hold_reason") for s in diags)

    assert wait_for(holding, 30.0), [s.message for s in diags[-3:]]
    assert not targets
    assert p.poll() is None
