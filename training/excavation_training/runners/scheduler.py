"""Progressive resolution schedule: when to move from one resolution to the next."""

from __future__ import annotations

import collections
import math

from ..config import PRPDConfig


class ResolutionScheduler:
    """Stages = ``prpd.resolutions_mm``, coarse to fine. A stage ends when the success of the last
    ``prpd.advance_window_episodes`` rollout episodes at this resolution reaches ``prpd.success_threshold``
    (reason ``"threshold"``) or after ``prpd.max_iterations_per_stage``
    iterations (``"cap"``). At the last stage, reaching the threshold ends training only if
    ``prpd.finish_on_threshold``.

    The runner calls ``step(success_rate)`` once per iteration and, when it returns a reason,
    ``advance()`` (then ``PRPD.start_stage()`` on the new resolution's env)."""

    def __init__(self, cfg: PRPDConfig) -> None:
        if len(cfg.resolutions_mm) == 0:
            raise ValueError("prpd.resolutions_mm must not be empty")
        self.resolutions_mm = [float(d) for d in cfg.resolutions_mm]
        self.threshold, self.max_iterations = float(cfg.success_threshold), int(cfg.max_iterations_per_stage)
        self.finish_on_threshold = bool(cfg.finish_on_threshold)
        # Outcomes of the last advance_window_episodes rollout episodes at this stage (see PRPDConfig).
        self.window: collections.deque = collections.deque(maxlen=int(cfg.advance_window_episodes))
        self.stage = 0
        self.stage_iterations = 0
        self.finished = False

    @property
    def delta_mm(self) -> float:
        return self.resolutions_mm[self.stage]

    @property
    def num_stages(self) -> int:
        return len(self.resolutions_mm)

    @property
    def is_last(self) -> bool:
        return self.stage == self.num_stages - 1

    def remaining_iterations_bound(self) -> int:
        """Most iterations training can still take (every remaining stage to its cap)."""
        if self.finished:
            return 0
        return self.max_iterations - self.stage_iterations + (self.num_stages - 1 - self.stage) * self.max_iterations

    @property
    def window_rate(self) -> float:
        """Success over the window once it is full, else NaN (no decision yet)."""
        if len(self.window) < self.window.maxlen:
            return float("nan")
        return sum(self.window) / len(self.window)

    def step(self, success_rate: float, outcomes=None) -> str | None:
        """Count one iteration at the current stage; return why the stage ends now, or None.

        The runner passes the iteration's episode ``outcomes`` (successes as bools, in the order they
        finished): the decision is then on the window's rate (``window_rate``), not on ``success_rate``."""
        if self.finished:
            raise RuntimeError("the schedule has finished; no more iterations")
        self.stage_iterations += 1
        if outcomes is not None:
            self.window.extend(bool(o) for o in outcomes)
            success_rate = self.window_rate
        reached = success_rate is not None and math.isfinite(success_rate) and success_rate >= self.threshold
        if reached and (not self.is_last or self.finish_on_threshold):
            return "threshold"
        if self.stage_iterations >= self.max_iterations:
            return "cap"
        return None

    def advance(self) -> bool:
        """Move to the next resolution; False (and ``finished``) after the last one."""
        if self.is_last:
            self.finished = True
            return False
        self.stage += 1
        self.stage_iterations = 0
        self.window.clear()  # episodes at the last resolution say nothing about this one
        return True

    def state_dict(self) -> dict:
        return {"stage": self.stage, "stage_iterations": self.stage_iterations, "finished": self.finished,
                "resolutions_mm": list(self.resolutions_mm), "window": list(self.window)}

    def load_state_dict(self, state: dict) -> None:
        if [float(d) for d in state["resolutions_mm"]] != self.resolutions_mm:
            raise ValueError(
                f"checkpoint schedule {state['resolutions_mm']} differs from the config's {self.resolutions_mm}"
            )
        self.stage, self.stage_iterations, self.finished = state["stage"], state["stage_iterations"], state["finished"]
        self.window.clear()
        self.window.extend(state.get("window", []))  # checkpoints from before the window: empty
