import math

import numpy as np
import pytest

from excavation.drivers.safety import (
    DriverState,
    MotionLimiter,
    SafetyConfig,
    SafetyStateMachine,
    Watchdog,
    check_target,
)


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="box_min"):
        SafetyConfig(box_min=(0.3, -0.2, 0.0), box_max=(0.2, 0.2, 0.3)).validate()
    with pytest.raises(ValueError, match="out_of_box"):
        SafetyConfig(out_of_box="ignore").validate()
    with pytest.raises(ValueError, match="max_speed_m_s"):
        SafetyConfig(max_speed_m_s=-1).validate()
    SafetyConfig().validate()


def test_bad_targets_are_refused():
    cfg = SafetyConfig()
    assert not check_target(cfg, [0.0, float("nan"), 0.1], 0.0, "tray").accepted
    assert not check_target(cfg, [0.0, 0.0, 0.1], math.inf, "tray").accepted
    r = check_target(cfg, [0.0, 0.0, 0.1], 0.0, "base")
    assert not r.accepted and "frame" in r.reason
    assert not check_target(cfg, [0.0, 0.0], 0.0, "tray").accepted


def test_out_of_box_clamp_and_refuse():
    clamp = check_target(SafetyConfig(out_of_box="clamp"), [0.9, 0.0, -0.5], 2.0, "tray")
    assert clamp.accepted and clamp.clamped
    np.testing.assert_allclose(clamp.target, [0.25, 0.0, -0.06, 0.9])
    refuse = check_target(SafetyConfig(out_of_box="refuse"), [0.9, 0.0, 0.1], 0.0, "tray")
    assert not refuse.accepted and "x" in refuse.reason
    inside = check_target(SafetyConfig(out_of_box="refuse"), [0.1, 0.0, 0.1], 0.0, "tray")
    assert inside.accepted and not inside.clamped


def test_limiter_respects_step_speed_and_accel():
    cfg = SafetyConfig(max_step_m=0.002, max_speed_m_s=0.25, max_accel_m_s2=1.0)
    dt = 0.002
    lim = MotionLimiter(cfg, dt)
    lim.reset(np.zeros(4))
    goal = np.array([0.2, 0.0, 0.0, 0.5])
    prev, prev_v = np.zeros(4), np.zeros(3)
    for _ in range(3000):
        sp = lim.step(goal)
        step = np.linalg.norm(sp[:3] - prev[:3])
        v = (sp[:3] - prev[:3]) / dt
        assert step <= cfg.max_step_m + 1e-12
        assert np.linalg.norm(v) <= cfg.max_speed_m_s + 1e-9
        assert np.linalg.norm(v - prev_v) / dt <= cfg.max_accel_m_s2 + 1e-6
        assert abs(sp[3] - prev[3]) <= cfg.max_step_rad + 1e-12
        prev, prev_v = sp, v
    np.testing.assert_allclose(prev, goal, atol=1e-9)  # arrives, no overshoot left


def test_watchdog():
    w = Watchdog(0.5)
    assert w.expired(0.0)
    w.feed(10.0)
    assert not w.expired(10.4)
    assert w.expired(10.6)


def test_state_machine_transitions():
    sm = SafetyStateMachine()
    assert sm.state == DriverState.DISCONNECTED
    assert not sm.enable()[0]  # never enabled while disconnected
    sm.connected()
    assert sm.state == DriverState.DISABLED
    assert sm.enable()[0] and sm.enabled
    sm.fault("protective stop")
    assert sm.state == DriverState.FAULT and not sm.enable()[0]
    sm.recovered()
    assert sm.state == DriverState.DISABLED
    sm.enable()
    sm.disconnected("link lost")
    sm.connected()
    assert sm.state == DriverState.DISABLED  # reconnect never resumes motion by itself
