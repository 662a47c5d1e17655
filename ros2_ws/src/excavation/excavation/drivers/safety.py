"""Driver safety logic, free of any robot or ROS dependency so it can be unit-tested.

* ``SafetyConfig``: workspace box (tray frame), pitch range, per-step / speed / acceleration limits,
  watchdog timeout and what to do with targets outside the box.
* ``check_target``: validates one bucket target (finite, frame, box) -> clamped target or refusal.
* ``MotionLimiter``: turns the latest accepted target into the next set point of the control loop,
  bounded per step, in speed and in acceleration (so a far target is approached, never jumped to).
* ``Watchdog``: targets older than the timeout stop the arm.
* ``SafetyStateMachine``: DISABLED / ENABLED / FAULT / DISCONNECTED and the legal transitions.

Out-of-box policy: with ``out_of_box = "clamp"`` (default) a target outside the box is clamped to
the box face and the clamping is logged; with ``"refuse"`` it is dropped (the arm keeps the previous
target) and logged. Non-finite targets and targets in another frame are always refused.
"""

from __future__ import annotations

import enum
import math
import threading
from dataclasses import dataclass, field

import numpy as np

OUT_OF_BOX_POLICIES = ("clamp", "refuse")


@dataclass
class SafetyConfig:
    box_min: tuple[float, float, float] = (-0.25, -0.25, -0.06)  # tray frame [m]
    box_max: tuple[float, float, float] = (0.25, 0.25, 0.35)
    pitch_min: float = -0.8  # [rad]
    pitch_max: float = 0.9
    max_step_m: float = 0.002  # per control-loop step (500 Hz -> 1 m/s cap on its own)
    max_step_rad: float = 0.005
    max_speed_m_s: float = 0.25
    max_speed_rad_s: float = 1.0
    max_accel_m_s2: float = 1.0
    max_accel_rad_s2: float = 4.0
    watchdog_timeout_s: float = 0.5
    out_of_box: str = "clamp"
    frame: str = "tray"

    def validate(self) -> None:
        """Raise ValueError with every problem found (checked once, at start)."""
        errors = []
        lo, hi = np.asarray(self.box_min, float), np.asarray(self.box_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            errors.append("workspace box_min/box_max must be 3 finite numbers each")
        elif np.any(lo >= hi):
            errors.append(f"workspace box_min {lo.tolist()} must be below box_max {hi.tolist()} on every axis")
        if not (math.isfinite(self.pitch_min) and math.isfinite(self.pitch_max) and self.pitch_min < self.pitch_max):
            errors.append(f"pitch range [{self.pitch_min}, {self.pitch_max}] is empty or not finite")
        for name in ("max_step_m", "max_step_rad", "max_speed_m_s", "max_speed_rad_s", "max_accel_m_s2",
                     "max_accel_rad_s2", "watchdog_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                errors.append(f"{name} must be a positive number, got {v!r}")
        if self.max_speed_m_s > 1.0:
            errors.append(f"max_speed_m_s {self.max_speed_m_s} exceeds 1.0 m/s (digging never needs it)")
        if self.watchdog_timeout_s > 5.0:
            errors.append(f"watchdog_timeout_s {self.watchdog_timeout_s} exceeds 5 s")
        if self.out_of_box not in OUT_OF_BOX_POLICIES:
            errors.append(f"out_of_box must be one of {OUT_OF_BOX_POLICIES}, got {self.out_of_box!r}")
        if errors:
            raise ValueError("invalid safety configuration: " + "; ".join(errors))


@dataclass(frozen=True)
class TargetCheck:
    accepted: bool
    target: np.ndarray | None  # [x, y, z, pitch] after clamping, None if refused
    clamped: bool = False
    reason: str = ""


def check_target(cfg: SafetyConfig, xyz, pitch: float, frame: str) -> TargetCheck:
    """Validate one bucket target; never raises on bad input (bad input is refused)."""
    if frame != cfg.frame:
        return TargetCheck(False, None, reason=f"target frame {frame!r} is not {cfg.frame!r}")
    try:
        v = np.array([*np.asarray(xyz, dtype=float).reshape(3), float(pitch)])
    except (TypeError, ValueError):
        return TargetCheck(False, None, reason="target is not 3 numbers + pitch")
    if not np.all(np.isfinite(v)):
        return TargetCheck(False, None, reason=f"target has non-finite values {v.tolist()}")
    lo = np.array([*cfg.box_min, cfg.pitch_min])
    hi = np.array([*cfg.box_max, cfg.pitch_max])
    outside = (v < lo) | (v > hi)
    if not np.any(outside):
        return TargetCheck(True, v)
    names = np.array(["x", "y", "z", "pitch"])[outside].tolist()
    if cfg.out_of_box == "refuse":
        return TargetCheck(False, None, reason=f"target outside the workspace box on {names}: {v.round(4).tolist()}")
    clamped = np.clip(v, lo, hi)
    return TargetCheck(True, clamped, clamped=True,
                       reason=f"target clamped to the workspace box on {names}: {v.round(4).tolist()} -> "
                              f"{clamped.round(4).tolist()}")


class MotionLimiter:
    """Set-point generator: moves ``current`` toward ``goal`` within step, speed and accel limits.

    Position (xyz, one vector norm) and pitch are limited separately. The velocity is planned so the
    set point can always stop at the goal within the acceleration limit (v <= sqrt(2 a d)), so it
    neither overshoots nor jumps.
    """

    def __init__(self, cfg: SafetyConfig, dt: float):
        self.cfg = cfg
        self.dt = float(dt)
        self.setpoint: np.ndarray | None = None
        self.velocity = np.zeros(4)

    def reset(self, measured: np.ndarray) -> None:
        """Start from the measured posture at rest (on enable, after any stop)."""
        self.setpoint = np.asarray(measured, dtype=float).copy()
        self.velocity = np.zeros(4)

    def step(self, goal: np.ndarray) -> np.ndarray:
        if self.setpoint is None:
            raise RuntimeError("MotionLimiter.step before reset")
        c = self.cfg
        out = self.setpoint.copy()
        vel = self.velocity.copy()
        for sl, vmax, amax, smax in ((slice(0, 3), c.max_speed_m_s, c.max_accel_m_s2, c.max_step_m),
                                     (slice(3, 4), c.max_speed_rad_s, c.max_accel_rad_s2, c.max_step_rad)):
            err = np.asarray(goal, dtype=float)[sl] - self.setpoint[sl]
            dist = float(np.linalg.norm(err))
            v_now = vel[sl]
            if dist < 1e-12:
                desired = np.zeros_like(err)
            else:
                # Discrete braking curve: the largest speed from which steps shrinking by
                # amax*dt each still stop exactly at the goal (continuous sqrt(2 a d) overshoots).
                adt = amax * self.dt
                v_brake = adt * (math.sqrt(0.25 + 2.0 * dist / (adt * self.dt)) - 0.5)
                speed = min(vmax, smax / self.dt, v_brake, dist / self.dt)
                desired = err / dist * speed
            dv = desired - v_now
            dv_norm = float(np.linalg.norm(dv))
            if dv_norm > amax * self.dt:
                dv *= amax * self.dt / dv_norm
            v_new = v_now + dv
            move = v_new * self.dt
            if float(np.linalg.norm(move)) > dist:  # never step past the goal
                move = err.copy()
                v_new = move / self.dt
            out[sl] = self.setpoint[sl] + move
            vel[sl] = v_new
        self.setpoint = out
        self.velocity = vel
        return out.copy()


class Watchdog:
    """Tracks the age of the latest target (monotonic clock passed in, for testability)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = float(timeout_s)
        self._last: float | None = None

    def feed(self, now: float) -> None:
        self._last = now

    def clear(self) -> None:
        self._last = None

    def expired(self, now: float) -> bool:
        return self._last is None or (now - self._last) > self.timeout_s

    def age(self, now: float) -> float:
        return math.inf if self._last is None else now - self._last


class DriverState(enum.Enum):
    DISABLED = "DISABLED"  # connected, holding; needs `enable`
    ENABLED = "ENABLED"  # may stream motion toward fresh targets
    FAULT = "FAULT"  # protective/emergency stop or script failure; needs `recover`, then `enable`
    DISCONNECTED = "DISCONNECTED"  # no controller link; reconnects, then DISABLED (never ENABLED)


@dataclass
class SafetyStateMachine:
    """The driver's state and its legal transitions; every change is recorded with a reason."""

    state: DriverState = DriverState.DISCONNECTED
    reason: str = "not connected yet"
    history: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _set(self, state: DriverState, reason: str) -> None:
        self.history.append((self.state, state, reason))
        del self.history[:-50]
        self.state, self.reason = state, reason

    def connected(self) -> None:
        with self._lock:
            if self.state == DriverState.DISCONNECTED:
                self._set(DriverState.DISABLED, "connected; waiting for enable")

    def disconnected(self, reason: str) -> None:
        with self._lock:
            self._set(DriverState.DISCONNECTED, reason)

    def fault(self, reason: str) -> None:
        with self._lock:
            if self.state != DriverState.DISCONNECTED:
                self._set(DriverState.FAULT, reason)

    def enable(self) -> tuple[bool, str]:
        with self._lock:
            if self.state == DriverState.ENABLED:
                return True, "already enabled"
            if self.state != DriverState.DISABLED:
                return False, f"cannot enable in state {self.state.value}: {self.reason}"
            self._set(DriverState.ENABLED, "enabled by request")
            return True, "enabled"

    def disable(self, reason: str) -> None:
        with self._lock:
            if self.state == DriverState.ENABLED:
                self._set(DriverState.DISABLED, reason)

    def recovered(self) -> None:
        with self._lock:
            if self.state == DriverState.FAULT:
                self._set(DriverState.DISABLED, "recovered; waiting for enable")

    @property
    def enabled(self) -> bool:
        return self.state == DriverState.ENABLED
