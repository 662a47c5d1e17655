"""Shared plumbing of the excavation ROS nodes: typed, range-checked parameters; QoS from parameters;
stamps; config-file lookup; and a ``main`` wrapper that turns bad configuration into a clear message
and a non-zero exit instead of a traceback.

Everything here imports rclpy lazily so the module (and the launcher) import without ROS.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

PACKAGE = "excavation"

# Exit codes shared by the nodes and the launcher.
EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_BAD_POLICY = 3
EXIT_INTERRUPTED = 130

@dataclass(frozen=True)
class Param:
    """One node parameter: default, a check, and the text shown in its descriptor and errors."""

    default: Any
    description: str
    check: Callable[[Any], bool] | None = None
    expected: str = ""


def positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def in_range(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def one_of(*choices) -> Callable[[Any], bool]:
    return lambda v: v in choices


def declare_params(node, spec: dict[str, Param]) -> dict[str, Any]:
    """Declare every parameter with its descriptor, then check them all; ValueError lists every bad one."""
    from rcl_interfaces.msg import ParameterDescriptor

    values, errors = {}, []
    for name, p in spec.items():
        desc = p.description + (f" Valid: {p.expected}." if p.expected else "")
        try:
            v = node.declare_parameter(name, p.default, ParameterDescriptor(description=desc)).value
        except Exception as exc:  # wrong type from a params file or the command line
            errors.append(f"parameter {name}: {exc}")
            continue
        if p.check is not None:
            try:
                ok = bool(p.check(v))
            except Exception:
                ok = False
            if not ok:
                errors.append(f"parameter {name}={v!r} is invalid (expected {p.expected or desc})")
        values[name] = v
    if errors:
        raise ValueError(f"{node.get_name()}: " + "; ".join(errors))
    return values


def make_qos(reliability: str = "reliable", depth: int = 5):
    """QoS for sensor streams. Reliable is the default: best effort drops large images on Fast DDS."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    rel = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=rel)


def stamp_to_s(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def s_to_stamp(t: float):
    from builtin_interfaces.msg import Time

    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def now_s(node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


# A command stamped further ahead than this is refused: a clock that jumped is not "fresh".
FUTURE_STAMP_TOLERANCE_S = 0.05


def command_age_problem(node, stamp, max_age_s: float) -> str | None:
    """Why a stamped command must not be executed (stale or from the future), or None."""
    age = now_s(node) - stamp_to_s(stamp)
    if age > max_age_s:
        return f"stale target ({age:.2f} s old, limit {max_age_s:.2f} s)"
    if age < -FUTURE_STAMP_TOLERANCE_S:
        return f"target stamped {-age:.2f} s in the future"
    return None


def pose_msg(stamp, frame: str, xyz, pitch: float):
    from geometry_msgs.msg import PoseStamped

    from excavation_contract import interfaces as I

    m = PoseStamped()
    m.header.stamp = stamp
    m.header.frame_id = frame
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in xyz)
    qx, qy, qz, qw = I.pitch_to_quaternion(float(pitch))
    m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = qx, qy, qz, qw
    return m


def pose_from_msg(msg) -> tuple[list[float], float, float]:
    """(tip xyz, pitch, non-pitch rotation magnitude) of a PoseStamped."""
    from excavation_contract import interfaces as I

    o = msg.pose.orientation
    pitch, off = I.quaternion_to_pitch(o.x, o.y, o.z, o.w)
    p = msg.pose.position
    return [p.x, p.y, p.z], pitch, off


def config_dir(package: str = PACKAGE) -> str:
    """A ROS package's config folder: its source tree's (editable pip installs), else the installed
    share/<package>/config that ament_index knows."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin:
        src = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), "config")
        if os.path.isdir(src):
            return src
    try:
        from ament_index_python.packages import get_package_share_directory

        return os.path.join(get_package_share_directory(package), "config")
    except Exception:
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config")


def config_file(name: str, package: str = PACKAGE) -> str:
    return os.path.join(config_dir(package), name)


def resolve_bundle_path(path: str) -> str:
    """A policy bundle folder: as given when it exists (absolute, or relative to the working folder);
    else a relative path such as the config's ``policies/default`` is looked up where the package
    ships it -- the source tree's root (editable installs) or the installed share/excavation/. So the
    stack starts from any working folder. Returns the path as given when none exists (the loader then
    names it in its error)."""
    if not path or os.path.isabs(path) or os.path.isdir(path):
        return path
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = [os.path.normpath(os.path.join(here, "..", "..", ".."))]
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(get_package_share_directory(PACKAGE))
    except Exception:
        pass
    for root in roots:
        cand = os.path.join(root, path)
        if os.path.isdir(cand):
            return cand
    return path


def start_node(make_node: Callable[[], Any], args=None) -> tuple[Any, int]:
    """rclpy.init plus the node's construction: ``(node, 0)``, or ``(None, exit code)`` when the
    constructor refused its configuration (ValueError: message, exit 2) or exited (SystemExit).
    SIGTERM (from launchers) shuts rclpy down like SIGINT does."""
    import signal

    import rclpy

    rclpy.init(args=args)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    try:
        return make_node(), EXIT_OK
    except ValueError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return None, EXIT_BAD_CONFIG
    except SystemExit as exc:
        rclpy.try_shutdown()
        return None, int(exc.code or 0)
    except KeyboardInterrupt:  # Ctrl-C while the node builds (sim_world compiles kernels): no traceback
        print("[INFO] interrupted while starting", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return None, EXIT_INTERRUPTED


def spin_quietly(executor) -> None:
    """``executor.spin()`` for a background thread: a shutdown from outside (Ctrl-C, SIGTERM, the
    end of the run) ends it without a traceback."""
    from rclpy.executors import ExternalShutdownException

    try:
        executor.spin()
    except (ExternalShutdownException, KeyboardInterrupt):
        pass


def run_node(make_node: Callable[[], Any], args=None, *, threads: int = 1, on_shutdown: Callable[[Any], None] | None = None) -> int:
    """rclpy boilerplate: a ValueError from the constructor is a configuration error (message, exit 2);
    ``SystemExit`` from it passes its code through; Ctrl-C / SIGTERM end the spin cleanly."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

    node, failed = start_node(make_node, args)
    if node is None:
        return failed
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)
    code = EXIT_OK
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        code = getattr(node, "exit_code", None) or code
        if on_shutdown is not None:
            try:
                on_shutdown(node)
            except Exception as exc:
                print(f"[WARN] shutdown: {exc}", file=sys.stderr)
        try:
            node.destroy_node()
        except Exception:
            pass
        rclpy.try_shutdown()
    return code
