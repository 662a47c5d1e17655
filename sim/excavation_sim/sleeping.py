"""Soil particles that nothing can move are put to sleep, so each step costs the awake ones only.

Why this is safe here: the bed is settled before any episode (``ExcavationEnv`` settles it when the
scene is built) and, by default, the bucket passes through the soil; the only thing that moves soil
is the rock (and the bucket, when ``bucket_soil_contact`` is on). Far from those, a settled particle
would stay where it is, so simulating it is wasted work: at 10 mm it was ~95 % of a step.

Each control step, before the physics, a soil particle of the episode is **awake** when it lies within
``sleep_margin`` particle diameters (plus the distance the mover covers in one control period at its
current linear speed) of a mover's bounding box (oriented with the mover), or was awake last step and is still faster than
``sleep_speed`` (a particle sliding into a crater finishes sliding). Every other particle sleeps:
switched out of the solver (not ACTIVE), velocity zero, position kept; the camera still draws it
(Newton's ray caster ignores flags). Sleeping particles also leave the list of particle-shape
contact candidates, which Newton otherwise tests for every particle against every shape of its world
in every substep.

Sleeping particles still support the awake ones beside them: they carry ``soil_contacts.SUPPORT``,
and the particle contact kernel installed from ``soil_contacts.py`` counts them as neighbours with
their real inverse mass and zero velocity, so the awake particle takes the same share of the
correction as from an awake neighbour at rest. Both simpler choices failed: switched off without
support, the awake soil at the edge slumped into the sleeping soil (at 10 mm a trench ~15 mm deep
round the rock within three steps, which hid the rock from perception's fine-soil path); kept ACTIVE
with zero inverse mass (a static shell), a sleeper took none of a contact's correction, so its awake
neighbour in the overlapping XPBD bed was pushed twice as hard and the rock was kicked to m/s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import warp as wp

import newton

from .soil_contacts import SUPPORT, install


@dataclass
class Movers:
    """Oriented boxes of whatever can push soil this step: ``K`` movers in each of ``N`` worlds."""

    centre: torch.Tensor  # (K, N, 3) body origin, world frame
    quat: torch.Tensor  # (K, N, 4) body orientation (x, y, z, w)
    lower: torch.Tensor  # (K, N, 3) box corners in the body frame
    upper: torch.Tensor  # (K, N, 3)
    speed: torch.Tensor  # (K, N) linear speed (m/s)


def _rotate_inv(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` (P, 3) by the inverse of unit quaternions ``q`` (P, 4, x y z w)."""
    xyz, w = -q[:, :3], q[:, 3:4]
    t = 2.0 * torch.linalg.cross(xyz, v)
    return v + w * t + torch.linalg.cross(xyz, t)


class SoilSleep:
    """Chooses the awake soil each control step and writes it into the model."""

    def __init__(self, model: newton.Model, pipeline: newton.CollisionPipeline, particle_world: torch.Tensor,
                 num_worlds: int, diameter: float, control_period: float, margin: float, speed: float):
        install()  # sleeping soil supports its awake neighbours (soil_contacts.py)
        self.model, self.pipeline = model, pipeline
        self.world = particle_world
        self.num_worlds = num_worlds
        self.diameter, self.period = diameter, control_period
        self.margin, self.speed = margin * diameter, speed
        dev = particle_world.device
        self.awake = torch.zeros(particle_world.shape[0], dtype=torch.bool, device=dev)
        self._flags = wp.to_torch(model.particle_flags)
        self._pairs = wp.to_torch(pipeline.soft_rigid_contact_pairs).view(-1, 2)
        self._pair_capacity = self._pairs.shape[0]
        # Shapes that touch particles, grouped by world (CSR): the candidates of an awake particle.
        sw = model.shape_world.numpy()
        collide = (model.shape_flags.numpy() & int(newton.ShapeFlags.COLLIDE_PARTICLES)) != 0
        if (collide & (sw < 0)).any():
            raise ValueError("SoilSleep expects every particle-colliding shape to belong to a world")
        order = np.argsort(sw[collide], kind="stable")
        shapes = np.flatnonzero(collide)[order]
        counts = np.bincount(sw[collide], minlength=num_worlds)
        self._shapes = torch.as_tensor(shapes, dtype=torch.int32, device=dev)
        self._shape_count = torch.as_tensor(counts, dtype=torch.long, device=dev)
        self._shape_start = torch.cumsum(self._shape_count, 0) - self._shape_count

    def update(self, q: torch.Tensor, qd: torch.Tensor, in_episode: torch.Tensor, movers: Movers) -> None:
        """Classify every particle from positions ``q`` and velocities ``qd`` (zeroed in place for the
        sleepers) and the episode's soil ``in_episode``; write the flags and the contact candidates."""
        speed = qd.norm(dim=1)
        reach = self.margin + self.period * movers.speed
        awake = in_episode & (self._within(q, movers, reach) | (self.awake & (speed > self.speed)))
        self.awake = awake
        qd[~awake] = 0.0
        asleep = in_episode & ~awake
        self._flags.copy_(awake.to(self._flags.dtype) * int(newton.ParticleFlags.ACTIVE)
                          + asleep.to(self._flags.dtype) * SUPPORT)
        self._write_pairs(torch.nonzero(awake).flatten())

    @property
    def pair_count(self) -> int:
        return int(self.pipeline.soft_contact_pair_count)

    # ------------------------------------------------------------------ internals
    def _within(self, q: torch.Tensor, movers: Movers, reach: torch.Tensor) -> torch.Tensor:
        """Particles closer than ``reach`` (K, N) to the box of one of their own world's movers."""
        out = torch.zeros(q.shape[0], dtype=torch.bool, device=q.device)
        w = self.world
        for k in range(movers.centre.shape[0]):
            local = _rotate_inv(movers.quat[k][w], q - movers.centre[k][w])
            outside = torch.clamp(torch.maximum(movers.lower[k][w] - local, local - movers.upper[k][w]), min=0.0)
            out |= outside.norm(dim=1) < reach[k][w]
        return out

    def _write_pairs(self, particles: torch.Tensor) -> None:
        # Every listed particle against every particle-colliding shape of its world, in particle
        # order, written over the front of Newton's candidate list; the launch covers only those.
        counts = self._shape_count[self.world[particles]]
        total = int(counts.sum())
        if total > self._pair_capacity:
            raise RuntimeError(f"soft contact candidates {total} exceed the pipeline's {self._pair_capacity}")
        owner = torch.repeat_interleave(torch.arange(particles.shape[0], device=particles.device), counts)
        first = torch.cumsum(counts, 0) - counts
        within = torch.arange(total, device=particles.device) - first[owner]
        shape = self._shapes[self._shape_start[self.world[particles]][owner] + within]
        self._pairs[:total, 0] = particles[owner].to(torch.int32)
        self._pairs[:total, 1] = shape
        # Newton 1.8 reads the launch size from this attribute (pinned in requirements.txt; the
        # sleep tests compare the contacts made with the full list against these).
        self.pipeline._soft_contact_pair_count = total


__all__ = ["Movers", "SoilSleep"]
