"""Builds the Newton model of ``num_envs`` excavation worlds at one resolution.

Each world (its own Newton world id, origin ``offsets[i]``) holds:

- a static tray: a thick floor and four walls (shapes on body -1);
- soil: particles of diameter ``delta`` packed on a grid that fills the tray to the world's soil
  depth; particles that would overlap the rock at reset are switched inactive (the rock displaces
  its own volume of soil) and parked far below the world;
- a rock: one dynamic body made of the merged voxel boxes of a random blob (``rock.py``);
- a bucket: one kinematic body (tines, cross bar, back plate) whose pose the env writes every
  physics step; its shapes touch the rock and, only if configured, the soil.

Worlds are laid out on a grid ``world_spacing`` apart because Newton's particle-particle contacts do
not look at world ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import warp as wp

import newton
from excavation_contract import BucketGeometry, DEFAULT_BUCKET

from .config import ExcavationEnvConfig
from .rock import RockShape, make_rock

PARK_DEPTH = 5.0  # inactive particles wait this far below their world's floor (m)


@dataclass
class WorldLayout:
    """What the env needs to know about one world after the build."""

    offset: np.ndarray  # (3,) world origin of the tray frame
    floor_z: float  # top of the tray floor, tray frame
    surface_z: float  # top of the soil at rest, tray frame
    particle_start: int
    particle_count: int
    grid_positions: np.ndarray  # (P, 3) rest positions of the soil particles, tray frame
    rock: RockShape
    soil_volume: float
    rock_volume: float


@dataclass
class Scene:
    model: newton.Model
    worlds: list[WorldLayout]
    rock_body: np.ndarray  # (N,) body index of each world's rock
    bucket_body: np.ndarray  # (N,) body index of each world's bucket
    rock_shapes: list[np.ndarray]  # per world, shape indices of the rock
    tray_shapes: list[np.ndarray]  # per world, shape indices of the tray
    bucket_shapes: list[np.ndarray]
    delta: float

    @property
    def particles_per_env(self) -> np.ndarray:
        return np.array([w.particle_count for w in self.worlds])


def world_offsets(num_envs: int, spacing: float) -> np.ndarray:
    side = int(np.ceil(np.sqrt(num_envs)))
    idx = np.arange(num_envs)
    return np.stack([(idx % side) * spacing, (idx // side) * spacing, np.zeros(num_envs)], axis=1)


def soil_grid(tray_size: float, depth: float, delta: float) -> tuple[np.ndarray, float]:
    """Rest positions of soil particles filling a ``tray_size``^2 x ``depth`` box, and the bed height.

    Layers alternate between a square grid and the same grid shifted by half a pitch, so every
    particle above the first layer sits in the hollow between four below it (face-centred packing).
    Columns of spheres stacked straight on top of each other (a simple cubic grid) are an unstable
    equilibrium: under the rock's weight they slid into the hollows and the bed lost ~20 mm of height
    in the first second, taking the rock down with it. The pitch is never below ``delta`` (no
    overlapping spawns); counts per axis are at least one, and the caller spreads the soil mass over
    whatever count results. The bed height (top of the highest layer above the floor) is
    quantised to whole layers, as close to ``depth`` as the layer height allows.
    """
    n_xy = max(1, int(np.floor(tray_size / delta + 1e-9)))
    pitch = tray_size / n_xy
    c_xy = (np.arange(n_xy) - (n_xy - 1) / 2.0) * pitch
    c_off = c_xy[:-1] + pitch / 2.0
    if n_xy == 1 or pitch >= np.sqrt(2.0) * delta:
        layer_h = delta  # nothing to nest in: stack straight (only for particles ~ the tray's size)
    else:
        layer_h = float(np.sqrt(delta**2 - pitch**2 / 2.0))
    n_z = max(1, int(round((depth - delta) / layer_h)) + 1)
    layers = []
    for k in range(n_z):
        c = c_off if (k % 2 == 1 and len(c_off)) else c_xy
        x, y = np.meshgrid(c, c, indexing="ij")
        z = np.full(x.size, delta / 2.0 + k * layer_h)
        layers.append(np.stack([x.ravel(), y.ravel(), z], axis=1))
    return np.concatenate(layers), (n_z - 1) * layer_h + delta


def bucket_boxes(g: BucketGeometry) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """(centre, half extents) of the bucket's boxes in the bucket frame (origin at the tine tips)."""
    boxes = []
    pitch = g.width / g.num_tines
    for k in range(g.num_tines):
        y = -g.width / 2 + pitch * (k + 0.5)
        boxes.append(((-g.tine_length / 2, y, g.tine_thickness / 2), (g.tine_length / 2, g.tine_thickness / 2, g.tine_thickness / 2)))
    # Cross bar at the back joining the tines, then the back plate standing on it.
    boxes.append(((-g.tine_length + g.base_thickness / 2, 0.0, g.tine_thickness / 2), (g.base_thickness / 2, g.width / 2, g.tine_thickness / 2)))
    boxes.append(
        ((-g.tine_length - g.back_thickness / 2, 0.0, g.back_height / 2), (g.back_thickness / 2, g.width / 2, g.back_height / 2))
    )
    return boxes


