"""Frame-to-target latency: when each camera frame arrived, matched to the first target that names
its stamp. The episode runner reports it; the view plots it. Thread-safe."""

from __future__ import annotations

import threading
import time

_KEEP = 200  # frames remembered; beyond it the oldest half is dropped (a frame no target answered)


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class FrameLatency:
    def __init__(self):
        self._lock = threading.Lock()
        self._arrived: dict[int, float] = {}  # stamp ns -> monotonic time its CameraInfo arrived

    def frame(self, stamp) -> None:
        with self._lock:
            self._arrived[stamp_ns(stamp)] = time.monotonic()
            if len(self._arrived) > _KEEP:
                for k in sorted(self._arrived)[: _KEEP // 2]:
                    del self._arrived[k]

    def target(self, stamp, now: float | None = None) -> float | None:
        """Milliseconds from the frame named by ``stamp`` to ``now``; None for an unknown frame or a
        second target for the same frame (only the first counts)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            t0 = self._arrived.pop(stamp_ns(stamp), None)
        return None if t0 is None else (now - t0) * 1e3
