"""Property-based tests (hypothesis) over the driver's bucket-target boundary: whatever a target holds
(NaN, inf, huge, out of the workspace, wrong shape or type, another frame, any orientation or stamp),
the safety layer either refuses it with a reason naming the input or passes a finite target inside
the workspace box and pitch range -- never an exception, never a set point faster than the limits,
and a refused target never moves the arm. A valid target inside the box passes unchanged.

Covers the pure functions the driver node chains for every ``bucket_target`` message
(``ros_common.command_age_problem`` -> ``interfaces.quaternion_to_pitch`` -> ``safety.check_target``)
and the ``MotionLimiter`` that turns accepted targets into set points. sim_robot's own target check
lives inside its node class (``sim_robot.main``) and needs a running ROS node, so it is not covered
here (tests/ros/test_ros_sim_robot.py drives it end to end).
"""

import math
import os
from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from excavation import ros_common as rc
from excavation.drivers.safety import MotionLimiter, SafetyConfig, TargetCheck, check_target

try:
    from excavation_contract import interfaces as I
except ImportError:  # the topic/message contract lives in its own package (excavation_contract)
    from excavation_contract import interfaces as I
# Derandomized: the same examples every run, so CI is reproducible; raise HYPOTHESIS_EXAMPLES locally to hunt.
N = int(os.environ.get("HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(max_examples=N, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
LONG_WALKS = settings(SETTINGS, max_examples=max(10, N // 4))  # examples of up to 3000 limiter steps

REASON_WORDS = ("frame", "position", "pitch", "non-finite", "workspace")

# ---------------------------------------------------------------------------- strategies

real = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1.0, 1.0),  # mostly near or inside the box
    st.sampled_from([0.0, -0.0, 1e-320, 5e-324, 1e308, -1e308, math.inf, -math.inf, math.nan]),
    st.integers(-5, 5),
    st.integers(),  # any size, 10**400 included
    st.just(10 ** 400),
    st.floats(-1.0, 1.0).map(np.float32),
    st.integers(-3, 3).map(np.int64),
)
not_a_number = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.just("0.1"), st.just("nan"),
                         st.binary(max_size=4), st.complex_numbers(max_magnitude=2), st.just({}), st.just([]),
                         st.just(np.bool_(True)))
element = st.one_of(real, real, real, not_a_number)
xyz_values = st.one_of(
    st.lists(real, min_size=3, max_size=3),
    st.tuples(real, real, real),
    st.lists(element, min_size=0, max_size=5),
    hnp.arrays(np.float64, st.sampled_from([(3,), (1, 3), (3, 1), (2,), (4,), (0,), (), (3, 3)]),
               elements=st.floats(allow_nan=True, allow_infinity=True)),
    st.lists(st.lists(real, max_size=3), max_size=3),  # nested / ragged
    not_a_number,
    real,
)
pitch_values = st.one_of(real, real, not_a_number, st.lists(real, max_size=2),
                         hnp.arrays(np.float64, st.sampled_from([(1,), (2,), ()]), elements=st.floats(-1, 1)))
frames = st.one_of(st.just("tray"), st.just("tray"),
                   st.sampled_from(["base", "Tray", "tray ", " tray", "/tray", "", "world", "tray\x00"]),
                   st.text(max_size=8), st.none(), st.integers(), st.just(b"tray"), st.just(["tray"]),
                   st.just(np.array(["tray", "tray"])))
policies = st.sampled_from(["clamp", "refuse"])


@st.composite
def configs(draw):
    """Valid safety configurations in the driver node's parameter ranges (config/ur5e_driver.yaml)."""
    lo = np.array([draw(st.floats(-0.5, 0.4)) for _ in range(3)])
    hi = lo + np.array([draw(st.floats(0.01, 0.6)) for _ in range(3)])
    p_lo = draw(st.floats(-math.pi, math.pi - 0.05))
    p_hi = draw(st.floats(p_lo + 0.01, math.pi))
    cfg = SafetyConfig(box_min=tuple(lo.tolist()), box_max=tuple(hi.tolist()), pitch_min=p_lo, pitch_max=p_hi,
                       max_step_m=draw(st.floats(1e-4, 0.01)), max_step_rad=draw(st.floats(1e-4, 0.05)),
                       max_speed_m_s=draw(st.floats(1e-3, 1.0)), max_speed_rad_s=draw(st.floats(1e-3, 3.0)),
                       max_accel_m_s2=draw(st.floats(1e-2, 5.0)), max_accel_rad_s2=draw(st.floats(1e-2, 20.0)),
                       out_of_box=draw(policies))
    cfg.validate()
    return cfg


def is_real_number(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))


