"""Typed configuration of the excavation environment (scene, physics, randomisation, reward).

Every default is documented next to it. Units are SI unless the name says otherwise (``_mm``).
The tray frame is the env's world frame: origin at the tray centre on the nominal soil surface,
z up, x away from the robot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The paper's schedule (Table I): 70 -> 10 mm in 10 mm steps.
DEFAULT_RESOLUTIONS_MM: tuple[float, ...] = (70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0)
MIN_DELTA_MM = 5.0  # below this the particle count explodes (>15k per env); refuse it
MAX_DELTA_MM = 100.0  # above this a single particle is bigger than the whole soil layer's footprint cell


@dataclass
class SceneConfig:
    """Geometry and nominal materials of one world."""

    tray_size: float = 0.16
    """Inner side of the square soil tray (m). The nominal soil volume fills it to a depth of ~76 mm,
    deep enough that the tines pass under a half-buried 50 mm rock well above the floor."""
    tray_wall_height: float = 0.06
    """Wall height above the nominal soil surface (m)."""
    tray_wall_thickness: float = 0.1
    floor_thickness: float = 0.3
    """Floor (and wall) shapes are much thicker than a particle can be pushed into them in one step,
    so a squeezed particle is always pushed back out through the inner face, never through."""
    soil_volume: float = 0.125**3
    """Nominal total soil volume (m^3), paper Table II: 125^3 mm^3. Sets the soil depth."""
    soil_mass: float = 3.0
    """Nominal total soil mass (kg), shared equally by the particles whatever the resolution."""
    min_particle_mass_ratio: float = 0.1
    """Floor on one particle's mass, as a fraction of the rock's mass. XPBD resolves a 1 kg rock on
    1.5 g particles (3 kg / 2000 at 10 mm) so poorly that the rock sinks through the soil; with
    this floor the rock rests on it. Below ~30 mm this floor, not ``soil_mass``, sets the mass."""
    rock_volume: float = 0.05**3
    """Nominal rock volume (m^3), paper Table II: 50^3 mm^3."""
    rock_mass: float = 1.0
    """Nominal rock mass (kg)."""
    rock_xy: tuple[float, float] = (0.0, 0.0)
    """Nominal rock centre in the tray (m)."""
    rock_burial: float = 0.5
    """Fraction of the rock's height below the nominal soil surface. At coarse resolutions the rock
    is raised until it rests on the particles beneath it (a 70 mm particle cannot bury a 50 mm rock)."""
    rock_roughness: float = 0.25
    """Shape randomness of the rock blob (0 = ellipsoid of equal axes)."""
    friction: float = 1.0
    """Nominal friction coefficient of every contact (paper: 1)."""
    bucket_soil_contact: bool = False
    """Paper default: the tines pass through the soil. True makes the bucket push soil particles."""
    bucket_rock_contact: bool = True
    soil_rock_contact: bool = True
    world_spacing: float = 1.5
    """Distance between replicated worlds (m). Newton's particle contacts ignore world ids, so worlds
    must be farther apart than any particle can travel."""


@dataclass
class PhysicsConfig:
    """Solver settings. One control step = ``substeps`` physics steps of ``control_period / substeps``."""

    substeps: int = 8
    solver_iterations: int = 4
    """With 2 iterations a bed four layers deep compressed ~20 mm under its own weight and the rock's
    (each Jacobi pass only removes ``contact_relaxation`` of an overlap); 4 holds a 30 mm bed to a
    few mm, 8 to ~1 mm. Cost of 4 (bench/results/sim_scaling.json, with the denser packing): 1.8x
    per step at 70 mm x 64 envs, 2.3x at 10 mm x 64. A 10-layer 10 mm bed still compacts."""
    particle_max_velocity: float = 1.5
    """Clamp on particle speed (m/s): keeps XPBD contact impulses from launching particles."""
    soft_contact_gap: float = 0.005
    contact_relaxation: float = 0.3
    """XPBD relaxation of particle contacts. Newton sums every neighbour's correction (Jacobi), so
    in a packed soil the default 0.9 over-corrects and the soil 'boils' (~0.2 m/s at rest); 0.3
    keeps it at mm/s."""
    floor_safety_net: bool = True
    """After each control step, lift any particle whose centre sank below the floor's top back onto
    it (XPBD under the rock's weight occasionally lets one slip); the count is reported."""
    gravity: float = -9.81
    settle_max_steps: int = 12
    """When the scene is built, the soil alone (rocks held away) is simulated for up to this many
    control steps, until its top (``soil_top.py``) moves less than ``settle_tolerance`` in one step;
    that settled bed is where every episode starts, and ``surface_z`` is measured on it. XPBD
    compacts a freshly stacked bed (~43 mm at 10 mm, ~20 mm at 20 mm in the first step): unsettled,
    the episode's first steps were the soil collapsing under the rock. 0 keeps the stacked grid."""
    settle_min_steps: int = 2
    settle_tolerance: float = 0.0005
    """Settled when no world's soil top moved more than this in one control step (m)."""
    sleep: bool = True
    """Soil that nothing can move sleeps (``sleeping.py``): out of the solver until the rock (or the
    bucket, with ``bucket_soil_contact``) comes near, while still supporting the awake soil beside it
    (``soil_contacts.py``; without that support the edge slumped into a trench ~15 mm deep round the
    rock at 10 mm). Several times faster at 20 and 10 mm (``bench/results/sim_scaling.json``). False
    simulates every particle every substep."""
    sleep_margin: float = 1.0
    """Awake: within this many particle diameters of the rock's bounding box (of the bucket's too
    when ``bucket_soil_contact``), grown by the distance it covers in one control period."""
    sleep_speed: float = 0.1
    """An awake particle outside the margin sleeps once slower than this (m/s). At rest XPBD soil
    jitters at a few cm/s, so this sits above that."""


@dataclass
class BucketConfig:
    """Kinematic bucket command: start pose and how it tracks the commanded displacement."""

    start_xyz: tuple[float, float, float] = (-0.12, 0.0, 0.10)
    """Nominal bucket-tip start in the tray frame (m): behind the rock on the robot's side, above soil."""
    start_pitch: float = 0.0
    min_start_height: float = 0.03
    """Randomised starts are raised to at least this height above the nominal surface (m)."""


@dataclass
class RandomizationConfig:
    """Domain randomisation, paper Table II, all uniform. ``enabled=False`` gives the nominal scene.

    How each row maps onto this scene:

    - ``rock_obs_noise_xy``: fresh every control step, added to the observed rock x, y.
    - ``rock_obs_bias_xy``: drawn per episode, added to the observed rock x, y.
    - ``rock_in_bucket_error_rate``: each step the observed flag is flipped with this probability.
    - ``ground_height_bias``: per episode; the robot's belief of the soil surface height is off by
      this much, so it is added to every observed z (bucket tip and rock).
    - ``bucket_start_bias_xyz``: per episode, added to the bucket's start pose, then clipped to the
      workspace and raised to ``BucketConfig.min_start_height`` (a +-300 mm bias would otherwise start
      the bucket inside the soil or outside the tray).
    - ``rock_start_bias_xyz``: per episode, added to the rock's start position (z clipped so the rock
      stays above the tray floor).
    - ``bucket_torque_weight``: our bucket is position-controlled, so the paper's torque weight maps
      to a per-axis (x, y, z) gain on the commanded displacement: the arm over- or under-shoots.
    - ``rock_external_force``: per episode, a constant force of this magnitude in a random horizontal
      direction on the rock (N).
    - ``friction_scale``: per episode, scales the friction of the rock's and tray's shapes.
    - ``soil_mass``, ``rock_mass``: per episode, set the particle masses and the rock's mass and
      inertia (kg).
    - ``soil_volume``, ``rock_volume``: change geometry, so they are drawn per world when the scene is
      built (every resolution change, and every ``geometry_resample_every`` env resets if > 0);
      the soil volume sets the soil depth, the rock volume the rock's voxel count.
    """

    enabled: bool = True
    rock_obs_noise_xy: float = 0.025
    rock_obs_bias_xy: float = 0.025
    rock_in_bucket_error_rate: float = 0.2
    ground_height_bias: float = 0.025
    bucket_start_bias_xyz: tuple[float, float, float] = (0.3, 0.3, 0.3)
    rock_start_bias_xyz: tuple[float, float, float] = (0.03, 0.03, 0.03)
    bucket_torque_weight: tuple[float, float] = (0.8, 1.2)
    rock_external_force: tuple[float, float] = (0.0, 1.0)
    friction_scale: tuple[float, float] = (0.8, 1.2)
    soil_mass: tuple[float, float] = (2.7, 3.3)
    rock_mass: tuple[float, float] = (0.8, 1.2)
    soil_volume: tuple[float, float] = (0.120**3, 0.130**3)
    rock_volume: tuple[float, float] = (0.045**3, 0.055**3)


@dataclass
class RewardConfig:
    """Weights of the shaped reward terms (see ``rewards.py`` for each term's definition)."""

    potential_shaping: bool = True
    """Pay the progress terms (reach, under, in_bucket, lift) as the change of their weighted sum
    per step, not the sum itself. Paid every step, they made loitering under the rock worth ~10x the
    success bonus and from-scratch PPO never lifted (``rewards.py``). False is the dense reward the
    shipped default policy was trained with."""

    reach: float = 0.5
    """exp(-d / reach_scale) of the distance from the tines' middle to a point just behind the rock."""
    reach_scale: float = 0.05
    under: float = 0.5
    """Tines under the rock: the rock's centre lies above the tines and between back plate and tips."""
    in_bucket: float = 1.0
    lift: float = 2.0
    """In bucket times the rock's height gain, saturating at ``lift_target`` (m)."""
    lift_target: float = 0.05
    success: float = 20.0
    """One-off bonus when the episode succeeds."""
    action: float = 0.01
    """Penalty on the squared action, normalised by the action limit."""
    workspace: float = 0.5
    """Penalty per step in which the command pushed past the workspace box (it is clipped)."""


@dataclass
class ExcavationEnvConfig:
    """The whole env. ``delta_mm`` is the resolution (soil particle diameter and rock voxel edge)."""

    num_envs: int = 16
    delta_mm: float = 70.0
    device: str = "cpu"
    seed: int = 0
    max_episode_steps: int = 128
    """Paper Table I: 128 steps per episode."""
    success_hold_steps: int = 3
    """Control steps the rock must stay in the bucket and lifted clear before success counts."""
    lift_clearance: float = 0.03
    """The rock's lowest point must be this far above the soil surface for 'lifted clear' (m)."""
    workspace_exit_margin: float = 0.01
    """Targets outside the workspace box are clipped, so the bucket never leaves it. A command more
    than this far outside counts as pushing against the boundary (m): it costs the ``workspace``
    reward term and, if ``terminate_on_workspace_exit``, ends the episode as a failure."""
    terminate_on_workspace_exit: bool = False
    """Off by default: ending episodes on the boundary ended most of an untrained policy's episodes
    within a few steps (the randomised starts lie near it) and starved PPO of exploration."""
    auto_reset: bool = True
    """Reset envs whose episode ended inside ``step`` (learners). False leaves them for the caller's
    ``reset_envs`` (the ROS sim_world, whose episode runner decides when a new episode starts)."""
    shards: int = 1
    """Processes that share the worlds (``sharded.py``; ``make_env`` builds them). Warp runs CPU
    kernels on one thread, so on a CPU with C cores ``shards = C`` uses all of them. CPU only."""
    geometry_resample_every: int = 0
    """Rebuild the scene with fresh soil/rock volumes every this many resets of env 0 (0 = never)."""
    scene: SceneConfig = field(default_factory=SceneConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    bucket: BucketConfig = field(default_factory=BucketConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        """Fail early, with the field's name and what was expected, instead of inside Warp."""
        if not isinstance(self.num_envs, int) or isinstance(self.num_envs, bool) or self.num_envs <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {self.num_envs!r}")
        try:
            delta = float(self.delta_mm)
        except (TypeError, ValueError):
            raise ValueError(f"delta_mm must be a number in [{MIN_DELTA_MM}, {MAX_DELTA_MM}] mm, got {self.delta_mm!r}") from None
        if not (MIN_DELTA_MM <= delta <= MAX_DELTA_MM):
            raise ValueError(
                f"delta_mm must be in [{MIN_DELTA_MM}, {MAX_DELTA_MM}] mm (soil particle diameter), got {self.delta_mm!r}"
            )
        if not isinstance(self.shards, int) or isinstance(self.shards, bool) or self.shards < 1:
            raise ValueError(f"shards must be a positive integer (processes sharing the worlds), got {self.shards!r}")
        if self.max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be > 0, got {self.max_episode_steps}")
        ph = self.physics
        if ph.settle_max_steps < 0 or ph.settle_min_steps < 0 or ph.settle_tolerance <= 0:
            raise ValueError(
                f"physics.settle_max_steps and settle_min_steps must be >= 0 and settle_tolerance > 0, got "
                f"{ph.settle_max_steps}, {ph.settle_min_steps}, {ph.settle_tolerance}"
            )
        if ph.sleep_margin < 0 or ph.sleep_speed <= 0:
            raise ValueError(
                f"physics.sleep_margin must be >= 0 (particle diameters) and sleep_speed > 0 (m/s), got "
                f"{ph.sleep_margin}, {ph.sleep_speed}"
            )
        if self.physics.substeps <= 0 or self.physics.solver_iterations <= 0:
            raise ValueError(
                f"physics.substeps and physics.solver_iterations must be > 0, got "
                f"{self.physics.substeps} and {self.physics.solver_iterations}"
            )
        if not (0.0 <= self.randomization.rock_in_bucket_error_rate <= 1.0):
            raise ValueError(
                f"randomization.rock_in_bucket_error_rate must be in [0, 1], got {self.randomization.rock_in_bucket_error_rate}"
            )
        for name in ("bucket_torque_weight", "rock_external_force", "friction_scale", "soil_mass", "rock_mass", "soil_volume", "rock_volume"):
            lo, hi = getattr(self.randomization, name)
            if not (0 <= lo <= hi):
                raise ValueError(f"randomization.{name} must be a range (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")
