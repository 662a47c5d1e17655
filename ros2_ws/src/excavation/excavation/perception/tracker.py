"""A small single-target tracker that keeps the rock estimate steady.

- gating: a detection far from the track is not trusted at once (another blob, a glitch); only
  ``reacquire_frames`` consecutive out-of-gate detections that agree move the track (the rock moved);
- smoothing: in-gate detections are blended in with an exponential average, weighted by their
  confidence;
- holding: without a detection (occluded, in the bucket) the last position is held and reported with
  its age and a decaying confidence, and the frame's reason.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .config import TrackerConfig
from .rock_detector import Reason, RockEstimate

LOG = logging.getLogger("excavation.perception.tracker")


class RockTracker:
    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = (config or TrackerConfig()).validate()
        self.reset()

    def reset(self) -> None:
        self._pos: np.ndarray | None = None
        self._conf = 0.0
        self._last_seen: float | None = None
        self._last_stamp: float | None = None
        self._pending: list[np.ndarray] = []
        self._at_bucket = False  # the rock was last seen in or against the bucket

    time_jumps = 0  # how many times a time jump reset the track (diagnostics)

    @property
    def position(self) -> np.ndarray | None:
        return None if self._pos is None else self._pos.copy()

    def update(self, det: RockEstimate, stamp_s: float | None = None) -> RockEstimate:
        """Fold one frame's detection in; return the tracked estimate for that frame."""
        cfg = self.config
        t = det.stamp_s if stamp_s is None else float(stamp_s)
        if not math.isfinite(t):
            raise ValueError(f"RockTracker.update: stamp_s must be finite, got {t}")
        if self._last_stamp is not None and (t < self._last_stamp or t - self._last_stamp > cfg.time_jump_s):
            # One bad stamp must not poison every later frame: start over from this one.
            LOG.warning("frame stamps jumped from %.3f to %.3f s: rock track reset", self._last_stamp, t)
            self.reset()
            self.time_jumps += 1
        self._last_stamp = t
        fresh = det.detected and det.position is not None and det.confidence >= cfg.min_confidence
        reason = det.reason
        if fresh:
            self._at_bucket = bool(det.in_bucket or (det.chosen is not None and det.candidates
                                                      and det.candidates[det.chosen].touches_bucket))
        elif reason == Reason.NONE_ABOVE_GROUND and self._at_bucket and self._pos is not None:
            # Last seen in or against the bucket, now gone from its place: the bucket took it (a lifted
            # rock is hidden by the bucket for seconds) -- held like occlusion, not expired.
            reason = Reason.OCCLUDED_BY_BUCKET
        if fresh:
            p = np.asarray(det.position, dtype=float)
            if self._pos is None or det.in_bucket:
                # A rock seen in the bucket is where the bucket carried it: no gate to pass.
                self._accept(p, det.confidence, t, reset=True)
                return self._out(det, t, True, det.reason)
            if np.linalg.norm(p - self._pos) <= cfg.gate:
                self._pending.clear()
                self._accept(p, det.confidence, t)
                return self._out(det, t, True, det.reason)
            # Out of the gate: remember it; several agreeing ones in a row mean the rock moved.
            if self._pending and np.linalg.norm(p - self._pending[-1]) > cfg.reacquire_radius:
                self._pending.clear()
            self._pending.append(p)
            if len(self._pending) >= cfg.reacquire_frames:
                self._accept(np.mean(self._pending, axis=0), det.confidence, t, reset=True)
                self._pending.clear()
                return self._out(det, t, True, det.reason)
            reason = Reason.OUTSIDE_GATE
        else:
            self._pending.clear()
        return self._out(det, t, False, reason)

    def _accept(self, p: np.ndarray, conf: float, t: float, reset: bool = False) -> None:
        # Confidence-weighted: a doubtful detection (partly hidden rock) moves the track less.
        a = 1.0 if reset else self.config.smoothing * min(1.0, max(conf, 0.0))
        self._pos = p.copy() if reset or self._pos is None else (1 - a) * self._pos + a * p
        self._conf = conf if reset else (1 - a) * self._conf + a * conf
        self._last_seen = t

    def _out(self, det: RockEstimate, t: float, fresh: bool, reason: str) -> RockEstimate:
        cfg = self.config
        base = dict(ground_height=det.ground_height, num_points=det.num_points, num_candidates=det.num_candidates,
                    top_height=det.top_height, ground=det.ground, stamp_s=t, debug=det.debug,
                    candidates=det.candidates, chosen=det.chosen)
        if self._pos is None:
            return RockEstimate(None, 0.0, reason, **base)
        age = 0.0 if fresh else t - (self._last_seen if self._last_seen is not None else t)
        if not fresh and reason == Reason.NO_VALID_DEPTH:
            # A blind frame is not occlusion: say so, hold nothing (the track survives for when the
            # camera sees again, for max_blind_s).
            if age > cfg.max_blind_s:
                self.reset()
                self._last_stamp = t
            return RockEstimate(None, 0.0, reason, age_s=age, **base)
        limit = cfg.max_hold_occluded_s if reason == Reason.OCCLUDED_BY_BUCKET else cfg.max_hold_s
        if not fresh and limit is not None and age > limit:
            self.reset()
            self._last_stamp = t
            return RockEstimate(None, 0.0, Reason.TRACK_EXPIRED, **base)
        conf = self._conf * math.exp(-age / cfg.confidence_time_constant)
        return RockEstimate(self._pos.copy(), conf, reason, age_s=age, detected=fresh,
                            in_bucket=fresh and det.in_bucket, **base)
