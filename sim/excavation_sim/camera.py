"""Depth camera of one world, rendered by Newton's raytraced ``SensorCamera``.

The output matches what realsense-ros publishes for an aligned depth stream: forward (z) depth,
not ray length, 0 where there is no valid return, plus pinhole intrinsics. A noise model adds
depth-proportional Gaussian noise (RealSense RMS error grows with z^2), random dropouts and
dropouts at depth edges (stereo matching fails at occlusion boundaries).

Frames: the camera pose is given as ``T_tray_camera`` with the optical convention (x right,
y down, z forward). Newton's camera looks along its local -z with +y up (OpenGL), so the pose is
converted once here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def look_down_pose(height: float = 0.55, x: float = 0.0, y: float = 0.0) -> np.ndarray:
    """``T_tray_camera`` of a camera ``height`` above the tray looking straight down.

    Image right = tray -y, image down = tray -x (the robot side is at the bottom of the image).
    """
    T = np.eye(4)
    T[:3, 0] = (0.0, -1.0, 0.0)
    T[:3, 1] = (-1.0, 0.0, 0.0)
    T[:3, 2] = (0.0, 0.0, -1.0)
    T[:3, 3] = (x, y, height)
    return T


@dataclass
class CameraConfig:
    """Defaults: a RealSense D435 depth stream at 640x480 (~87 x 58 deg), 0.55 m above the tray."""

    width: int = 640
    height: int = 480
    fx: float = 385.0
    fy: float = 385.0
    cx: float = 320.0
    cy: float = 240.0
    T_tray_camera: list = field(default_factory=lambda: look_down_pose().tolist())
    min_depth: float = 0.1
    max_depth: float = 3.0
    noise_z2: float = 0.004
    """Depth noise std = noise_z2 * z^2 (m); ~1.2 mm at 0.55 m."""
    dropout_rate: float = 0.01
    """Fraction of pixels with no return, at random."""
    edge_dropout_threshold: float = 0.02
    """Pixels next to a depth step larger than this (m) lose their return with probability 1/2."""

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def validate(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera width and height must be > 0, got {self.width}x{self.height}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera fx, fy must be > 0, got {self.fx}, {self.fy}")
        T = np.asarray(self.T_tray_camera, dtype=float)
        if T.shape != (4, 4) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5):
            raise ValueError("camera T_tray_camera must be a 4x4 rigid transform (orthonormal rotation)")


@dataclass
class DepthFrame:
    depth: np.ndarray  # (H, W) float32, metres of forward depth, 0 = no return
    K: np.ndarray  # (3, 3) intrinsics
    T_tray_camera: np.ndarray  # (4, 4)
    sim_time: float

    def to_16uc1(self) -> np.ndarray:
        """Millimetres as uint16, the realsense-ros encoding."""
        return np.clip(np.round(self.depth * 1000.0), 0, 65535).astype(np.uint16)


class DepthCamera:
    """Renders ``env``'s worlds. One camera object serves every world of the env (one view each call)."""

    def __init__(self, env, cfg: CameraConfig | None = None, seed: int = 0):
        import warp as wp
        from newton.sensors import SensorCamera

        self.cfg = cfg or CameraConfig()
        self.cfg.validate()
        self.env = env
        self.rng = np.random.default_rng(seed)
        c = self.cfg
        self._wp = wp
        self.sensor = SensorCamera(env.model)
        self.rays = SensorCamera.compute_camera_rays_pinhole_opencv(
            c.width, c.height, c.fx, c.fy, c.cx, c.cy, device=env.model.device
        )
        self.depth_buf = self.sensor.allocate_image_depth_forward(1, c.width, c.height)
        self.transforms = wp.empty(1, dtype=wp.transformf, device=env.model.device)
        self.world_index = wp.zeros(1, dtype=wp.int32, device=env.model.device)
        # Optical (x right, y down, z forward) -> OpenGL (x right, y up, looking along -z).
        self._gl_from_optical = np.diag([1.0, -1.0, -1.0])

    def _camera_transform(self, env_id: int):
        wp = self._wp
        T = np.asarray(self.cfg.T_tray_camera, dtype=float)
        R = T[:3, :3] @ self._gl_from_optical
        p = T[:3, 3] + self.env.offsets[env_id].cpu().numpy()
        q = _quat_from_matrix(R)
        return wp.transformf(wp.vec3f(*p), wp.quatf(*q))

    def render(self, env_id: int = 0, noise: bool = True) -> DepthFrame:
        if not (0 <= env_id < self.env.num_envs):
            raise ValueError(f"env_id must be in [0, {self.env.num_envs}), got {env_id}")
        wp = self._wp
        state = self.env.states[0]
        model = self.env.model
        model.bvh_refit_shapes(state)
        model.bvh_refit_particles(state)
        self.transforms.assign([self._camera_transform(env_id)])
        self.world_index.assign(np.array([env_id], dtype=np.int32))
        self.sensor.update(state, self.transforms, self.rays, forward_depth_image=self.depth_buf, world_indices=self.world_index)
        depth = self.depth_buf.numpy()[0].astype(np.float32)
        c = self.cfg
        depth[~np.isfinite(depth) | (depth < c.min_depth) | (depth > c.max_depth)] = 0.0
        if noise:
            depth = self.add_noise(depth)
        return DepthFrame(depth=depth, K=c.K, T_tray_camera=np.asarray(c.T_tray_camera, dtype=float), sim_time=self.env.sim_time)

    def shape_index_image(self, env_id: int = 0) -> np.ndarray:
        """Ground truth for the same view as ``render``: which Newton shape each pixel sees ((H, W)
        int64, -1 where none), noise-free. Benchmarks use it to tell rock pixels from soil."""
        if not (0 <= env_id < self.env.num_envs):
            raise ValueError(f"env_id must be in [0, {self.env.num_envs}), got {env_id}")
        c = self.cfg
        if getattr(self, "_shape_ids", None) is None:
            self._shape_ids = self.sensor.allocate_image_shape_index(1, c.width, c.height)
        state = self.env.states[0]
        self.env.model.bvh_refit_shapes(state)
        self.env.model.bvh_refit_particles(state)
        self.transforms.assign([self._camera_transform(env_id)])
        self.world_index.assign(np.array([env_id], dtype=np.int32))
        self.sensor.update(state, self.transforms, self.rays, shape_index_image=self._shape_ids,
                           world_indices=self.world_index)
        self._wp.synchronize()
        return self._shape_ids.numpy()[0].astype(np.int64)

    def add_noise(self, depth: np.ndarray) -> np.ndarray:
        c = self.cfg
        valid = depth > 0
        out = depth + self.rng.normal(0.0, 1.0, depth.shape).astype(np.float32) * (c.noise_z2 * depth * depth)
        gy = np.abs(np.diff(depth, axis=0, prepend=depth[:1]))
        gx = np.abs(np.diff(depth, axis=1, prepend=depth[:, :1]))
        edge = (np.maximum(gx, gy) > c.edge_dropout_threshold) & (self.rng.random(depth.shape) < 0.5)
        drop = (self.rng.random(depth.shape) < c.dropout_rate) | edge | ~valid
        out[drop] = 0.0
        return out.astype(np.float32)


def _quat_from_matrix(R: np.ndarray) -> tuple[float, float, float, float]:
    """Rotation matrix -> quaternion (x, y, z, w)."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return float(x), float(y), float(z), float(w)
