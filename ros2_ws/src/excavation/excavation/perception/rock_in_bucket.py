"""Rock-in-bucket from the UR5e's TCP force (RTDE ``actual_TCP_force``: Fx, Fy, Fz, Tx, Ty, Tz).

The rock adds its weight to the external force at the TCP. ``actual_TCP_force`` is expressed in the
robot base frame, so that weight is along base -z whatever the bucket's pitch. Pipeline per sample:
subtract the bias taken with the empty bucket, project on the gravity direction (the load in N),
median filter over a short window (acceleration and contact spikes last a few samples), a threshold
with hysteresis, and a debounce (the state flips only after several samples agree).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RockInBucketConfig:
    gravity_direction: tuple[float, float, float] = (0.0, 0.0, -1.0)
    """Unit direction of gravity in the frame the force is expressed in (UR base: -z). Used when
    ``mode`` is "gravity"."""
    mode: str = "gravity"
    """"gravity": load = (F - bias) . gravity_direction (insensitive to sideways digging forces);
    "norm": load = |F - bias| (when the force frame is unknown)."""
    on_threshold_n: float = 6.0
    """Filtered load (N) above which the rock counts as in the bucket (a 1 kg rock adds ~9.8 N)."""
    off_threshold_n: float = 3.0
    """Filtered load (N) below which it counts as out again; the gap is the hysteresis."""
    median_window: int = 5
    """Samples in the median filter (odd)."""
    debounce_samples: int = 3
    """Consecutive samples beyond a threshold needed to change the state."""
    bias_min_samples: int = 1

    def validate(self) -> "RockInBucketConfig":
        if self.off_threshold_n >= self.on_threshold_n:
            raise ValueError(
                f"RockInBucketConfig: off_threshold_n ({self.off_threshold_n}) must be below on_threshold_n ({self.on_threshold_n})"
            )
        if self.mode not in ("gravity", "norm"):
            raise ValueError(f"RockInBucketConfig.mode must be 'gravity' or 'norm', got {self.mode!r}")
        if self.median_window < 1 or self.debounce_samples < 1:
            raise ValueError("RockInBucketConfig: median_window and debounce_samples must be >= 1")
        g = np.asarray(self.gravity_direction, float)
        if g.shape != (3,) or not np.isfinite(g).all() or np.linalg.norm(g) < 1e-9:
            raise ValueError(f"RockInBucketConfig.gravity_direction must be a non-zero 3-vector, got {self.gravity_direction}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_rock_mass(cls, mass_kg: float, **kw) -> "RockInBucketConfig":
        """Thresholds at 60 % / 30 % of the rock's weight."""
        w = 9.81 * mass_kg
        return cls(on_threshold_n=0.6 * w, off_threshold_n=0.3 * w, **kw).validate()


def _wrench(w, name: str = "actual_TCP_force") -> np.ndarray:
    a = np.asarray(w, dtype=float)
    if a.shape != (6,):
        raise ValueError(f"{name}: expected 6 values (Fx, Fy, Fz, Tx, Ty, Tz), got shape {a.shape}")
    return a


class RockInBucketEstimator:
    """Call :meth:`tare` with the empty bucket, then :meth:`update` with every force sample."""

    def __init__(self, config: RockInBucketConfig | None = None) -> None:
        self.config = (config or RockInBucketConfig()).validate()
        g = np.asarray(self.config.gravity_direction, float)
        self._g = g / np.linalg.norm(g)
        self._bias: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the filter and the state (not the bias)."""
        self._window: deque[float] = deque(maxlen=self.config.median_window)
        self._state = False
        self._streak = 0
        self.load_n = 0.0
        self.rejected_samples = 0

    @property
    def bias(self) -> np.ndarray | None:
        return None if self._bias is None else self._bias.copy()

    @property
    def in_bucket(self) -> bool:
        return self._state

    def tare(self, samples) -> np.ndarray:
        """Bias from one wrench (6,) or several (N, 6) taken with the empty bucket held still (median)."""
        a = np.asarray(samples, dtype=float)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != 6:
            raise ValueError(f"tare: expected wrench samples of shape (6,) or (N, 6), got {np.shape(samples)}")
        a = a[np.all(np.isfinite(a), axis=1)]
        if len(a) < self.config.bias_min_samples:
            raise ValueError(f"tare: need at least {self.config.bias_min_samples} finite wrench samples, got {len(a)}")
        self._bias = np.median(a, axis=0)
        self.reset()
        return self._bias.copy()

    def load(self, wrench) -> float:
        """Unfiltered load (N) the rock would add, from one wrench."""
        if self._bias is None:
            raise RuntimeError("RockInBucketEstimator: no bias; call tare() with the empty bucket first")
        d = _wrench(wrench)[:3] - self._bias[:3]
        return float(d @ self._g) if self.config.mode == "gravity" else float(np.linalg.norm(d))

    def update(self, wrench) -> bool:
        """Fold in one sample; returns the debounced rock-in-bucket state.

        A sample with NaN/inf is skipped (state unchanged, counted in ``rejected_samples``).
        """
        w = _wrench(wrench)
        if not np.all(np.isfinite(w[:3])):
            self.rejected_samples += 1
            return self._state
        self._window.append(self.load(w))
        self.load_n = float(np.median(self._window))
        cfg = self.config
        wants_change = (self.load_n > cfg.on_threshold_n) if not self._state else (self.load_n < cfg.off_threshold_n)
        self._streak = self._streak + 1 if wants_change else 0
        if self._streak >= cfg.debounce_samples:
            self._state = not self._state
            self._streak = 0
        return self._state


class SimulatedRockInBucket:
    """The simulator's truth with the training's error rate: each call flips it with ``error_rate``.

    Matches the domain randomisation the policy was trained with (rock-in-bucket error rate 0.2).
    Seeded, so a run is reproducible.
    """

    def __init__(self, error_rate: float = 0.2, seed: int | None = 0) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"SimulatedRockInBucket: error_rate must be in [0, 1], got {error_rate}")
        self.error_rate = float(error_rate)
        self._rng = np.random.default_rng(seed)

    def update(self, truth: bool) -> bool:
        flip = self._rng.random() < self.error_rate
        return bool(truth) != bool(flip)


def simulated_tcp_force(
    rock_in_bucket: bool,
    rock_mass_kg: float = 1.0,
    bias=(0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    noise_n: float = 0.5,
    rng: np.random.Generator | None = None,
    gravity_direction=(0.0, 0.0, -1.0),
) -> np.ndarray:
    """A plausible ``actual_TCP_force`` sample for a simulated arm: bias + rock weight + noise."""
    rng = rng or np.random.default_rng()
    w = np.asarray(bias, dtype=float).copy()
    if rock_in_bucket:
        w[:3] += 9.81 * rock_mass_kg * np.asarray(gravity_direction, float)
    w[:3] += rng.normal(0.0, noise_n, 3)
    w[3:] += rng.normal(0.0, noise_n * 0.05, 3)
    return w
