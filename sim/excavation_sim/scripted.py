"""A scripted scoop controller that sees only the observation (no learning, no truth).

It shows the task is solvable at every resolution and gives the learners a reference success rate.
Like the paper's successful trajectories: approach behind the rock, lower the tines below it, slide
them under, then lift while tilting the tips up so the rock rolls against the back plate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import excavation_contract as contract

APPROACH, DESCEND, SLIDE, LIFT = 0, 1, 2, 3


@dataclass
class ScoopConfig:
    back_off: float = 0.13
    """Tip distance behind the rock centre (x) before lowering (m). Under Table II randomisation the
    observed rock can be 50 mm off (bias + noise), so lower well clear of it: at 75 mm the tips
    often came down on the rock at 70 mm resolution (50 % success there vs 88 %)."""
    clearance: float = 0.10
    """Height above the rock centre for the approach (m)."""
    below_rock: float = 0.05
    """Tip depth below the observed rock centre while sliding under it (m)."""
    slide_past: float = 0.08
    """How far past the rock centre the tip slides (m)."""
    lift_height: float = 0.17
    """Tip rise from the slide depth; enough to bring the rock 30 mm clear of the soil (m)."""
    dig_pitch: float = 0.0
    """Pitch while sliding under the rock (rad); tines level so the cross bar passes under it too."""
    lift_pitch: float = -0.35
    """Tips up while lifting, so the rock rests against the back plate (rad)."""
    tolerance: float = 0.012
    rock_smoothing: float = 0.3
    """EMA weight of a new rock observation (the observation is noisy under randomisation)."""


class ScriptedScoop:
    def __init__(self, num_envs: int, device: torch.device | str = "cpu", cfg: ScoopConfig | None = None):
        self.cfg = cfg or ScoopConfig()
        self.device = torch.device(device)
        self.limit = torch.as_tensor(contract.ACTION_LIMIT, device=self.device)
        self.phase = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.rock = torch.zeros(num_envs, 3, device=self.device)
        self.locked = torch.zeros(num_envs, 3, device=self.device)
        self.lift_z = torch.zeros(num_envs, device=self.device)
        self.fresh = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        self.last_tip = torch.zeros(num_envs, 3, device=self.device)

    def reset(self, done: torch.Tensor) -> None:
        """Start over in the envs whose episode ended (``done`` is a bool mask)."""
        self.phase[done] = APPROACH
        self.fresh |= done

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        c, i = self.cfg, contract.OBS_INDEX
        tip = obs[:, [i["bucket_tip_x"], i["bucket_tip_y"], i["bucket_tip_z"]]]
        pitch = obs[:, i["bucket_pitch"]]
        seen = obs[:, [i["rock_x"], i["rock_y"], i["rock_z"]]]
        self.rock = torch.where(self.fresh[:, None], seen, (1 - c.rock_smoothing) * self.rock + c.rock_smoothing * seen)
        self.fresh[:] = False

        goal = torch.empty_like(tip)
        goal_pitch = torch.zeros_like(pitch)
        r = torch.where((self.phase >= SLIDE)[:, None], self.locked, self.rock)
        behind = r[:, 0] - c.back_off
        low = r[:, 2] - c.below_rock
        ph = self.phase
        goal[:, 0] = torch.where(ph == APPROACH, behind, torch.where(ph == DESCEND, behind, r[:, 0] + c.slide_past))
        goal[:, 1] = r[:, 1]
        goal[:, 2] = torch.where(ph == APPROACH, r[:, 2] + c.clearance, low)
        goal_pitch[:] = torch.where(ph >= DESCEND, torch.full_like(pitch, c.dig_pitch), torch.zeros_like(pitch))
        lifting = ph == LIFT
        goal[lifting, 2] = self.lift_z[lifting] + c.lift_height
        goal_pitch[lifting] = c.lift_pitch

        err = goal - tip
        # The floor (unknown to the controller) may stop the tines short of a low goal: a tip that
        # is blocked on its way down counts as arrived in z.
        blocked = (ph >= DESCEND) & (err[:, 2] < 0) & ((tip[:, 2] - self.last_tip[:, 2]).abs() < 0.002)
        z_ok = (err[:, 2].abs() < c.tolerance) | blocked
        reached = (err[:, :2].abs() < c.tolerance).all(dim=1) & z_ok
        self.last_tip = tip.clone()
        # Phase changes take effect next step; locking the rock estimate at the slide keeps the
        # tines from chasing observation noise while they are under the rock.
        to_slide = (ph == DESCEND) & reached
        self.locked[to_slide] = self.rock[to_slide]
        to_lift = (ph == SLIDE) & reached
        self.lift_z[to_lift] = tip[to_lift, 2]
        self.phase = torch.where(reached & (ph < LIFT), ph + 1, ph)

        action = torch.cat([err, (goal_pitch - pitch)[:, None]], dim=1)
        return torch.maximum(torch.minimum(action, self.limit), -self.limit)


def run_scripted(env, episodes: int, progress: bool = False) -> dict:
    """Run the scripted controller for ``episodes`` episodes; return success stats with a 95 % CI.

    Every env contributes the same number of episodes, its first ``ceil(episodes / num_envs)``: counting
    the first ``episodes`` to finish would let quick successes crowd out the slow time-outs."""
    import math

    from tqdm import tqdm

    n_env = env.num_envs
    per_env = max(1, math.ceil(episodes / n_env))
    ctrl = ScriptedScoop(n_env, env.device)
    obs = env.reset()
    done_count = [0] * n_env
    results, steps_to_success = [], []
    bar = tqdm(total=per_env * n_env, desc=f"scripted @ {env.delta_mm:g} mm", disable=not progress)
    while min(done_count) < per_env:
        res = env.step(ctrl.act(obs))
        obs = res.obs
        ctrl.reset(res.done)
        for e in torch.nonzero(res.done).flatten().tolist():
            if done_count[e] >= per_env:
                continue
            done_count[e] += 1
            ok = bool(res.info["episode_success"][e])
            results.append(ok)
            if ok:
                steps_to_success.append(int(res.info["episode_length"][e]))
            bar.update(1)
    bar.close()
    n, k = len(results), sum(results)
    lo, hi = wilson_interval(k, n)
    return {
        "delta_mm": env.delta_mm,
        "episodes": n,
        "episodes_per_env": per_env,
        "success_rate": k / max(n, 1),
        "success_ci95": [lo, hi],
        "mean_steps_to_success": (sum(steps_to_success) / len(steps_to_success)) if steps_to_success else None,
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for z = 1.96)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
