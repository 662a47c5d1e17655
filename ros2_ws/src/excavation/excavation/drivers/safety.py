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
import numbers
import reprlib
import threading
from dataclasses import dataclass, field

import numpy as np

from excavation_contract import frames, limits

OUT_OF_BOX_POLICIES = ("clamp", "refuse")


@dataclass
class SafetyConfig:
    # Tray frame [m] / [rad]; defaults: the contract's safety box and pitch range (excavation_contract.limits).
    box_min: tuple[float, float, float] = limits.SAFETY_BOX_MIN
    box_max: tuple[float, float, float] = limits.SAFETY_BOX_MAX
    pitch_min: float = limits.PITCH_LIMIT_RAD[0]
    pitch_max: float = limits.PITCH_LIMIT_RAD[1]
    max_step_m: float = 0.002  # per control-loop step (500 Hz -> 1 m/s cap on its own)
    max_step_rad: float = 0.005
    max_speed_m_s: float = 0.25
    max_speed_rad_s: float = 1.0
    max_accel_m_s2: float = 1.0
    max_accel_rad_s2: float = 4.0
    watchdog_timeout_s: float = 0.5
    out_of_box: str = "clamp"
    frame: str = frames.TRAY_FRAME

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


def _real_numbers(value, n: int) -> list[float] | None:
    """``value`` as ``n`` floats if it holds exactly ``n`` real numbers (list, tuple or array of any
    shape), else None. Strings, bools, complex and None are not numbers; an int too large for a float
    becomes inf (and is then refused as non-finite)."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        return None
    try:
        flat = np.asarray(value, dtype=object).reshape(-1)
    except (TypeError, ValueError):
        return None
    if flat.size != n:
        return None
    out = []
    for e in flat:
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, numbers.Real):
            return None
        try:
            out.append(float(e))
        except OverflowError:
            out.append(math.inf if e > 0 else -math.inf)
        except (TypeError, ValueError):
            return None
    return out


def check_target(cfg: SafetyConfig, xyz, pitch: float, frame: str) -> TargetCheck:
    """Validate one bucket target; never raises on bad input (bad input is refused)."""
    if not isinstance(frame, str) or frame != cfg.frame:
        return TargetCheck(False, None, reason=f"target frame {reprlib.repr(frame)} is not {cfg.frame!r}")
    position, angle = _real_numbers(xyz, 3), _real_numbers(pitch, 1)
    if position is None:
        return TargetCheck(False, None, reason=f"target position must be 3 numbers (x, y, z), got {reprlib.repr(xyz)}")
    if angle is None:
        return TargetCheck(False, None, reason=f"target pitch must be one number, got {reprlib.repr(pitch)}")
    v = np.array([*position, *angle])
    if not np.all(np.isfinite(v)):
        return TargetCheck(False, None, reason=f"target has non-finite values {v.tolist()}")
    lo = np.array([*cfg.box_min, cfg.pitch_min])
    hi = np.array([*cfg.box_max, cfg.pitch_max])
    outside = (v < lo) | (v > hi)
    if not np.any(outside):
        return TargetCheck(True, v)
    names = np.array(["x", "y", "z", "pitch"])[outside].tolist()
    if cfg.out_of_box == "refuse":
        return TargetCheck(False, None, reason=f"target outside the workspace box on {names}: {_rounded(v)}")
    clamped = np.clip(v, lo, hi)
    return TargetCheck(True, clamped, clamped=True,
                       reason=f"target clamped to the workspace box on {names}: {_rounded(v)} -> {_rounded(clamped)}")


def _rounded(v: np.ndarray) -> list[float]:
    return [round(x, 4) for x in v.tolist()]  # Python's round: 1e308 stays 1e308 (numpy's overflows to inf)


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
        self._box_lo = np.array([*cfg.box_min, cfg.pitch_min], dtype=float)
        self._box_hi = np.array([*cfg.box_max, cfg.pitch_max], dtype=float)

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
            p_now = self.setpoint[sl].tolist()
            box_lo = np.minimum(self._box_lo[sl], self.setpoint[sl])  # a posture outside the box:
            box_hi = np.maximum(self._box_hi[sl], self.setpoint[sl])  # no further out
            if not self._can_stop_inside(p_now, v_new, amax * self.dt, box_lo.tolist(), box_hi.tolist()):
                v_new = self._slow_to_stay_inside(p_now, v_now, v_new, amax * self.dt, box_lo, box_hi)
            move = v_new * self.dt
            if float(np.linalg.norm(move)) > dist:  # never step past the goal
                move = err.copy()
                v_new = move / self.dt
            out[sl] = self.setpoint[sl] + move
            vel[sl] = v_new
        self.setpoint = out
        self.velocity = vel
        return out.copy()

    # A new goal while moving turns the velocity, and the acceleration spent turning is not spent
    # braking: near a face of the workspace box the set point would overshoot it (by up to ~2 cm at
    # 0.25 m/s). So every velocity must leave a way to stop inside the box: braking at the limit
    # from the next set point (the limiter's own discrete braking) must end inside it.

    def _stop_distance(self, speed: float, adt: float) -> float:
        n = math.floor(speed / adt)
        return self.dt * (n * speed - adt * n * (n + 1) / 2.0)

    def _can_stop_inside(self, p, v, adt, box_lo, box_hi) -> bool:
        # Plain floats: this runs in the 500 Hz loop, where numpy's per-call overhead on 3-vectors shows.
        v = [float(x) for x in v]
        speed = math.sqrt(sum(x * x for x in v))
        reach = self.dt + (self._stop_distance(speed, adt) / speed if speed > 0.0 else 0.0)
        return all(lo - 1e-12 <= float(pi) + vi * reach <= hi + 1e-12 for pi, vi, lo, hi in zip(p, v, box_lo, box_hi))

    def _slow_to_stay_inside(self, p, v_now, v_new, adt, box_lo, box_hi) -> np.ndarray:
        """The velocity nearest ``v_new`` on the way from pure braking to it that can still stop inside.

        Braking keeps the stopping point where it was (inside), and the blend stays within the
        acceleration and speed limits since both ends do."""
        speed = float(np.linalg.norm(v_now))
        v_brake = v_now * max(0.0, 1.0 - adt / speed) if speed > 0.0 else np.zeros_like(v_now)
        box_lo, box_hi = box_lo.tolist(), box_hi.tolist()
        ok, bad = 0.0, 1.0
        for _ in range(12):  # the safe end of a 1/4096 bracket
            t = 0.5 * (ok + bad)
            if self._can_stop_inside(p, v_brake + t * (v_new - v_brake), adt, box_lo, box_hi):
                ok = t
            else:
                bad = t
        return v_brake + ok * (v_new - v_brake)


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
