"""Batched, variable-resolution rock-excavation env on Newton (implements ``VecEnv``).

One control step (``CONTROL_PERIOD_S``) = ``physics.substeps`` XPBD steps. The bucket is a kinematic
body: each physics step it moves a fraction of the commanded displacement, with the matching
velocity so contacts see it move. Soil is particles, the rock one rigid body of voxel boxes.

Observation/action layout, bounds and control period come from ``excavation_contract`` (the same
module the exporter and the ROS nodes use).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

import excavation_contract as contract
from excavation_contract import DEFAULT_BUCKET

from .warp_setup import init_warp
from .config import ExcavationEnvConfig
from .randomization import EpisodeParams, sample_episode_params
from .rewards import TaskState, compute_reward, potential
from .sleeping import Movers, SoilSleep
from .soil_top import column_count, soil_top
from .vec_env import StepResult

_VALID_DEVICES = ("cpu", "cuda")


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``v`` (N, 3) by quaternions ``q`` (N, 4) stored x, y, z, w (Warp's order)."""
    xyz, w = q[:, :3], q[:, 3:4]
    t = 2.0 * torch.linalg.cross(xyz, v)
    return v + w * t + torch.linalg.cross(xyz, t)


def quat_conj(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([-q[:, :3], q[:, 3:4]], dim=1)


def quat_about(axis: int, angle: torch.Tensor) -> torch.Tensor:
    q = torch.zeros(angle.shape[0], 4, device=angle.device)
    q[:, axis] = torch.sin(angle / 2)
    q[:, 3] = torch.cos(angle / 2)
    return q


def _check_device(device: str) -> torch.device:
    name = str(device)
    if name.split(":")[0] not in _VALID_DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return torch.device(name)


class ExcavationEnv:
    """``num_envs`` excavation worlds at resolution ``delta_mm``; see ``vec_env.VecEnv`` for the API."""

    obs_dim = contract.OBS_DIM
    act_dim = contract.ACT_DIM

    def __init__(self, cfg: ExcavationEnvConfig):
        cfg.validate()
        self.cfg = cfg
        self.device = _check_device(cfg.device)
        self.num_envs = cfg.num_envs
        self.max_episode_steps = cfg.max_episode_steps
        self.control_period = contract.CONTROL_PERIOD_S
        self.bucket_geom = DEFAULT_BUCKET
        self.action_high = torch.as_tensor(contract.ACTION_LIMIT, device=self.device)
        self.action_low = -self.action_high
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self._np_rng = np.random.default_rng(cfg.seed)
        self._resets_of_env0 = 0
        init_warp()
        self._build()
        self.reset()

    # ------------------------------------------------------------------ build
    @property
    def delta_mm(self) -> float:
        return float(self.cfg.delta_mm)

    def _build(self) -> None:
        import newton
        import warp as wp

        from .scene import PARK_DEPTH, build_scene

        self._wp = wp
        self._newton = newton
        self._settling = False
        self.scene = build_scene(self.cfg, self._np_rng, self.bucket_geom)
        model = self.scene.model
        self.model = model
        self.solver = newton.solvers.SolverXPBD(model, iterations=self.cfg.physics.solver_iterations, soft_contact_relaxation=self.cfg.physics.contact_relaxation)
        self.pipeline = newton.CollisionPipeline(
            model, soft_contact_gap=self.cfg.physics.soft_contact_gap, include_static_kinematic_pairs=False
        )
        self.contacts = self.pipeline.contacts()
        if model.particle_count > 1:
            # Newton's default 128^3-cell hash grid is cleared on every build (each substep): 0.36 ms
            # a build, ~7 % of a 70 mm x 64 step whose 256 particles need a 16^3 grid.
            d = particle_grid_dim(model.particle_count)
            model.particle_grid = wp.HashGrid(d, d, d, device=model.device)
        self.states = [model.state(), model.state()]
        self.control = model.control()
        dev = self.device
        to_t = wp.to_torch
        self._pq = [to_t(s.particle_q) for s in self.states]
        self._pqd = [to_t(s.particle_qd) for s in self.states]
        self._bq = [to_t(s.body_q) for s in self.states]
        self._bqd = [to_t(s.body_qd) for s in self.states]
        self._bf = [to_t(s.body_f) for s in self.states]
        self._pflags = to_t(model.particle_flags)
        self._pmass = to_t(model.particle_mass)
        self._pinv_mass = to_t(model.particle_inv_mass)
        self._bmass = to_t(model.body_mass)
        self._binv_mass = to_t(model.body_inv_mass)
        self._binertia = to_t(model.body_inertia)
        self._binv_inertia = to_t(model.body_inv_inertia)
        self._shape_mu = to_t(model.shape_material_mu)
        self._base_inertia = self._binertia.clone()

        worlds = self.scene.worlds
        self.offsets = torch.tensor(np.stack([w.offset for w in worlds]), dtype=torch.float32, device=dev)
        self.floor_z = torch.tensor([w.floor_z for w in worlds], dtype=torch.float32, device=dev)
        self.surface_z = torch.tensor([w.surface_z for w in worlds], dtype=torch.float32, device=dev)
        self.rock_half_height = torch.tensor([w.rock.half_height for w in worlds], dtype=torch.float32, device=dev)
        self.rock_body = torch.as_tensor(self.scene.rock_body, device=dev)
        self.bucket_body = torch.as_tensor(self.scene.bucket_body, device=dev)
        self.particles_per_env = self.scene.particles_per_env
        pw = np.concatenate([np.full(w.particle_count, i) for i, w in enumerate(worlds)])
        self.particle_world = torch.as_tensor(pw, device=dev)
        rest = np.concatenate([w.grid_positions + w.offset for w in worlds]).astype(np.float32)
        self.particle_rest = torch.as_tensor(rest, device=dev)
        parked = rest.copy()
        parked[:, 2] = np.repeat([w.offset[2] + w.floor_z - PARK_DEPTH for w in worlds], self.particles_per_env)
        self.particle_parked = torch.as_tensor(parked, device=dev)
        self.particle_radius = self.scene.delta / 2.0
        self._in_episode = self._pflags == int(newton.ParticleFlags.ACTIVE)  # soil this episode (not under the rock)
        # Each rock's bounding box in its own frame (what can touch soil, for the sleep pass).
        self._rock_box = [torch.tensor(np.stack([(w.rock.centers - w.rock.half_extents).min(axis=0) for w in worlds]), dtype=torch.float32, device=dev),
                          torch.tensor(np.stack([(w.rock.centers + w.rock.half_extents).max(axis=0) for w in worlds]), dtype=torch.float32, device=dev)]
        ph = self.cfg.physics
        self._sleep = SoilSleep(model, self.pipeline, self.particle_world, self.num_envs, self.scene.delta,
                                self.control_period, ph.sleep_margin, ph.sleep_speed)
        self._friction_shapes = [torch.as_tensor(np.concatenate([r, t]), device=dev) for r, t in zip(self.scene.rock_shapes, self.scene.tray_shapes)]
        self._nominal_mu = self.cfg.scene.friction

        n = self.num_envs
        self.params = EpisodeParams.zeros(n, dev)
        self.tip = torch.zeros(n, 3, device=dev)
        self.pitch = torch.zeros(n, device=dev)
        self.rock_start_z = torch.zeros(n, device=dev)
        self.episode_step = torch.zeros(n, dtype=torch.long, device=dev)
        self.episode_return = torch.zeros(n, device=dev)
        self.hold = torch.zeros(n, dtype=torch.long, device=dev)
        self.sim_time = 0.0
        self.floor_clamps = 0  # particles caught below the floor by the safety net (should stay 0)
        self.settle_steps, self.settle_residual = self._settle_soil()

    def soil_top(self) -> torch.Tensor:
        """Soil top of every world, tray frame (``soil_top.py``)."""
        local = self._pq[0] - self.offsets[self.particle_world]
        sc = self.cfg.scene
        return soil_top(local, self.particle_world, self._in_episode, self.num_envs, self.particle_radius,
                        sc.tray_size, column_count(sc.tray_size, self.scene.delta))

    def _settle_soil(self) -> tuple[int, float]:
        """Let every world's bed come to rest with its rock held away; it becomes the rest state.

        Returns the control steps taken and the last step's largest soil-top change (m)."""
        from .scene import PARK_DEPTH

        ph = self.cfg.physics
        if ph.settle_max_steps == 0 or self.particle_rest.shape[0] == 0:
            return 0, float("nan")
        self._in_episode[:] = True
        self._pflags[:] = int(self._newton.ParticleFlags.ACTIVE)
        self._pinv_mass.copy_(1.0 / self._pmass)
        rb = self.rock_body
        park = torch.zeros(self.num_envs, 7, device=self.device)
        park[:, :3] = self.offsets
        park[:, 2] += self.floor_z - PARK_DEPTH
        park[:, 6] = 1.0
        # Held: a parked rock must not fall for the whole settle. Resets give it back its mass.
        self._binv_mass[rb] = 0.0
        self._binv_inertia[rb] = 0.0
        for k in range(2):
            self._pq[k].copy_(self.particle_rest)
            self._pqd[k].zero_()
            self._bq[k][rb] = park
            self._bqd[k][rb] = 0.0
        self.tip = torch.as_tensor(self.cfg.bucket.start_xyz, dtype=torch.float32, device=self.device).repeat(self.num_envs, 1)
        self.tip[:, 2] += 1.0  # out of the soil's way even when bucket-soil contact is on
        self._write_bucket(torch.arange(self.num_envs, device=self.device), self.tip, self.pitch,
                           torch.zeros_like(self.tip), torch.zeros_like(self.pitch))
        before, moved, steps = self.soil_top(), float("nan"), 0
        self._settling = True
        try:
            while steps < ph.settle_max_steps:
                self._simulate(self.tip.clone(), self.pitch.clone())
                steps += 1
                top = self.soil_top()
                moved = float((top - before).abs().max())
                before = top
                if steps >= ph.settle_min_steps and moved < ph.settle_tolerance:
                    break
        finally:
            self._settling = False
        self.particle_rest = self._pq[0].clone()
        self.surface_z = before.to(torch.float32)
        self.sim_time = 0.0
        return steps, moved

    def rebuild(self, delta_mm: float | None = None) -> None:
        """Rebuild the scene (new resolution and/or fresh per-world geometry draws) and reset all envs."""
        if delta_mm is not None:
            self.cfg = replace(self.cfg, delta_mm=delta_mm)
            self.cfg.validate()
        self._build()
        self.reset()

    # ------------------------------------------------------------------ reset
    def reset(self) -> torch.Tensor:
        self.reset_envs(torch.arange(self.num_envs, device=self.device))
        return self.observe()

    def reset_envs(self, env_ids: torch.Tensor) -> None:
        """Reset a subset of envs; the others are left exactly as they are."""
        env_ids = torch.as_tensor(env_ids, device=self.device, dtype=torch.long).flatten()
        if env_ids.numel() == 0:
            return
        if (env_ids < 0).any() or (env_ids >= self.num_envs).any():
            raise ValueError(f"env_ids must be in [0, {self.num_envs}), got {env_ids.tolist()}")
        p = sample_episode_params(self.cfg, env_ids.numel(), self.gen, self.device)
        self.params.assign(env_ids, p)
        lo = torch.as_tensor(contract.WORKSPACE_MIN, device=self.device) + 0.05
        hi = torch.as_tensor(contract.WORKSPACE_MAX, device=self.device) - 0.05
        start = torch.maximum(torch.minimum(p.bucket_start, hi), lo)
        start[:, 2] = torch.clamp(start[:, 2], min=self.cfg.bucket.min_start_height)
        self.tip[env_ids] = start
        self.pitch[env_ids] = self.cfg.bucket.start_pitch

        sc = self.cfg.scene
        burial = sc.rock_burial
        hh = self.rock_half_height[env_ids]
        rock_pos = torch.zeros(env_ids.numel(), 3, device=self.device)
        rock_pos[:, 0] = sc.rock_xy[0]
        rock_pos[:, 1] = sc.rock_xy[1]
        rock_pos[:, 2] = self.surface_z[env_ids] + hh * (1.0 - 2.0 * burial)
        rock_pos += p.rock_start_bias
        rock_pos[:, 2] = torch.maximum(rock_pos[:, 2], self.floor_z[env_ids] + hh + 1e-3)
        rock_quat = quat_about(2, p.rock_yaw)

        for k, e in enumerate(env_ids.tolist()):
            self._reset_world(e, rock_pos[k], rock_quat[k], float(p.soil_mass[k]), float(p.rock_mass[k]), float(p.friction_scale[k]))
        self.episode_step[env_ids] = 0
        self.episode_return[env_ids] = 0.0
        self.hold[env_ids] = 0
        self._write_bucket(env_ids, self.tip[env_ids], self.pitch[env_ids], torch.zeros(env_ids.numel(), 3, device=self.device), torch.zeros(env_ids.numel(), device=self.device))

        if self.cfg.geometry_resample_every > 0 and bool((env_ids == 0).any()):
            self._resets_of_env0 += 1

    def _reset_world(self, e: int, rock_pos: torch.Tensor, rock_quat: torch.Tensor, soil_mass: float, rock_mass: float, friction_scale: float) -> None:
        w = self.scene.worlds[e]
        sl = slice(w.particle_start, w.particle_start + w.particle_count)
        rock = w.rock
        r = self.particle_radius
        centers = torch.as_tensor(rock.centers, dtype=torch.float32, device=self.device)
        halves = torch.as_tensor(rock.half_extents, dtype=torch.float32, device=self.device) + 0.9 * r
        rest = self.particle_rest[sl] - self.offsets[e]
        # The rock rests on the soil beneath its footprint: raise it onto the highest particle under
        # it (only matters when particles are as big as the rock).
        local = quat_rotate(quat_conj(rock_quat.expand(rest.shape[0], 4)), rest - rock_pos)
        in_xy = ((local[:, None, :2] - centers[None, :, :2]).abs() <= halves[None, :, :2]).all(dim=2).any(dim=1)
        bottom = -rock.half_height
        beneath = in_xy & (local[:, 2] < bottom + 0.5 * r)
        if beneath.any():
            rise = float((local[beneath, 2] + r - bottom).max())
            if rise > 0:
                rock_pos = rock_pos.clone()
                rock_pos[2] += rise
                local[:, 2] -= rise
        self.rock_start_z[e] = rock_pos[2]
        # Soil displaced by the rock: particles whose centre lies within the rock's boxes grown by
        # most of a radius are inactive this episode (overlaps would launch them).
        inside = ((local[:, None, :] - centers[None]).abs() <= halves[None]).all(dim=2).any(dim=1)
        pos = torch.where(inside[:, None], self.particle_parked[sl], self.particle_rest[sl])
        self._in_episode[sl] = ~inside
        # Solver flags and inverse masses follow the episode's soil; with sleep on, the next step's
        # sleep pass narrows them to the awake soil.
        self._pflags[sl] = (~inside).to(self._pflags.dtype) * int(self._newton.ParticleFlags.ACTIVE)
        m = max(soil_mass / w.particle_count, self.cfg.scene.min_particle_mass_ratio * rock_mass)
        self._pmass[sl] = m
        self._pinv_mass[sl] = 1.0 / m
        self._sleep.awake[sl] = False
        rb = int(self.rock_body[e])
        nominal = self.cfg.scene.rock_mass
        self._bmass[rb] = rock_mass
        self._binv_mass[rb] = 1.0 / rock_mass
        self._binertia[rb] = self._base_inertia[rb] * (rock_mass / nominal)
        self._binv_inertia[rb] = torch.linalg.inv(self._binertia[rb])
        self._shape_mu[self._friction_shapes[e]] = self._nominal_mu * friction_scale
        world_pose = torch.cat([rock_pos + self.offsets[e], rock_quat])
        for k in range(2):
            self._pq[k][sl] = pos
            self._pqd[k][sl] = 0.0
            self._bq[k][rb] = world_pose
            self._bqd[k][rb] = 0.0

    def _write_bucket(self, env_ids, tip, pitch, lin_vel, pitch_rate) -> None:
        bb = self.bucket_body[env_ids]
        pose = torch.cat([tip + self.offsets[env_ids], quat_about(1, pitch)], dim=1)
        vel = torch.zeros(len(bb), 6, device=self.device)
        vel[:, :3] = lin_vel
        vel[:, 4] = pitch_rate
        for k in range(2):
            self._bq[k][bb] = pose
            self._bqd[k][bb] = vel

    # ------------------------------------------------------------------ step
    def step(self, actions: torch.Tensor) -> StepResult:
        actions = self._check_actions(actions)
        a = torch.maximum(torch.minimum(actions, self.action_high), self.action_low)
        w = self.params.torque_weight
        d_xyz = a[:, :3] * w
        lo = torch.as_tensor(contract.WORKSPACE_MIN, device=self.device)
        hi = torch.as_tensor(contract.WORKSPACE_MAX, device=self.device)
        want = self.tip + d_xyz
        target = torch.maximum(torch.minimum(want, hi), lo)
        left_workspace = ((want - target).abs() > self.cfg.workspace_exit_margin).any(dim=1)
        target_pitch = torch.clamp(self.pitch + a[:, 3], *contract.PITCH_LIMIT_RAD)
        # The tines pass through soil but not through the tray floor: keep the bucket's lowest point
        # (the tip, or the back end when tilted tips-up) just above it.
        back_drop = torch.clamp(self.bucket_geom.tine_length * torch.sin(target_pitch), max=0.0)
        target[:, 2] = torch.maximum(target[:, 2], self.floor_z + 0.003 - back_drop)

        # Phi of the start state is measured, not remembered: resets and rebuilds change the state
        # between steps, and a reading costs one rock pose.
        phi_start = None
        if self.cfg.reward.potential_shaping:
            phi_start = potential(self._task_state(torch.zeros_like(a), left_workspace, count_hold=False), self.cfg.reward)
        self._simulate(target, target_pitch)
        self.tip, self.pitch = target, target_pitch
        self.episode_step += 1

        truth = self._task_state(a / self.action_high, left_workspace)
        reward, _ = compute_reward(truth, self.cfg.reward, phi_start)
        finite = self._finite_worlds()
        reward = torch.where(finite, reward, torch.zeros_like(reward))
        self.episode_return += reward
        success = truth.success
        time_out = (self.episode_step >= self.max_episode_steps) & ~success
        failed = ~finite | self._rock_lost(truth.rock_pos)
        if self.cfg.terminate_on_workspace_exit:
            failed |= left_workspace
        done = success | time_out | failed
        info = {
            "success": success.clone(),
            "time_out": time_out & ~failed,
            "episode_success": success.clone(),
            "episode_length": self.episode_step.clone(),
            "episode_return": self.episode_return.clone(),
            "failure": failed & ~success,
            "rock_in_bucket": truth.in_bucket.clone(),
        }
        ids = torch.nonzero(done).flatten()
        if ids.numel() and self.cfg.auto_reset:
            self.reset_envs(ids)
            if self.cfg.geometry_resample_every and self._resets_of_env0 >= self.cfg.geometry_resample_every:
                self._resets_of_env0 = 0
                self.rebuild()
        return StepResult(self.observe(), reward, done, info)

    def _check_actions(self, actions) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            actions = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        if actions.shape != (self.num_envs, self.act_dim):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.act_dim}) = (num_envs, act_dim), got {tuple(actions.shape)}")
        if not torch.isfinite(actions).all():
            bad = torch.nonzero(~torch.isfinite(actions).all(dim=1)).flatten().tolist()
            raise ValueError(f"actions contain NaN or inf (env rows {bad}); expected finite bucket displacements")
        return actions.to(self.device, torch.float32)

    # ------------------------------------------------------------------ ground truth and scene edits
    # Public, for benchmarks and tests that need what no sensor sees (the simulated stack uses the
    # rock pose and flags above; nothing here is part of the MDP).
    def displace_body(self, body: int, offset) -> None:
        """Move rigid body ``body`` (an index into the model's bodies, e.g. ``rock_body[w]``) by ``offset``
        (x, y, z in metres) without simulating; ``state_dict``/``load_state_dict`` undo it."""
        off = torch.as_tensor(offset, dtype=self._bq[0].dtype, device=self._bq[0].device).reshape(3)
        for q in self._bq:
            q[int(body), :3] += off

    def settle(self, steps: int = 1) -> None:
        """``steps`` control periods of physics with every bucket held where it is (no action, no
        episode bookkeeping): lets the soil come to rest after a scene edit."""
        for _ in range(int(steps)):
            self._simulate(self.tip.clone(), self.pitch.clone())

    def _simulate(self, target: torch.Tensor, target_pitch: torch.Tensor) -> None:
        steps = self.cfg.physics.substeps
        dt = self.control_period / steps
        all_ids = torch.arange(self.num_envs, device=self.device)
        vel = (target - self.tip) / self.control_period
        rate = (target_pitch - self.pitch) / self.control_period
        force = self.params.rock_force
        if self.cfg.physics.sleep and not self._settling:
            self._sleep.update(self._pq[0], self._pqd[0], self._in_episode, self._movers(vel))
        for k in range(steps):
            frac = (k + 1) / steps
            self._write_bucket(all_ids, self.tip + vel * self.control_period * frac, self.pitch + rate * self.control_period * frac, vel, rate)
            s_in, s_out = self.states[k % 2], self.states[(k + 1) % 2]
            s_in.clear_forces()
            self._bf[k % 2][self.rock_body, :3] = force
            self.pipeline.collide(s_in, self.contacts)
            self.solver.step(s_in, s_out, self.control, self.contacts, dt)
        if steps % 2 == 1:  # keep states[0] current so the torch views stay in step
            self.states[0].assign(self.states[1])
        self.sim_time += self.control_period
        if self.cfg.physics.floor_safety_net:
            self._floor_safety_net()

    def _movers(self, bucket_vel: torch.Tensor) -> Movers:
        """What can push soil this step: the rock, and the bucket when it touches soil. Speeds are
        linear only: at rest XPBD rocks its rock back and forth at a few rad/s, which moves it little."""
        rb = self.rock_body
        centre, quat = [self._bq[0][rb, :3]], [self._bq[0][rb, 3:]]
        lower, upper = [self._rock_box[0]], [self._rock_box[1]]
        speed = [self._bqd[0][rb, :3].norm(dim=1)]
        if self.cfg.scene.bucket_soil_contact:
            g = self.bucket_geom
            n = self.num_envs
            centre.append(self.tip + self.offsets)
            quat.append(quat_about(1, self.pitch))
            lower.append(torch.tensor([-g.tine_length - g.back_thickness, -g.width / 2, 0.0], device=self.device).expand(n, 3))
            upper.append(torch.tensor([0.0, g.width / 2, max(g.back_height, g.tine_thickness)], device=self.device).expand(n, 3))
            speed.append(bucket_vel.norm(dim=1))
        return Movers(torch.stack(centre), torch.stack(quat), torch.stack(lower), torch.stack(upper), torch.stack(speed))

    def _floor_safety_net(self) -> None:
        # Particles must never leave through the floor. XPBD with a velocity clamp and a thick floor
        # keeps them in; this catches the rare miss (and counts it) instead of letting one fall forever.
        q = self._pq[0]
        active = self._in_episode
        floor = (self.offsets[:, 2] + self.floor_z)[self.particle_world]
        below = active & (q[:, 2] < floor)
        n = int(below.sum())
        if n:
            self.floor_clamps += n
            q[below, 2] = floor[below]
            self._pqd[0][below] = 0.0

    # ------------------------------------------------------------------ truth and observation
    def rock_pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Rock centre (tray frame) and orientation quaternion (x, y, z, w) per env (truth)."""
        bq = self._bq[0][self.rock_body]
        return bq[:, :3] - self.offsets, bq[:, 3:]

    def lowest_particle_depth(self) -> torch.Tensor:
        """Per env, how far the lowest active particle centre lies below the floor's top (m, <= 0 is fine)."""
        active = self._in_episode
        floor = (self.offsets[:, 2] + self.floor_z)[self.particle_world]
        below = torch.where(active, floor - self._pq[0][:, 2], torch.full_like(floor, -1.0))
        out = torch.full((self.num_envs,), -1.0, device=self.device)
        return out.scatter_reduce(0, self.particle_world, below, reduce="amax")

    def soil_particles(self, env_id: int) -> np.ndarray:
        """Active soil particle positions of one env in its tray frame (for pictures and tests)."""
        w = self.scene.worlds[env_id]
        sl = slice(w.particle_start, w.particle_start + w.particle_count)
        act = self._in_episode[sl]
        return (self._pq[0][sl][act] - self.offsets[env_id]).cpu().numpy()

    def _bucket_local(self, p: torch.Tensor) -> torch.Tensor:
        """Points (N, 3) in the tray frame -> bucket frame."""
        q = quat_about(1, self.pitch)
        return quat_rotate(quat_conj(q), p - self.tip)

    def _task_state(self, a_norm: torch.Tensor, pushed: torch.Tensor, count_hold: bool = True) -> TaskState:
        """Ground truth now; ``count_hold`` advances the success hold counter (once per control step)."""
        g = self.bucket_geom
        rock_pos, _ = self.rock_pose()
        under, in_bucket = self._rock_in_fork(rock_pos)
        if count_hold:
            lifted = rock_pos[:, 2] - self.rock_half_height - self.surface_z > self.cfg.lift_clearance
            holding = in_bucket & lifted
            self.hold = torch.where(holding, self.hold + 1, torch.zeros_like(self.hold))
        scoop = self.tip + quat_rotate(quat_about(1, self.pitch), torch.tensor([[-g.tine_length / 2, 0.0, 0.0]], device=self.device).expand(self.num_envs, 3))
        return TaskState(
            scoop_point=scoop,
            rock_pos=rock_pos,
            rock_half_height=self.rock_half_height,
            rock_height_gain=rock_pos[:, 2] - self.rock_start_z,
            under=under,
            in_bucket=in_bucket,
            success=self.hold >= self.cfg.success_hold_steps,
            action_normalised=a_norm,
            pushed_past_workspace=pushed,
        )

    def _rock_in_fork(self, rock_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(under, in_bucket): the rock centre is above the tines inside the fork; and not above the back plate."""
        g = self.bucket_geom
        local = self._bucket_local(rock_pos)
        in_fork = (local[:, 0] >= -g.tine_length) & (local[:, 0] <= 0.005) & (local[:, 1].abs() <= g.width / 2 + 0.005)
        under = in_fork & (local[:, 2] > 0.0)
        return under, under & (local[:, 2] <= g.back_height)

    def rock_in_bucket_truth(self) -> torch.Tensor:
        return self._rock_in_fork(self.rock_pose()[0])[1]

    def _finite_worlds(self) -> torch.Tensor:
        bq = self._bq[0]
        ok = torch.isfinite(bq[self.rock_body]).all(dim=1)
        bad_p = ~torch.isfinite(self._pq[0]).all(dim=1)
        if bad_p.any():
            ok[torch.unique(self.particle_world[bad_p])] = False
        return ok

    def _rock_lost(self, rock_pos: torch.Tensor) -> torch.Tensor:
        half = self.cfg.scene.tray_size / 2 + 0.15
        return (rock_pos[:, :2].abs() > half).any(dim=1) | (rock_pos[:, 2] < self.floor_z - 0.05) | (rock_pos[:, 2] > 1.0)

    def observe(self) -> torch.Tensor:
        """The observation of every env, in contract order, with the Table II observation noise."""
        dr = self.cfg.randomization
        rock_pos, _ = self.rock_pose()
        rock_obs = rock_pos.clone()
        flag = self.rock_in_bucket_truth().float()
        z_bias = self.params.ground_bias
        if dr.enabled:
            noise = (torch.rand(self.num_envs, 2, generator=self.gen) * 2 - 1).to(self.device) * dr.rock_obs_noise_xy
            rock_obs[:, :2] += self.params.rock_obs_bias + noise
            flip = torch.rand(self.num_envs, generator=self.gen).to(self.device) < dr.rock_in_bucket_error_rate
            flag = torch.where(flip, 1.0 - flag, flag)
        z = torch.zeros_like(self.tip)
        z[:, 2] = z_bias  # the camera's height bias shifts every observed z alike
        obs = contract.pack_observation(bucket_tip=self.tip + z, bucket_pitch=self.pitch, rock=rock_obs + z,
                                        rock_in_bucket=flag)
        return torch.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)

    # ------------------------------------------------------------------ checkpointing
    _STATE_TENSORS = ("tip", "pitch", "rock_start_z", "episode_step", "episode_return", "hold")
    _MODEL_VIEWS = ("_in_episode", "_pflags", "_pmass", "_pinv_mass", "_bmass", "_binv_mass", "_binertia", "_binv_inertia", "_shape_mu")

    def state_dict(self) -> dict:
        """Everything that makes the next step what it would have been: physics state, per-episode
        draws, counters and both random generators (the trainer saves it with its checkpoints)."""
        from dataclasses import asdict

        return {
            "delta_mm": self.delta_mm,
            "num_envs": self.num_envs,
            "scene": self._scene_fingerprint(),
            "gen": self.gen.get_state(),
            "np_rng": self._np_rng.bit_generator.state,
            "sim_time": self.sim_time,
            "resets_of_env0": self._resets_of_env0,
            "params": {k: v.clone() for k, v in asdict(self.params).items()},
            "tensors": {k: getattr(self, k).clone() for k in self._STATE_TENSORS},
            "model": {k: getattr(self, k).clone() for k in self._MODEL_VIEWS},
            "particle_q": self._pq[0].clone(),
            "particle_qd": self._pqd[0].clone(),
            "body_q": self._bq[0].clone(),
            "body_qd": self._bqd[0].clone(),
            "sleep_awake": self._sleep.awake.clone(),
        }

    def _scene_fingerprint(self) -> list:
        return [(w.rock.voxel_count, round(w.rock_volume, 12), round(w.soil_volume, 12), w.particle_count) for w in self.scene.worlds]

    def load_state_dict(self, state: dict) -> None:
        if state["delta_mm"] != self.delta_mm or state["num_envs"] != self.num_envs:
            raise ValueError(
                f"env state is for {state['num_envs']} envs at {state['delta_mm']} mm, this env has "
                f"{self.num_envs} envs at {self.delta_mm} mm"
            )
        if state["scene"] != self._scene_fingerprint():
            raise ValueError("env state was saved from a different scene (other seed or randomised geometry); build the env with the same config")
        self.gen.set_state(state["gen"])
        self._np_rng.bit_generator.state = state["np_rng"]
        self.sim_time = state["sim_time"]
        self._resets_of_env0 = state["resets_of_env0"]
        for k, v in state["params"].items():
            getattr(self.params, k).copy_(v)
        for k, v in state["tensors"].items():
            getattr(self, k).copy_(v)
        for k, v in state["model"].items():
            getattr(self, k).copy_(v)
        for k in range(2):
            self._pq[k].copy_(state["particle_q"])
            self._pqd[k].copy_(state["particle_qd"])
            self._bq[k].copy_(state["body_q"])
            self._bqd[k].copy_(state["body_qd"])
        self._sleep.awake.copy_(state["sleep_awake"])

    def close(self) -> None:
        self.states = []
        self.model = None


def particle_grid_dim(particle_count: int) -> int:
    """Cells per side of the particle hash grid: a power of two near the cube root of 16 cells per
    particle, between 16 and 256. Fewer cells alias distant particles into one (a 64^3 grid made a
    10 mm x 64 step ~10 % slower than 128^3); more cost a clear on every build (256^3: 2 ms)."""
    return int(min(256, max(16, 2 ** round(np.log2(max(1.0, 16.0 * particle_count) ** (1.0 / 3.0))))))


def make_env(delta_mm: float, cfg: ExcavationEnvConfig | None = None):
    """EnvFactory for the learners: the env at ``delta_mm`` with everything else from ``cfg``; split
    over ``cfg.shards`` processes when that is more than one."""
    base = replace(cfg if cfg is not None else ExcavationEnvConfig(), delta_mm=float(delta_mm))
    if base.shards > 1:
        from .sharded import ShardedEnv

        return ShardedEnv(base, base.shards)
    return ExcavationEnv(base)


__all__ = ["ExcavationEnv", "make_env", "quat_rotate", "quat_about", "quat_conj"]