def build_scene(cfg: ExcavationEnvConfig, rng: np.random.Generator, bucket: BucketGeometry = DEFAULT_BUCKET) -> Scene:
    sc, dr = cfg.scene, cfg.randomization
    delta = float(cfg.delta_mm) / 1000.0
    radius = delta / 2.0
    nominal_depth = sc.soil_volume / sc.tray_size**2
    offsets = world_offsets(cfg.num_envs, sc.world_spacing + sc.tray_size)

    builder = newton.ModelBuilder(gravity=(0.0, 0.0, cfg.physics.gravity))
    tray_cfg = newton.ModelBuilder.ShapeConfig(mu=sc.friction, density=0.0, has_particle_collision=True)
    rock_cfg = newton.ModelBuilder.ShapeConfig(
        mu=sc.friction, density=0.0, has_particle_collision=sc.soil_rock_contact, has_shape_collision=True
    )
    bucket_cfg = newton.ModelBuilder.ShapeConfig(
        mu=sc.friction,
        density=0.0,
        has_particle_collision=sc.bucket_soil_contact,
        has_shape_collision=sc.bucket_rock_contact,
    )

    worlds, rock_body, bucket_body = [], [], []
    rock_shapes, tray_shapes, bucket_shapes = [], [], []
    for i in range(cfg.num_envs):
        soil_volume = rng.uniform(*dr.soil_volume) if dr.enabled else sc.soil_volume
        rock_volume = rng.uniform(*dr.rock_volume) if dr.enabled else sc.rock_volume
        depth = soil_volume / sc.tray_size**2
        grid, layer = soil_grid(sc.tray_size, depth, delta)
        # The soil surface sits where this world's soil volume would put it; the floor is one
        # (quantised) layer below, so coarse and fine resolutions share the nominal surface.
        surface_z = depth - nominal_depth
        floor_z = surface_z - layer
        grid[:, 2] += floor_z
        rock = make_rock(rock_volume, delta, rng, sc.rock_roughness)
        off = offsets[i]

        builder.begin_world(label=f"env_{i}")
        start_shape = builder.shape_count
        half = sc.tray_size / 2
        wall_h = (surface_z - floor_z) + sc.tray_wall_height
        t = sc.tray_wall_thickness
        ft = sc.floor_thickness
        tray_boxes = [
            ((0.0, 0.0, floor_z - ft / 2), (half + t, half + t, ft / 2)),
            ((half + t / 2, 0.0, floor_z + wall_h / 2), (t / 2, half + t, wall_h / 2)),
            ((-half - t / 2, 0.0, floor_z + wall_h / 2), (t / 2, half + t, wall_h / 2)),
            ((0.0, half + t / 2, floor_z + wall_h / 2), (half, t / 2, wall_h / 2)),
            ((0.0, -half - t / 2, floor_z + wall_h / 2), (half, t / 2, wall_h / 2)),
        ]
        for c, h in tray_boxes:
            builder.add_shape_box(-1, xform=wp.transform(wp.vec3(*(off + np.array(c))), wp.quat_identity()), hx=h[0], hy=h[1], hz=h[2], cfg=tray_cfg)
        tray_shapes.append(np.arange(start_shape, builder.shape_count))

        particle_start = builder.particle_count
        m = sc.soil_mass / len(grid)
        builder.add_particles(
            [wp.vec3(*(off + p)) for p in grid], [wp.vec3(0.0, 0.0, 0.0)] * len(grid), [m] * len(grid), [radius] * len(grid)
        )

        # Rock: inertia of the voxel boxes at uniform density, scaled to the nominal mass.
        vols = np.prod(2 * rock.half_extents, axis=1)
        rho = sc.rock_mass / vols.sum()
        inertia = np.zeros((3, 3))
        for c, h, v in zip(rock.centers, rock.half_extents, vols):
            mb = rho * v
            d = 2 * h
            inertia += np.diag(mb / 12.0 * np.array([d[1] ** 2 + d[2] ** 2, d[0] ** 2 + d[2] ** 2, d[0] ** 2 + d[1] ** 2]))
            inertia += mb * (np.dot(c, c) * np.eye(3) - np.outer(c, c))
        rb = builder.add_body(
            xform=wp.transform(wp.vec3(*(off + np.array([*sc.rock_xy, surface_z]))), wp.quat_identity()),
            mass=sc.rock_mass,
            inertia=wp.mat33(*inertia.ravel()),
            com=wp.vec3(0.0, 0.0, 0.0),
            lock_inertia=True,
            label=f"rock_{i}",
        )
        s0 = builder.shape_count
        for c, h in zip(rock.centers, rock.half_extents):
            builder.add_shape_box(rb, xform=wp.transform(wp.vec3(*c), wp.quat_identity()), hx=h[0], hy=h[1], hz=h[2], cfg=rock_cfg)
        rock_shapes.append(np.arange(s0, builder.shape_count))

        bb = builder.add_body(
            xform=wp.transform(wp.vec3(*(off + np.array(cfg.bucket.start_xyz))), wp.quat_identity()),
            mass=0.0,
            is_kinematic=True,
            label=f"bucket_{i}",
        )
        s0 = builder.shape_count
        for c, h in bucket_boxes(bucket):
            builder.add_shape_box(bb, xform=wp.transform(wp.vec3(*c), wp.quat_identity()), hx=h[0], hy=h[1], hz=h[2], cfg=bucket_cfg)
        bucket_shapes.append(np.arange(s0, builder.shape_count))
        builder.end_world()

        rock_body.append(rb)
        bucket_body.append(bb)
        worlds.append(
            WorldLayout(
                offset=off.astype(np.float64),
                floor_z=float(floor_z),
                surface_z=float(surface_z),
                particle_start=particle_start,
                particle_count=len(grid),
                grid_positions=grid.astype(np.float32),
                rock=rock,
                soil_volume=float(soil_volume),
                rock_volume=float(rock_volume),
            )
        )

    device = wp.get_device(cfg.device)
    model = builder.finalize(device=device)
    model.particle_max_velocity = cfg.physics.particle_max_velocity
    model.particle_mu = sc.friction
    model.soft_contact_mu = sc.friction
    model.particle_cohesion = 0.0
    return Scene(
        model=model,
        worlds=worlds,
        rock_body=np.array(rock_body),
        bucket_body=np.array(bucket_body),
        rock_shapes=rock_shapes,
        tray_shapes=tray_shapes,
        bucket_shapes=bucket_shapes,
        delta=delta,
    )