def as_floats(value, n: int):
    """The test's own reading of "n real numbers" (any list/tuple/array shape), or None."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    try:
        flat = list(np.asarray(value, dtype=object).reshape(-1))
    except ValueError:
        return None
    if len(flat) != n or not all(is_real_number(v) for v in flat):
        return None
    return [to_float(v) for v in flat]


def to_float(v) -> float:
    try:
        return float(v)
    except OverflowError:  # an int beyond the float range
        return math.inf if v > 0 else -math.inf


def well_formed(xyz, pitch, frame) -> bool:
    """True when the target is 3 finite real numbers + one finite real pitch in the tray frame."""
    if not (isinstance(frame, str) and frame == "tray"):
        return False
    pos, ang = as_floats(xyz, 3), as_floats(pitch, 1)
    return pos is not None and ang is not None and all(math.isfinite(v) for v in pos + ang)


def check_result(cfg: SafetyConfig, res, xyz, pitch, frame) -> None:
    lo, hi = np.array([*cfg.box_min, cfg.pitch_min]), np.array([*cfg.box_max, cfg.pitch_max])
    assert isinstance(res, TargetCheck)
    if res.accepted:
        assert well_formed(xyz, pitch, frame), f"accepted a malformed target {xyz!r}, {pitch!r}, {frame!r}"
        t = res.target
        assert isinstance(t, np.ndarray) and t.shape == (4,) and t.dtype == np.float64
        assert np.all(np.isfinite(t))
        assert np.all(t >= lo) and np.all(t <= hi), f"accepted target {t.tolist()} is outside {lo} .. {hi}"
        if res.clamped:
            assert cfg.out_of_box == "clamp" and "clamped" in res.reason
        else:
            want = np.array(as_floats(xyz, 3) + as_floats(pitch, 1))
            np.testing.assert_array_equal(t, want)  # passed unchanged
    else:
        assert res.target is None
        assert isinstance(res.reason, str) and res.reason
        assert any(w in res.reason for w in REASON_WORDS), res.reason
        if not (isinstance(frame, str) and frame == "tray"):
            assert "frame" in res.reason, res.reason
        elif well_formed(xyz, pitch, frame):
            # Only the box can refuse a well-formed target, and only with out_of_box = "refuse".
            assert cfg.out_of_box == "refuse" and "workspace" in res.reason, res.reason


# ---------------------------------------------------------------------------- check_target


@SETTINGS
@given(xyz=xyz_values, pitch=pitch_values, frame=frames, policy=policies)
def test_any_target_is_refused_with_a_reason_or_passed_inside_the_box(xyz, pitch, frame, policy):
    cfg = SafetyConfig(out_of_box=policy)
    check_result(cfg, check_target(cfg, xyz, pitch, frame), xyz, pitch, frame)


@SETTINGS
@given(cfg=configs(), xyz=st.lists(real, min_size=3, max_size=3), pitch=real, frame=frames)
def test_numeric_targets_under_any_valid_config(cfg, xyz, pitch, frame):
    check_result(cfg, check_target(cfg, xyz, pitch, frame), xyz, pitch, frame)


@SETTINGS
@given(cfg=configs(), data=st.data())
def test_a_valid_target_inside_the_box_passes_unchanged(cfg, data):
    lo, hi = np.array([*cfg.box_min, cfg.pitch_min]), np.array([*cfg.box_max, cfg.pitch_max])
    v = [data.draw(st.one_of(st.floats(float(a), float(b)), st.sampled_from([float(a), float(b)]))) for a, b in zip(lo, hi)]
    as_type = data.draw(st.sampled_from([list, tuple, np.array]))
    res = check_target(cfg, as_type(v[:3]), v[3], "tray")
    assert res.accepted and not res.clamped, res.reason
    np.testing.assert_array_equal(res.target, np.array([*np.asarray(as_type(v[:3]), dtype=float), v[3]]))


@SETTINGS
@given(cfg=configs(), xyz=st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3), pitch=st.floats(-100, 100))
def test_finite_out_of_box_targets_are_clamped_onto_the_box_or_refused_by_axis(cfg, xyz, pitch):
    lo, hi = np.array([*cfg.box_min, cfg.pitch_min]), np.array([*cfg.box_max, cfg.pitch_max])
    v = np.array([*xyz, pitch])
    outside = (v < lo) | (v > hi)
    res = check_target(cfg, xyz, pitch, "tray")
    if not outside.any():
        assert res.accepted and not res.clamped
    elif cfg.out_of_box == "clamp":
        assert res.accepted and res.clamped
        np.testing.assert_array_equal(res.target, np.clip(v, lo, hi))  # the nearest point of the box
        for name in np.array(["x", "y", "z", "pitch"])[outside]:
            assert repr(str(name)) in res.reason
    else:
        assert not res.accepted and "workspace" in res.reason
        for name in np.array(["x", "y", "z", "pitch"])[outside]:
            assert repr(str(name)) in res.reason


# ---------------------------------------------------------------------------- orientation and stamp


quat_part = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1, 1), st.just(0.0))


@SETTINGS
@given(q=st.tuples(quat_part, quat_part, quat_part, quat_part), xyz=st.lists(real, min_size=3, max_size=3),
       policy=policies)
def test_any_orientation_becomes_a_finite_pitch_or_is_refused(q, xyz, policy):
    pitch, off = I.quaternion_to_pitch(*q)
    assert isinstance(pitch, float) and isinstance(off, float)
    assert math.isnan(pitch) or -math.pi - 1e-9 <= pitch <= math.pi + 1e-9
    assert not math.isnan(off) and off >= 0.0
    if not math.isfinite(pitch):
        assert off == math.inf  # the driver's MAX_NON_PITCH_ROTATION check refuses it first
    cfg = SafetyConfig(out_of_box=policy)
    check_result(cfg, check_target(cfg, xyz, pitch, "tray"), xyz, pitch, "tray")


class FakeClock:
    def __init__(self, ns: int):
        self.ns = ns

    def now(self):
        return SimpleNamespace(nanoseconds=self.ns)


@SETTINGS
@given(now_ns=st.integers(0, 2 ** 62), sec=st.integers(-2 ** 31, 2 ** 31 - 1), nanosec=st.integers(0, 999_999_999),
       max_age=st.floats(0.01, 5.0))
def test_stale_and_future_stamps_are_refused_by_name(now_ns, sec, nanosec, max_age):
    node = SimpleNamespace(get_clock=lambda: FakeClock(now_ns))
    why = rc.command_age_problem(node, SimpleNamespace(sec=sec, nanosec=nanosec), max_age)
    age = now_ns * 1e-9 - (sec + nanosec * 1e-9)
    if age > max_age:
        assert why is not None and "stale" in why
    elif age < -rc.FUTURE_STAMP_TOLERANCE_S:
        assert why is not None and "future" in why
    else:
        assert why is None


@SETTINGS
@given(now_s=st.floats(0.0, 1e9), frac=st.floats(-0.04, 0.99), max_age=st.floats(0.05, 5.0))
def test_a_fresh_stamp_is_not_refused(now_s, frac, max_age):
    ns = int(now_s * 1e9)
    age_s = frac * max_age if frac >= 0 else frac  # up to 99 % of the age limit behind, or up to 40 ms ahead
    stamp_ns = ns - int(age_s * 1e9)
    node = SimpleNamespace(get_clock=lambda: FakeClock(ns))
    stamp = SimpleNamespace(sec=stamp_ns // 10 ** 9, nanosec=stamp_ns % 10 ** 9)
    assert rc.command_age_problem(node, stamp, max_age) is None


# ---------------------------------------------------------------------------- motion limiter


def inside(cfg, draw):
    lo, hi = np.array([*cfg.box_min, cfg.pitch_min]), np.array([*cfg.box_max, cfg.pitch_max])
    return np.array([draw(st.floats(float(a), float(b))) for a, b in zip(lo, hi)])


@SETTINGS
@given(cfg=configs(), dt=st.sampled_from([0.002, 0.008, 0.02, 0.1]), data=st.data(),
       targets=st.lists(st.tuples(xyz_values, pitch_values, frames, st.integers(1, 150)), min_size=1, max_size=6))
def test_set_points_never_exceed_the_limits_and_refused_targets_move_nothing(cfg, dt, data, targets):
    """The control loop's use of the safety layer: each message goes through check_target; an
    accepted one becomes the goal, a refused one keeps the previous goal (none at first: the arm
    holds still). Every step stays finite and within the step, speed and acceleration limits."""
    start = inside(cfg, data.draw)
    lo, hi = np.array([*cfg.box_min, cfg.pitch_min]), np.array([*cfg.box_max, cfg.pitch_max])
    lim = MotionLimiter(cfg, dt)
    lim.reset(start)
    goal = None
    prev, prev_v = start.copy(), np.zeros(4)
    lin = min(cfg.max_step_m, cfg.max_speed_m_s * dt)
    ang = min(cfg.max_step_rad, cfg.max_speed_rad_s * dt)
    for xyz, pitch, frame, steps in targets:
        res = check_target(cfg, xyz, pitch, frame)
        check_result(cfg, res, xyz, pitch, frame)
        if res.accepted:
            goal = res.target
        for _ in range(steps):
            if goal is None:  # nothing accepted yet: no set point is sent, the arm holds
                assert np.array_equal(lim.setpoint, start)
                continue
            sp = lim.step(goal)
            assert sp.shape == (4,) and np.all(np.isfinite(sp))
            assert np.all(sp >= lo - 1e-9) and np.all(sp <= hi + 1e-9), f"set point {sp.tolist()} left the box"
            v = (sp - prev) / dt
            assert np.linalg.norm(sp[:3] - prev[:3]) <= lin * (1 + 1e-9) + 1e-15
            assert abs(sp[3] - prev[3]) <= ang * (1 + 1e-9) + 1e-15
            assert np.linalg.norm(v[:3] - prev_v[:3]) <= cfg.max_accel_m_s2 * dt * (1 + 1e-6) + 1e-9
            assert abs(v[3] - prev_v[3]) <= cfg.max_accel_rad_s2 * dt * (1 + 1e-6) + 1e-9
            prev, prev_v = sp, v


@SETTINGS
@given(cfg=configs(), dt=st.sampled_from([0.002, 0.02]), data=st.data(),
       junk=st.lists(st.tuples(xyz_values, pitch_values, frames), min_size=1, max_size=10))
def test_an_arm_at_rest_on_its_goal_stays_put_whatever_is_refused(cfg, dt, data, junk):
    start = inside(cfg, data.draw)
    lim = MotionLimiter(cfg, dt)
    lim.reset(start)
    goal = start.copy()
    for xyz, pitch, frame in junk:
        res = check_target(cfg, xyz, pitch, frame)
        if res.accepted:
            continue  # only refused targets are of interest here
        for _ in range(5):
            assert np.array_equal(lim.step(goal), start)


@LONG_WALKS
@given(cfg=configs(), dt=st.sampled_from([0.002, 0.008, 0.02]), data=st.data(), turns=st.integers(0, 3))
def test_an_accepted_goal_is_reached_exactly(cfg, dt, data, turns):
    """Not over-restrained: after any earlier goals, a goal held long enough is reached, no overshoot left."""
    lim = MotionLimiter(cfg, dt)
    lim.reset(inside(cfg, data.draw))
    for _ in range(turns):  # interrupted moves toward other goals first
        other = inside(cfg, data.draw)
        for _ in range(data.draw(st.integers(1, 100))):
            lim.step(other)
    goal = inside(cfg, data.draw)
    lin = min(cfg.max_speed_m_s, cfg.max_step_m / dt)
    ang = min(cfg.max_speed_rad_s, cfg.max_step_rad / dt)
    t = (np.linalg.norm(goal[:3] - lim.setpoint[:3]) + 0.1) / lin + 2 * lin / cfg.max_accel_m_s2
    t = max(t, (abs(goal[3] - lim.setpoint[3]) + 0.1) / ang + 2 * ang / cfg.max_accel_rad_s2)
    n = int(t / dt) + 10
    if n > 3000:
        return  # very slow limits: too long a walk for a unit test
    for _ in range(n):
        sp = lim.step(goal)
    np.testing.assert_allclose(sp, goal, atol=1e-9)
