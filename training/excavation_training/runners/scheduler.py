"""Progressive resolution schedule: when to move from one resolution to the next."""

from __future__ import annotations

import math

from ..config import PRPDConfig


class ResolutionScheduler:
    """Stages = ``prpd.resolutions_mm``, coarse to fine. A stage ends when the training success rate
    reaches ``prpd.success_threshold`` (reason ``"threshold"``) or after ``prpd.max_iterations_per_stage``
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

    def step(self, success_rate: float) -> str | None:
        """Count one iteration at the current stage; return why the stage ends now, or None."""
        if self.finished:
            raise RuntimeError("the schedule has finished; no more iterations")
        self.stage_iterations += 1
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
        return True

    def state_dict(self) -> dict:
        return {"stage": self.stage, "stage_iterations": self.stage_iterations, "finished": self.finished,
                "resolutions_mm": list(self.resolutions_mm)}

    def load_state_dict(self, state: dict) -> None:
        if [float(d) for d in state["resolutions_mm"]] != self.resolutions_mm:
            raise ValueError(
                f"checkpoint schedule {state['resolutions_mm']} differs from the config's {self.resolutions_mm}"
            )
        self.stage, self.stage_iterations, self.finished = state["stage"], state["stage_iterations"], state["finished"]
